"""The Loader under torch's DataLoader workers against the Loader iterated directly.

    python bench/tahoe_like.py /tmp/tahoe150k --cells 150000 --compression none
    python bench/dataloader_bench.py /tmp/tahoe150k --epochs 3

For every DataLoader configuration (num_workers 1, 2, 4; persistent or not; fork and
spawn), the direct Loader runs in this same process, same files and
options, and the ratio is taken against that neighbour, alternating one epoch of each, so a
machine shared with other work biases both alike. Epoch 0 of each run is a warm-up (page cache, worker start for
persistent workers) and is not counted; non-persistent workers restart every epoch, and
that cost is counted, as it is in training. Each batch is touched (its nonzeros summed)
as a training step would read it. Any warning raised is reported and fails the run.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import cellfeed


def touch(batch) -> int:
    X = batch.X
    if isinstance(X, torch.Tensor):
        v = X.values() if X.layout == torch.sparse_csr else X
        float(v.sum())
    else:
        float(X.data.sum())
    return len(batch.rows)


def epoch_rate(iterable, loader, epoch: int) -> tuple[int, float]:
    loader.set_epoch(epoch)
    t = time.perf_counter()
    n = sum(touch(b) for b in iterable)
    return n, time.perf_counter() - t


def compare(loader, dl, epochs: int) -> tuple[float, float]:
    """cells/s of direct iteration and of the DataLoader over epochs 1..epochs-1 (epoch 0
    warms up), alternating one epoch of each so that both see the same machine."""
    totals = [[0, 0.0], [0, 0.0]]
    for e in range(epochs):
        for k, it in enumerate((loader, dl)):
            n, dt = epoch_rate(it, loader, e)
            if e > 0:
                totals[k][0] += n
                totals[k][1] += dt
    return totals[0][0] / totals[0][1], totals[1][0] / totals[1][1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="folder of .h5ad files (bench/tahoe_like.py)")
    ap.add_argument("--epochs", type=int, default=3, help="per run, the first is warm-up")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--fetch-factor", type=int, default=64)
    ap.add_argument("--outputs", default="torch,scipy")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--contexts", default="fork,spawn")
    ap.add_argument("--transport", default="shm", choices=["shm", "pickle"])
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    paths = sorted(glob.glob(str(args.data / "*.h5ad")))
    if not paths:
        sys.exit(f"no .h5ad files in {args.data}")
    kw = dict(batch_size=args.batch_size, block_size=args.block_size,
              fetch_factor=args.fetch_factor, worker_transport=args.transport)
    rows, caught = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for output in args.outputs.split(","):
            loader = cellfeed.Loader(paths, output=output, **kw)
            print(f"{output}: {loader.collection.n_obs} cells, {len(loader)} batches/epoch",
                  flush=True)
            for ctx in args.contexts.split(","):
                for persistent in (True, False):
                    for nw in (int(w) for w in args.workers.split(",")):
                        dl = DataLoader(loader, batch_size=None, num_workers=nw,
                                        persistent_workers=persistent,
                                        multiprocessing_context=ctx)
                        direct, rate = compare(loader, dl, args.epochs)
                        del dl
                        r = dict(output=output, context=ctx, persistent=persistent,
                                 num_workers=nw, direct_cells_s=round(direct),
                                 dataloader_cells_s=round(rate), ratio=round(rate / direct, 3))
                        rows.append(r)
                        print(f"  {ctx:5s} persistent={persistent!s:5s} workers={nw}: "
                              f"{rate:10,.0f} cells/s vs direct {direct:10,.0f}: "
                              f"{rate / direct:.2f}x", flush=True)
    # torch's own advice when num_workers exceeds the cores is reported, not counted.
    torch_advice = [w for w in caught if "suggested max number of worker" in str(w.message)]
    caught = [w for w in caught if w not in torch_advice]
    if torch_advice:
        print(f"(torch advised fewer workers {len(torch_advice)} times: num_workers > cores)")
    for w in caught:
        print(f"WARNING {w.category.__name__}: {w.message}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"data": str(args.data),
                                                               "json": str(args.json)},
                                         "results": rows,
                                         "warnings": [str(w.message) for w in caught]}, indent=1))
    return 1 if caught else 0


if __name__ == "__main__":
    sys.exit(main())
