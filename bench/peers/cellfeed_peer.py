"""cellfeed.Loader: block sampling + batched fetching, decoded by its C++ engine.

    cellfeed.Loader(paths, batch_size=m, block_size=b, fetch_factor=f, seed=seed,
                    obs=["plate"], output="scipy")

iterated directly (num_workers=0) or under torch's DataLoader(loader, batch_size=None,
num_workers=w). Epoch e is selected with set_epoch(e). Plate labels are the collection's
category codes (one code per plate across all files); rows are global row ids.

Extra config key: threads (decode threads per engine; cellfeed's default when absent).
"""

from __future__ import annotations

import os

import cellfeed

VERSION = getattr(cellfeed, "__version__", "?")
SOURCE = os.path.dirname(cellfeed.__file__)


def effective_config(config: dict) -> dict:
    return dict(config)


def make_iterator(paths, config: dict):
    cfg = effective_config(config)
    loader = cellfeed.Loader([os.fspath(p) for p in paths], batch_size=int(cfg["batch_size"]),
                             block_size=(cfg["block_size"] if cfg["block_size"] == "chunk"
                                         else int(cfg["block_size"])),
                             fetch_factor=int(cfg["fetch_factor"]), seed=int(cfg["seed"]),
                             obs=["plate"], output="scipy", threads=cfg.get("threads"))
    w = int(cfg["num_workers"])
    if w > 0:
        from torch.utils.data import DataLoader
        source = DataLoader(loader, batch_size=None, num_workers=w)
    else:
        source = loader

    def epoch_fn(epoch: int):
        loader.set_epoch(epoch)
        for b in source:
            yield b.X, b.obs["plate"], b.rows

    return epoch_fn
