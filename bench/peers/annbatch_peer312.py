"""annbatch 0.3.1, run in the Python 3.12 environment (.venv-zarr312) by
bench/annbatch_bench.py: converts h5ad plates into annbatch's own store, or iterates its
Loader over that store and reports cells/s and the mean per-batch plate entropy.

    python annbatch_peer312.py convert OUT_STORE PLATE.h5ad...
    python annbatch_peer312.py load STORE --batch-size 64 --epochs 2 [--evict]

Loader settings (annbatch's recommendation for pre-shuffled collections): chunk_size=32,
preload_nchunks=512, shuffle=True, preload_to_gpu=False; zarr's codec pipeline set to
zarrs (`zarr.config codec_pipeline.path = zarrs.ZarrsCodecPipeline`) with 2 threads.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings

import numpy as np

THREADS = 2


def entropy_bits(codes) -> float:
    c = np.bincount(np.asarray(codes, dtype=np.int64))
    p = c[c > 0] / c.sum()
    return float(-(p * np.log2(p)).sum())


def evict(root: str) -> None:
    for d, _, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(d, f), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["convert", "load"])
    ap.add_argument("store")
    ap.add_argument("plates", nargs="*")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--evict", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import zarr
    zarr.config.set({"threading.max_workers": THREADS,
                     "codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
    import annbatch
    from importlib.metadata import version
    out = {"annbatch": version("annbatch"), "zarr": version("zarr"), "zarrs": version("zarrs")}
    if args.mode == "convert":
        t0 = time.perf_counter()
        annbatch.DatasetCollection(args.store).add_adatas(args.plates)
        out["seconds"] = time.perf_counter() - t0
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.store)
                   for f in fs)
        out["store_bytes"] = size
        print(json.dumps(out))
        return
    if args.evict:
        evict(args.store)
    t_open = time.perf_counter()
    loader = annbatch.Loader(batch_size=args.batch_size, chunk_size=32, preload_nchunks=512,
                             shuffle=True, preload_to_gpu=False,
                             rng=np.random.default_rng(args.seed))
    loader.use_collection(annbatch.DatasetCollection(args.store))
    t0 = time.perf_counter()
    out["open_seconds"] = t0 - t_open
    cells, ent = 0, []
    for _ in range(args.epochs):
        for batch in loader:
            x = batch["X"]
            cells += x.shape[0]
            plate = batch["obs"]["plate"]
            ent.append(entropy_bits(plate.cat.codes if hasattr(plate, "cat") else
                                    np.unique(np.asarray(plate), return_inverse=True)[1]))
    dt = time.perf_counter() - t0
    out.update(cells=cells, seconds=dt, cells_per_second=cells / dt,
               entropy_bits=float(np.mean(ent)), batches=len(ent))
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
