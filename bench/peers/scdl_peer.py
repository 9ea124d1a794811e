"""BioNeMo SCDL (bionemo-scdl 0.1.3), run in its own environment (.venv-scdl) by
bench/scdl_bench.py: converts h5ad plates into SCDL's memory-mapped format, or reads that
dataset through a torch DataLoader with SCDL's own collate function and reports cells/s and
the mean per-batch plate entropy.

    python scdl_peer.py convert OUT_DIR PLATES_DIR
    python scdl_peer.py load SCDL_DIR --plate-sizes 9000,8000,... --batch-size 64
        --epochs 2 --workers 0

Loading is what SCDL's documentation shows: `SingleCellMemMapDataset(path)` in a
`torch.utils.data.DataLoader(..., collate_fn=collate_sparse_matrix_batch)`, shuffled (a
random permutation per epoch, given as the sampler so the plate of every row is known).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np


def entropy_bits(codes) -> float:
    c = np.bincount(np.asarray(codes, dtype=np.int64))
    p = c[c > 0] / c.sum()
    return float(-(p * np.log2(p)).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["convert", "load"])
    ap.add_argument("path")
    ap.add_argument("plates", nargs="?")
    ap.add_argument("--plate-sizes", default="")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from importlib.metadata import version
    out = {"bionemo-scdl": version("bionemo-scdl")}
    if args.mode == "convert":
        from bionemo.scdl.io.single_cell_collection import SingleCellCollection
        t0 = time.perf_counter()
        tmp = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(args.path)))
        coll = SingleCellCollection(tmp)
        # The plates hold X only (no raw): use_X_not_raw, as SCDL's converter's --use-X flag.
        coll.load_h5ad_multi(args.plates, max_workers=2, use_processes=False, use_X_not_raw=True)
        coll.flatten(args.path, destroy_on_copy=True)
        shutil.rmtree(tmp, ignore_errors=True)
        out["seconds"] = time.perf_counter() - t0
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["store_bytes"] = sum(os.path.getsize(os.path.join(d, f))
                                 for d, _, fs in os.walk(args.path) for f in fs)
        print(json.dumps(out))
        return
    import torch
    from torch.utils.data import DataLoader
    from bionemo.scdl.io.single_cell_memmap_dataset import SingleCellMemMapDataset
    from bionemo.scdl.util.torch_dataloader_utils import collate_sparse_matrix_batch
    torch.set_num_threads(1)
    sizes = np.array([int(s) for s in args.plate_sizes.split(",")], np.int64)
    plate_of = np.repeat(np.arange(len(sizes)), sizes)
    t_open = time.perf_counter()
    ds = SingleCellMemMapDataset(args.path)
    if len(ds) != len(plate_of):
        raise SystemExit(f"{args.path}: {len(ds)} rows, plates give {len(plate_of)}")
    t0 = time.perf_counter()
    out["open_seconds"] = t0 - t_open
    cells, ent = 0, []
    for epoch in range(args.epochs):
        order = np.random.default_rng([args.seed, epoch]).permutation(len(ds))
        loader = DataLoader(ds, batch_size=args.batch_size, sampler=order.tolist(),
                            collate_fn=collate_sparse_matrix_batch, num_workers=args.workers)
        start = 0
        for batch in loader:
            n = batch.shape[0]
            ent.append(entropy_bits(plate_of[order[start:start + n]]))
            start += n
            cells += n
    dt = time.perf_counter() - t0
    out.update(cells=cells, seconds=dt, cells_per_second=cells / dt, workers=args.workers,
               entropy_bits=float(np.mean(ent)), batches=len(ent),
               peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
