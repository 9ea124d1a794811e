"""Declared corpora at the loader's speed: a filtered corpus and a 3-source mixture with
exact counts against the unfiltered loader, same block size, fetch factor and batch size,
in one process, runs alternating, warm page cache.

    python bench/corpus_bench.py DATA_DIR [--block-size 16 --fetch-factor 64 --epochs 3 --repeats 3]

DATA_DIR: Tahoe-like plates (bench/tahoe_like.py). Each run iterates whole epochs (so the
prefetched tail of an epoch is inside the timing) and reports cells/s and the mean
per-batch entropy of the plate label (bits). Prints JSON with the medians and the ratio of
each corpus to the unfiltered loader.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import subprocess
import time

import numpy as np

import cellfeed

N_DRUGS = 380


def entropy_bits(plates: np.ndarray, n: int) -> float:
    c = np.bincount(plates, minlength=n)
    p = c[c > 0] / c.sum()
    return float(-(p * np.log2(p)).sum())


def run(loader, offsets, epochs: int) -> dict:
    cells, ent = 0, []
    t0 = time.perf_counter()
    for e in range(epochs):
        loader.set_epoch(e)
        for b in loader:
            cells += len(b)
            rows = np.asarray(b.rows)
            ent.append(entropy_bits(np.searchsorted(offsets, rows, side="right") - 1, len(offsets) - 1))
    dt = time.perf_counter() - t0
    return {"cells": cells, "seconds": dt, "cells_per_second": cells / dt, "entropy_bits": float(np.mean(ent))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--fetch-factor", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    files = sorted(glob.glob(f"{args.data_dir}/*.h5ad"))
    subprocess.run(["cat"] + files, stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    drugs = [f"drug_{i:03d}" for i in range(0, N_DRUGS, 2)]  # half of the drugs
    t0 = time.perf_counter()
    filtered = cellfeed.Corpus([cellfeed.Source(
        "subset", files, where=f"drug in {drugs!r} and pcnt_mito < 10")]).build()
    t_filtered = time.perf_counter() - t0
    n = cellfeed.open(files).n_obs  # quotas: 20% / 15% / 10% of the cells (200k/150k/100k at 1M)
    t0 = time.perf_counter()
    mixture = cellfeed.Corpus([cellfeed.Source("a", files[:5], cells=n // 5),
                               cellfeed.Source("b", files[5:10], cells=n * 3 // 20),
                               cellfeed.Source("c", files[10:], cells=n // 10)], seed=1).build()
    t_mixture = time.perf_counter() - t0
    kw = dict(batch_size=args.batch_size, block_size=args.block_size, fetch_factor=args.fetch_factor)
    plain = cellfeed.open(files)
    loaders = {"unfiltered": cellfeed.Loader(plain, **kw), "filtered": cellfeed.Loader(filtered, **kw),
               "mixture": cellfeed.Loader(mixture, **kw)}
    offsets = np.asarray(plain.file_offsets)
    runs = {k: [] for k in loaders}
    for _ in range(args.repeats):
        for name, loader in loaders.items():
            runs[name].append(run(loader, offsets, args.epochs))
    out = {"config": vars(args), "cells_per_epoch": {k: len(l) * args.batch_size for k, l in loaders.items()},
           "build_seconds": {"filtered": t_filtered, "mixture": t_mixture},
           "filtered_fraction": int(filtered.counts()["passing"].sum()) / plain.n_obs}
    for name, rs in runs.items():
        out[name] = {"cells_per_second_median": statistics.median(r["cells_per_second"] for r in rs),
                     "cells_per_second_runs": [round(r["cells_per_second"]) for r in rs],
                     "entropy_bits": statistics.median(r["entropy_bits"] for r in rs)}
    base = out["unfiltered"]["cells_per_second_median"]
    for name in ("filtered", "mixture"):
        out[name]["ratio_to_unfiltered"] = out[name]["cells_per_second_median"] / base
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
