"""cellfeed against BioNeMo SCDL (bionemo-scdl 0.1.3) on the same Tahoe-like plates, in one run.

SCDL reads its own memory-mapped format, so the h5ad plates (bench/tahoe_like.py,
uncompressed by default) are converted first with SCDL's SingleCellCollection
(load_h5ad_multi + flatten, X used as the plates have no raw), timing the conversion. Then:

1. a sweep, one warm run each (`--epochs` epochs): SCDL through a torch DataLoader with its
   collate function and a random permutation per epoch, at each of SCDL_WORKERS workers;
   cellfeed on the original h5ad plates (no conversion) at each of CANDIDATES. SCDL's best
   is kept, and cellfeed's best among the settings whose mean per-batch plate entropy is
   within ENTROPY_TOLERANCE bits of SCDL's (random sampling: the same mixing);
2. `--repeats` rounds alternating the two, each run its own fresh process, page cache warm.

SCDL runs in its own environment (`--scdl-python`, default .venv-scdl at the repository
root, made with `python3 -m venv --system-site-packages .venv-scdl &&
.venv-scdl/bin/pip install bionemo-scdl==0.1.3`: it uses the installed torch 2.13).
Writes OUT.json and OUT.md.

    python bench/scdl_bench.py --cells 150225 --epochs 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from annbatch_bench import child, median_of, sweep_table, warm  # noqa: E402

PEER = HERE / "peers" / "scdl_peer.py"
RUNNER = HERE / "annbatch_bench.py"  # its --run-cellfeed: one cellfeed process
SCDL_WORKERS = [0, 2]
CANDIDATES = {64: [dict(block_size=4, fetch_factor=16), dict(block_size=4, fetch_factor=64),
                   dict(block_size=8, fetch_factor=64),
                   dict(block_size=16, fetch_factor=64), dict(block_size=16, fetch_factor=256)],
              4096: [dict(block_size=4, fetch_factor=4), dict(block_size=16, fetch_factor=4),
                     dict(block_size=64, fetch_factor=4)]}
ENTROPY_TOLERANCE = 0.02


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=150_225)
    ap.add_argument("--compression", choices=["none", "gzip"], default="none")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--work", type=Path, default=HERE / "results" / "tmp" / "annbatch")
    ap.add_argument("--scdl-python", default=str(REPO / ".venv-scdl" / "bin" / "python"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scdl_bench")
    args = ap.parse_args(argv)

    import tahoe_like
    h5_dir = args.work / f"h5ad_{args.compression}_{args.cells}"
    plates = sorted(str(p) for p in h5_dir.glob("*.h5ad"))
    if not plates:
        plates = [str(p) for p in tahoe_like.generate(
            h5_dir, args.cells, None if args.compression == "none" else "gzip")]
    sizes = ",".join(str(s) for s in tahoe_like.plate_sizes(args.cells))
    store = args.work / "scdl" / f"scdl_{args.compression}_{args.cells}"
    conv_file = store.with_suffix(".conversion.json")
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        conv_file.write_text(json.dumps(child([args.scdl_python, str(PEER), "convert",
                                               str(store), str(h5_dir)])))
    conversion = json.loads(conv_file.read_text())

    def scdl_cmd(bs, workers):
        return [args.scdl_python, str(PEER), "load", str(store), "--plate-sizes", sizes,
                "--batch-size", str(bs), "--epochs", str(args.epochs), "--workers", str(workers)]

    def cellfeed_cmd(bs, settings):
        return [sys.executable, str(RUNNER), "--run-cellfeed", *plates, "--batch-sizes", str(bs),
                "--epochs", str(args.epochs), "--settings", json.dumps(settings)]

    def log(r):
        print(f"{r['loader']:24s} b={r['batch_size']:5d} {r['state']} {r['setting']}: "
              f"{r['cells_per_second']:9.0f} cells/s  entropy {r['entropy_bits']:.3f}",
              file=sys.stderr)

    sweep, best, runs = [], {}, []
    for bs in args.batch_sizes:
        warm(plates + [str(store)])
        sc = []
        for w in SCDL_WORKERS:
            r = child(scdl_cmd(bs, w))
            r.update(loader="BioNeMo SCDL", batch_size=bs, state="sweep", setting={"workers": w})
            log(r)
            sc.append(r)
        s_best = max(sc, key=lambda r: r["cells_per_second"])
        cf = []
        for setting in CANDIDATES[bs]:
            r = child(cellfeed_cmd(bs, setting))
            r.update(loader="cellfeed (h5ad plates)", batch_size=bs, state="sweep", setting=setting)
            log(r)
            cf.append(r)
        ok = [r for r in cf if r["entropy_bits"] >= s_best["entropy_bits"] - ENTROPY_TOLERANCE]
        if not ok:
            raise RuntimeError(f"batch {bs}: no cellfeed setting reaches SCDL's entropy")
        best[bs] = {"scdl": s_best["setting"],
                    "cellfeed": max(ok, key=lambda r: r["cells_per_second"])["setting"]}
        sweep += sc + cf
        for rep in range(args.repeats):
            for name in ("BioNeMo SCDL", "cellfeed (h5ad plates)"):
                if name.startswith("BioNeMo"):
                    r = child(scdl_cmd(bs, best[bs]["scdl"]["workers"]))
                    r.update(setting=best[bs]["scdl"])
                else:
                    r = child(cellfeed_cmd(bs, best[bs]["cellfeed"]))
                    r.update(setting=best[bs]["cellfeed"])
                r.update(loader=name, batch_size=bs, state="warm", repeat=rep)
                log(r)
                runs.append(r)

    summary = []
    for bs in args.batch_sizes:
        rs = [r for r in runs if r["batch_size"] == bs]
        base = median_of([r for r in rs if r["loader"].startswith("BioNeMo")])
        for name in dict.fromkeys(r["loader"] for r in rs):
            mine = [r for r in rs if r["loader"] == name]
            summary.append({"loader": name, "batch_size": bs, "setting": mine[0]["setting"],
                            "cells_per_second": median_of(mine),
                            "ratio_to_scdl": median_of(mine) / base,
                            "entropy_bits": median_of(mine, "entropy_bits"),
                            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in mine),
                            "runs": len(mine)})
    load = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"cells": args.cells, "plates_compression": args.compression, "epochs": args.epochs,
         "repeats": args.repeats, "conversion": conversion, "best_settings": best,
         "summary": summary, "sweep": sweep, "runs": runs, "loadavg_at_end": load}, indent=1))
    kind = "uncompressed" if args.compression == "none" else args.compression
    lines = [f"Tahoe-like, {args.cells:,} cells in 14 {kind} h5ad plates; SCDL conversion "
             f"{conversion['seconds']:.1f} s, peak RSS {conversion['peak_rss_bytes'] / 2**30:.2f} "
             f"GiB, its dataset {conversion['store_bytes'] / 2**20:.0f} MiB. Medians of "
             f"{args.repeats} alternating runs in fresh processes, {args.epochs} epochs each, "
             f"page cache warm. Load average at the end: {load[0]:.2f}.", "",
             "| loader | batch | settings | cells/s | x SCDL | plate entropy (bits) | peak RSS (GiB) |",
             "|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['loader']} | {s['batch_size']} | {s['setting']} | "
                     f"{s['cells_per_second']:,.0f} | {s['ratio_to_scdl']:.2f} | "
                     f"{s['entropy_bits']:.3f} | {s['peak_rss_bytes'] / 2**30:.2f} |")
    lines += sweep_table(sweep)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
