"""anndata's AnnLoader over backed AnnData files joined in an AnnCollection.

Full random sampling (shuffle=True, drop_last=True, as scDataset's benchmark runs it in
"random" mode): every batch is a random set of cells, read from the backed files through
AnnCollectionView.X. No DataLoader workers (AnnLoader switches to per-cell collation
with workers), no block size, no fetch factor: those config values are ignored.

use_default_converter=False keeps X as scipy CSR float32 (the default converter would
densify it into a torch tensor), so the batch matches the other peers'.
Shuffling uses numpy's global RNG (np.random.permutation): seeded with (seed + epoch).
"""

from __future__ import annotations

import warnings

import numpy as np

from ._anndata_util import backed_collection

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from anndata.experimental import AnnLoader


def effective_config(config: dict) -> dict:
    cfg = dict(config)
    cfg.update(block_size=1, fetch_factor=1, num_workers=0, sampling="random", drop_last=True)
    return cfg


def make_iterator(paths, config: dict):
    cfg = effective_config(config)
    collection = backed_collection(paths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = AnnLoader(collection, batch_size=int(cfg["batch_size"]), shuffle=True,
                           drop_last=True, use_default_converter=False)

    def epoch_fn(epoch: int):
        np.random.seed((int(cfg["seed"]) + epoch) % 2**32)
        for view in loader:
            yield view.X, view.obs["plate"].to_numpy(), np.asarray(view.oidx)

    return epoch_fn
