"""What isolating libhdf5 (a probe process per file before the real open) costs at open.

Two collections: a 14-file Tahoe-like one (bench/tahoe_like.py, 62,710 genes: var names
are read at open) and one large-obs file (write_tiny_plate: --large-cells cells, one value
each). For each, alternating runs in this process of cellfeed.open(..., isolate=True) and
isolate=False (the baseline), and of the first obs_names() read of a fresh collection
(isolated: a probe first reads the whole obs index once); then of a reopen of files
already probed in this process (as a forked DataLoader worker reopens them), where no
probe runs. Reports medians and ratios.
--atlas DIR adds a third: the 14 plates of an existing collection (e.g. the 100M-cell one
bench/corpus_scale_bench.py writes to /tmp/cellfeed_bench/tiny_100000000).

    python bench/open_isolation_bench.py [--dir DIR] [--cells 14000] [--large-cells 10000000]
        [--atlas DIR] [--repeats 7] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tahoe_like  # noqa: E402

import cellfeed  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(paths, repeats: int, obs_rows) -> dict:
    paths = [str(p) for p in paths]
    res = {"open": {True: [], False: []}, "obs_names": {True: [], False: []}}
    cellfeed.open(paths, isolate=False)  # page cache warm for both
    for _ in range(repeats):
        for iso in (True, False):
            # A first open each time: a probe that passed is not run again on the same
            # files in this process (io/hdf5/probe_verdicts.h); the reopen figure is below.
            cellfeed._cellfeed._forget_open_probes()
            res["open"][iso].append(timed(lambda: cellfeed.open(paths, isolate=iso)))
            cellfeed._cellfeed._forget_open_probes()
            c = cellfeed.open(paths, isolate=iso)
            cellfeed._cellfeed._forget_open_probes()
            res["obs_names"][iso].append(timed(lambda: c.obs_names(obs_rows)))
        # Opening the same files again in this process (or in a forked DataLoader worker).
        res.setdefault("reopen", {True: [], False: []})
        cellfeed.open(paths, isolate=True)
        res["reopen"][True].append(timed(lambda: cellfeed.open(paths, isolate=True)))
        res["reopen"][False].append(timed(lambda: cellfeed.open(paths, isolate=False)))
    out = {}
    for k, v in res.items():
        iso, base = statistics.median(v[True]), statistics.median(v[False])
        out[k] = {"isolated_s": iso, "baseline_s": base, "ratio": iso / base,
                  "added_s": iso - base, "runs": repeats}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help="where to write the files (kept)")
    ap.add_argument("--cells", type=int, default=14_000, help="cells of the 14-file collection")
    ap.add_argument("--large-cells", type=int, default=10_000_000)
    ap.add_argument("--atlas", type=Path, default=None, help="a folder of plate*.h5ad files to measure too")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory()
        args.dir = Path(tmp.name)
    tahoe_dir = args.dir / "tahoe"
    tahoe = sorted(tahoe_dir.glob("plate*.h5ad")) if tahoe_dir.exists() else []
    if len(tahoe) != 14:
        tahoe = tahoe_like.generate(tahoe_dir, args.cells, "gzip")
    large = args.dir / f"large_{args.large_cells}.h5ad"
    if not large.exists():
        tahoe_like.write_tiny_plate(large, 0, args.large_cells)
    report = {
        "tahoe_like_14_files": {"cells": args.cells, **measure(tahoe, args.repeats, None)},
        "large_obs_1_file": {"cells": args.large_cells,
                             **measure([large], args.repeats, None)},
    }
    if args.atlas is not None:
        plates = sorted(args.atlas.glob("plate*.h5ad"))
        if not plates:
            raise SystemExit(f"{args.atlas}: no plate*.h5ad files")
        n = cellfeed.open([str(p) for p in plates], isolate=False).n_obs
        report[f"atlas_{len(plates)}_files"] = {"cells": n, "dir": str(args.atlas),
                                                 **measure(plates, args.repeats, None)}
    print(f"{'collection':22s} {'what':10s} {'isolated':>10s} {'baseline':>10s} {'ratio':>7s}")
    for name, r in report.items():
        for what in ("open", "obs_names", "reopen"):
            m = r[what]
            print(f"{name:22s} {what:10s} {m['isolated_s']*1e3:9.1f}ms {m['baseline_s']*1e3:9.1f}ms "
                  f"{m['ratio']:6.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
