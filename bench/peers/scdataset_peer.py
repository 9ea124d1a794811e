"""scDataset 0.3.0 (PyPI `scdataset`) over anndata's backed AnnCollection.

Set up as scDataset's own benchmark (benchmarks/evaluate_scdataset.py, AnnCollection
branch) and as PEERS.md measured it:

    collection = AnnCollection([read_h5ad(p, backed="r") ...])      # obs = obs[["plate"]]
    dataset = scDataset(collection, BlockShuffling(block_size=b), batch_size=m,
                        fetch_factor=f, fetch_transform=<view.to_adata()>, seed=seed)
    loader = DataLoader(dataset, batch_size=None, num_workers=w,
                        prefetch_factor=f + 1 if w > 0 else None)

scDataset sorts each fetch's m*f indices, indexes the AnnCollection with them (a lazy
AnnCollectionView), fetch_transform materializes it (to_adata(): reads X from the backed
files as scipy CSR float32), then yields in-memory AnnData views of m shuffled cells; the
consumer reads batch.X (CSR) and batch.obs["plate"].

The upstream benchmark's fetch_transform_adata additionally densifies X (toarray()) and
wraps it in a MultiIndexable: not done here, so that every peer yields the same float32
CSR batch. (MultiIndexable cannot hold a CSR matrix: it calls len() on it.)

Extra config keys:
  scdataset_batch: "anndata" (default; the DataLoader passes AnnData views, which with
      worker processes pickle their whole parent fetch) or "csr" (a batch_transform
      turns each view into (X, plates) inside the dataset, so workers pickle only that).
  prefetch_factor: DataLoader prefetch_factor with workers (default f + 1, as upstream).
"""

from __future__ import annotations

import numpy as np
import scdataset
from scdataset import BlockShuffling, scDataset
from torch.utils.data import DataLoader

from ._anndata_util import backed_collection

VERSION = scdataset.__version__


def fetch_to_adata(view):
    """fetch_transform: materialize the fetched AnnCollectionView in memory."""
    return view.to_adata()


def fetch_to_adata_with_rows(view):
    """As fetch_to_adata, keeping the global row ids (for the correctness check only)."""
    adata = view.to_adata()
    adata.obs["_row"] = np.asarray(view.oidx, dtype=np.int64)
    return adata


def batch_to_csr(batch):
    """batch_transform for scdataset_batch="csr": (X, plates[, rows])."""
    plates = batch.obs["plate"].to_numpy()
    if "_row" in batch.obs:
        return batch.X, plates, batch.obs["_row"].to_numpy()
    return batch.X, plates


def effective_config(config: dict) -> dict:
    cfg = dict(config)
    cfg.setdefault("scdataset_batch", "anndata")
    w = int(cfg["num_workers"])
    cfg.setdefault("prefetch_factor", int(cfg["fetch_factor"]) + 1 if w > 0 else None)
    return cfg


def make_iterator(paths, config: dict):
    cfg = effective_config(config)
    with_rows = bool(cfg.get("with_rows", False))
    collection = backed_collection(paths)
    dataset = scDataset(
        collection,
        BlockShuffling(block_size=int(cfg["block_size"])),
        batch_size=int(cfg["batch_size"]),
        fetch_factor=int(cfg["fetch_factor"]),
        fetch_transform=fetch_to_adata_with_rows if with_rows else fetch_to_adata,
        batch_transform=batch_to_csr if cfg["scdataset_batch"] == "csr" else None,
        seed=int(cfg["seed"]),
    )
    w = int(cfg["num_workers"])
    loader = DataLoader(dataset, batch_size=None, num_workers=w,
                        prefetch_factor=cfg["prefetch_factor"] if w > 0 else None)

    def epoch_fn(epoch: int):
        # scDataset advances its own epoch counter at each iter() (in the main process;
        # with non-persistent workers the counter lives in the workers' copies).
        for batch in loader:
            if cfg["scdataset_batch"] == "csr":
                yield tuple(np.asarray(x) if not hasattr(x, "nnz") else x for x in batch)
            elif with_rows:
                yield batch.X, batch.obs["plate"].to_numpy(), batch.obs["_row"].to_numpy()
            else:
                yield batch.X, batch.obs["plate"].to_numpy()

    return epoch_fn
