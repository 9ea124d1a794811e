"""cellfeed against annbatch 0.3.1 on annbatch's own store, side by side in one run.

Tahoe-like plates (bench/tahoe_like.py, gzip h5ad) are converted by annbatch
(`DatasetCollection.add_adatas`, its defaults: blosc lz4 inner chunks of 64 rows' worth
of values, 1 GB shards, pre-shuffled), timing the conversion and its peak memory. Then,
alternating run by run so both see the same machine load, each loader reads whole epochs:

- annbatch's Loader on its store (Python 3.12 environment, bench/peers/annbatch_peer312.py:
  zarrs codec pipeline, 2 threads, chunk_size=32, preload_nchunks=512, preload_to_gpu off);
- cellfeed.Loader on the same store (2 threads, blocks of 1,024 rows: see CELLFEED);
- cellfeed.Loader on the original h5ad plates (no conversion at all).

at batch 64 and 4096, warm (page cache filled) and cold (every file of the store or the
plates evicted with POSIX_FADV_DONTNEED first). Each run is its own process; it reports
cells/s over its epochs, the mean per-batch entropy of the plate label (bits) and its peak
RSS. Writes bench/results/annbatch_bench.json and .md (medians, and each cellfeed median
over annbatch's at the same batch size and cache state).

    python bench/annbatch_bench.py --cells 150000 --epochs 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
PEER = HERE / "peers" / "annbatch_peer312.py"
THREADS = 2
# cellfeed's loader settings per batch size on annbatch's store: blocks of 1,024 consecutive
# rows. The store is pre-shuffled (its rows are already in random order), so a block's rows
# are as mixed as any; an inner chunk holds ~64 rows, and a block of 64 would decode two
# chunks for one chunk's rows. (annbatch's Loader likewise reads runs of 32 rows.)
# On annbatch's pre-shuffled store a fetch of 4 blocks of 1,024 rows is enough at either batch
# size (entropy comes from the store's shuffle): at batch 4096 fetch factor 1 ran 221-283k
# cells/s against 142-148k with fetch factor 4 (16 blocks, 4x the memory in flight), same entropy.
CELLFEED = {64: dict(block_size=1024, fetch_factor=64), 4096: dict(block_size=1024, fetch_factor=1)}
H5AD = {64: dict(block_size=16, fetch_factor=64), 4096: dict(block_size=16, fetch_factor=4)}


def entropy_bits(codes) -> float:
    c = np.bincount(np.asarray(codes, dtype=np.int64))
    p = c[c > 0] / c.sum()
    return float(-(p * np.log2(p)).sum())


def evict(paths) -> None:
    for root in paths:
        walk = [(root, [], [""])] if os.path.isfile(root) else os.walk(root)
        for d, _, files in walk:
            for f in files:
                fd = os.open(os.path.join(d, f) if f else d, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def warm(paths) -> None:
    for root in paths:
        walk = [(root, [], [""])] if os.path.isfile(root) else os.walk(root)
        for d, _, files in walk:
            for f in files:
                with open(os.path.join(d, f) if f else d, "rb") as fh:
                    while fh.read(1 << 24):
                        pass


def run_cellfeed(paths, batch_size, epochs, settings, seed=0) -> dict:
    """One process's run (called via --run-cellfeed)."""
    import cellfeed
    t_open = time.perf_counter()
    loader = cellfeed.Loader(paths if len(paths) > 1 else paths[0], batch_size=batch_size,
                             seed=seed, obs=["plate"], output="scipy", threads=THREADS,
                             **settings)
    t0 = time.perf_counter()
    cells, ent = 0, []
    for e in range(epochs):
        loader.set_epoch(e)
        for b in loader:
            cells += len(b)
            ent.append(entropy_bits(b.obs["plate"]))
    dt = time.perf_counter() - t0
    return {"open_seconds": t0 - t_open, "cells": cells, "seconds": dt,
            "cells_per_second": cells / dt, "entropy_bits": float(np.mean(ent)),
            "batches": len(ent)}


