"""How Collection.read of a random sorted row set scales with decode threads.

Writes one Tahoe-like plate (gzip-4 or uncompressed, full-size 75k-value chunks), then in
one process times col.read(rows) for threads = 1, 2, ... on the same random sorted rows
(warm page cache) and reports cells/s and the speed-up over 1 thread.

    python bench/read_threads.py --cells 40000 --rows 4000 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import cellfeed
from tahoe_like import write_plate


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=40_000)
    ap.add_argument("--rows", type=int, default=4_000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args(argv)
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="cellfeed_bench_"))
    path = tmp / f"plate_{args.compression}_{args.cells}.h5ad"
    if not path.exists():
        write_plate(path, 0, args.cells, None if args.compression == "none" else "gzip", seed=0)
    rng = np.random.default_rng(0)
    results = {"file": str(path), "cells": args.cells, "rows_per_read": args.rows,
               "compression": args.compression, "by_threads": {}}
    cols = {t: cellfeed.open(path, threads=t) for t in args.threads}
    row_sets = [np.sort(rng.choice(args.cells, args.rows, replace=False)) for _ in range(args.repeats)]
    for c in cols.values():
        c.read(row_sets[0])  # warm the page cache
    for t, c in cols.items():
        best = float("inf")
        for rows in row_sets:
            t0 = time.perf_counter()
            c.read(rows)
            best = min(best, time.perf_counter() - t0)
        results["by_threads"][t] = {"seconds": best, "cells_per_second": args.rows / best}
    base = results["by_threads"][args.threads[0]]["cells_per_second"]
    for t, r in results["by_threads"].items():
        r["speedup"] = r["cells_per_second"] / base
        print(f"threads={t}: {r['cells_per_second']:,.0f} cells/s (best of {args.repeats}), "
              f"speed-up {r['speedup']:.2f}x")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
