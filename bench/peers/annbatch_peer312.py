"""annbatch 0.3.1, run in the Python 3.12 environment (.venv-zarr312) by
bench/annbatch_bench.py: converts h5ad plates into annbatch's own store, or iterates its
Loader over that store and reports cells/s and the mean per-batch plate entropy.

    python annbatch_peer312.py convert OUT_STORE PLATE.h5ad...
    python annbatch_peer312.py load STORE --batch-size 64 --epochs 2 [--evict]
        [--chunk-size 32 --preload-nchunks 512]
    python annbatch_peer312.py floor STORE

Loader settings: chunk_size and preload_nchunks as given (default 32 and 512, annbatch's
recommendation for pre-shuffled collections), shuffle=True, preload_to_gpu=False; zarr's
codec pipeline set to zarrs (`zarr.config codec_pipeline.path = zarrs.ZarrsCodecPipeline`)
with 2 threads. `floor` reads each X array of every dataset whole and in order with the
same pipeline (no shuffle, no batching): what zarr+zarrs needs just to decode the store.
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


def read_whole(store: str) -> dict:
    """Every dataset's X/data and X/indices read whole, in order, twice (the second timed)."""
    import zarr
    root = zarr.open_group(store, mode="r")
    arrays = []
    for name, g in root.groups():
        if "X" in g and "data" in g["X"]:
            arrays += [g["X"]["data"], g["X"]["indices"]]
    cells = sum(a.shape[0] - 1 for name, g in root.groups() if "X" in g and "indptr" in g["X"]
                for a in [g["X"]["indptr"]])
    best = None
    for _ in range(2):
        t0 = time.perf_counter()
        nbytes = sum(a[:].nbytes for a in arrays)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    raw = decode_inner_chunks(store, arrays)
    return {"cells": cells, "decoded_bytes": nbytes, "seconds": best,
            "cells_per_second": cells / best, "inner_chunks": raw["chunks"],
            "compressed_bytes": raw["compressed_bytes"], "decode_seconds": raw["seconds"],
            "decode_cells_per_second": cells / raw["seconds"], "codecs": raw["codecs"]}


def decode_inner_chunks(store: str, arrays) -> dict:
    """The decode floor: every inner chunk's bytes taken out of its shard (zarr v3 sharding
    index parsed here), held in memory, then decoded by numcodecs' c-blosc on THREADS threads
    (it releases the GIL) and nothing else: no shuffle, no gather, no batch assembly."""
    import struct
    from concurrent.futures import ThreadPoolExecutor
    import threading
    chunks, codecs_seen = [], set()
    for a in arrays:
        meta = a.metadata.to_dict()
        shard = meta["codecs"][0]
        if shard["name"] != "sharding_indexed":
            raise ValueError(f"{a.path}: expected sharded arrays, found {shard['name']}")
        cfg = shard["configuration"]
        inner = [c for c in cfg["codecs"] if c["name"] not in ("bytes",)]
        if len(inner) != 1 or inner[0]["name"] != "blosc":
            raise ValueError(f"{a.path}: inner codecs {cfg['codecs']}, expected bytes+blosc")
        codecs_seen.add(json.dumps(inner[0]["configuration"], sort_keys=True))
        n_inner = meta["chunk_grid"]["configuration"]["chunk_shape"][0] // cfg["chunk_shape"][0]
        crc = 4 if any(c["name"] == "crc32c" for c in cfg.get("index_codecs", [])) else 0
        index_bytes = n_inner * 16 + crc
        folder = os.path.join(store, a.path, "c")
        for f in sorted(os.listdir(folder), key=int):
            with open(os.path.join(folder, f), "rb") as fh:
                buf = fh.read()
            idx = buf[-index_bytes:] if cfg.get("index_location", "end") == "end" else buf[:index_bytes]
            for i in range(n_inner):
                off, nb = struct.unpack_from("<QQ", idx, 16 * i)
                if off != 2**64 - 1:
                    chunks.append(buf[off:off + nb])
    # Each thread decodes into one buffer of its own, reused: the floor counts decoding, not
    # the page faults of fresh output memory (which doubled the time when measured).
    from numcodecs import blosc
    size = max(blosc._cbuffer_sizes(c)[0] for c in chunks)
    local = threading.local()

    def decode(c):
        out = getattr(local, "out", None)
        if out is None:
            out = local.out = np.empty(size, np.uint8)
        n = blosc._cbuffer_sizes(c)[0]
        blosc.decompress(c, out[:n])
        return n

    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as ex:
            decoded = sum(ex.map(decode, chunks, chunksize=64))
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return {"chunks": len(chunks), "compressed_bytes": sum(len(c) for c in chunks),
            "decoded_bytes": decoded,
            "seconds": best, "codecs": sorted(codecs_seen)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["convert", "load", "floor"])
    ap.add_argument("store")
    ap.add_argument("plates", nargs="*")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--evict", action="store_true")
    ap.add_argument("--chunk-size", type=int, default=32)
    ap.add_argument("--preload-nchunks", type=int, default=512)
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
    if args.mode == "floor":
        out.update(read_whole(args.store))
        print(json.dumps(out))
        return
    if args.evict:
        evict(args.store)
    t_open = time.perf_counter()
    out.update(chunk_size=args.chunk_size, preload_nchunks=args.preload_nchunks)
    loader = annbatch.Loader(batch_size=args.batch_size, chunk_size=args.chunk_size,
                             preload_nchunks=args.preload_nchunks,
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
               peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               entropy_bits=float(np.mean(ent)), batches=len(ent))
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
