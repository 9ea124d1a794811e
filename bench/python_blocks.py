"""How many Python memory blocks stay allocated per batch and per epoch: the Loader
iterated directly, through one DataLoader with persistent workers, and through a fresh
DataLoader (non-persistent workers) every epoch. A leak of one object per batch shows as
~1 block per batch; a steady per-epoch figure that does not scale with the batches of an
epoch is a per-epoch cost. (sys.getallocatedblocks after gc.collect; warm-up epochs first.)

    python bench/python_blocks.py [--epochs 30] [--batch-size 32] [--modes direct,persistent,fresh]
    python bench/python_blocks.py --trace persistent     # where the kept blocks were allocated
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import tracemalloc
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")
import soak  # noqa: E402  (its files: 3 gzip h5ad files with a categorical obs column)


def run(paths, mode: str, epochs: int, batch_size: int, trace: bool) -> dict:
    import cellfeed
    from torch.utils.data import DataLoader

    loader = cellfeed.Loader(paths, batch_size=batch_size, output="torch", seed=1)
    persistent = DataLoader(loader, batch_size=None, num_workers=2, persistent_workers=True) \
        if mode == "persistent" else None

    def epoch(e: int) -> int:
        loader.set_epoch(e)
        if mode == "direct":
            it = loader
        elif mode == "persistent":
            it = persistent
        else:
            it = DataLoader(loader, batch_size=None, num_workers=2)
        return sum(1 for _ in it)

    for e in range(5):
        epoch(e)
    if trace:
        tracemalloc.start(12)
    gc.collect()
    snap, b0 = (tracemalloc.take_snapshot() if trace else None), sys.getallocatedblocks()
    batches = sum(epoch(e) for e in range(5, 5 + epochs))
    gc.collect()
    b1 = sys.getallocatedblocks()
    out = {"mode": mode, "epochs": epochs, "batches": batches, "blocks_kept": b1 - b0,
           "per_batch": (b1 - b0) / batches, "per_epoch": (b1 - b0) / epochs}
    if trace:
        out["top"] = [{"blocks": s.count_diff, "bytes": s.size_diff, "where": s.traceback.format()[-8:]}
                      for s in tracemalloc.take_snapshot().compare_to(snap, "traceback")[:5] if s.count_diff > 0]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--modes", default="direct,persistent,fresh")
    ap.add_argument("--trace", default=None, help="one mode, with tracemalloc")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = soak.write_files(Path(tmp), 6000, 3)
        modes = [args.trace] if args.trace else args.modes.split(",")
        for m in modes:
            print(json.dumps(run(paths, m, args.epochs, args.batch_size, bool(args.trace))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