def child(cmd) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=150_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 4096])
    ap.add_argument("--work", type=Path, default=HERE / "results" / "tmp" / "annbatch")
    ap.add_argument("--python312", default=os.environ.get(
        "CELLFEED_ZARR312_PYTHON", str(REPO / ".venv-zarr312" / "bin" / "python")))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "annbatch_bench")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--run-cellfeed", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_cellfeed:
        out = run_cellfeed(args.run_cellfeed, args.batch_sizes[0], args.epochs,
                           json.loads(args.settings))
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(out))
        return

    import tahoe_like
    h5_dir = args.work / f"h5ad_{args.cells}"
    plates = sorted(str(p) for p in h5_dir.glob("*.h5ad"))
    if not plates:
        plates = [str(p) for p in tahoe_like.generate(h5_dir, args.cells, "gzip")]
    store = args.work / f"annbatch_{args.cells}.zarr"
    conv_file = args.work / f"annbatch_{args.cells}.conversion.json"
    if not store.exists():
        conversion = child([args.python312, str(PEER), "convert", str(store), *plates])
        conv_file.write_text(json.dumps(conversion))
    conversion = json.loads(conv_file.read_text())

    def annbatch_run(bs, epochs, cold):
        cmd = [args.python312, str(PEER), "load", str(store), "--batch-size", str(bs),
               "--epochs", str(epochs)]
        return child(cmd + (["--evict"] if cold else []))

    def cellfeed_run(paths, bs, epochs, settings):
        return child([sys.executable, __file__, "--run-cellfeed", *paths, "--batch-sizes", str(bs),
                      "--epochs", str(epochs), "--settings", json.dumps(settings)])

    runs = []
    for bs in args.batch_sizes:
        for rep in range(args.repeats):
            for state in (["warm"] if args.no_cold else ["warm", "cold"]):
                epochs = args.epochs if state == "warm" else 1
                for name in ("annbatch (its store)", "cellfeed (annbatch's store)",
                             "cellfeed (h5ad plates)"):
                    paths = plates if "h5ad" in name else [str(store)]
                    (evict if state == "cold" else warm)(paths)
                    if name.startswith("annbatch"):
                        r = annbatch_run(bs, epochs, state == "cold")
                    else:
                        r = cellfeed_run(paths, bs, epochs,
                                         (H5AD if "h5ad" in name else CELLFEED)[bs])
                    r.update(loader=name, batch_size=bs, state=state, repeat=rep)
                    runs.append(r)
                    print(f"{name:30s} b={bs:5d} {state} rep {rep}: "
                          f"{r['cells_per_second']:9.0f} cells/s  entropy {r['entropy_bits']:.3f}",
                          file=sys.stderr)
    summary = []
    for bs in args.batch_sizes:
        for state in ("warm", "cold"):
            rs = [r for r in runs if r["batch_size"] == bs and r["state"] == state]
            if not rs:
                continue
            base = statistics.median(r["cells_per_second"] for r in rs
                                     if r["loader"].startswith("annbatch"))
            for name in dict.fromkeys(r["loader"] for r in rs):
                mine = [r for r in rs if r["loader"] == name]
                med = statistics.median(r["cells_per_second"] for r in mine)
                summary.append({"loader": name, "batch_size": bs, "state": state,
                                "cells_per_second": med, "ratio_to_annbatch": med / base,
                                "entropy_bits": statistics.median(r["entropy_bits"] for r in mine),
                                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in mine
                                                      if "peak_rss_bytes" in r) if any(
                                    "peak_rss_bytes" in r for r in mine) else None,
                                "runs": len(mine)})
    result = {"cells": args.cells, "epochs": args.epochs, "repeats": args.repeats,
              "threads": THREADS, "cellfeed_settings": {str(k): v for k, v in CELLFEED.items()},
              "h5ad_settings": {str(k): v for k, v in H5AD.items()},
              "conversion": conversion, "summary": summary, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [f"Tahoe-like, {args.cells:,} cells in 14 gzip plates; annbatch conversion "
             f"{conversion['seconds']:.1f} s, peak RSS {conversion['peak_rss_bytes'] / 2**30:.2f} GiB, "
             f"store {conversion['store_bytes'] / 2**20:.0f} MiB. {THREADS} threads each; medians of "
             f"{args.repeats} runs ({args.epochs} epochs warm, 1 cold).", "",
             "| loader | batch | cache | cells/s | x annbatch | plate entropy (bits) |",
             "|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['loader']} | {s['batch_size']} | {s['state']} | "
                     f"{s['cells_per_second']:,.0f} | {s['ratio_to_annbatch']:.2f} | "
                     f"{s['entropy_bits']:.3f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
