"""Opening the plate files the way scDataset's own AnnCollection benchmark does."""

from __future__ import annotations

import os
import warnings


def backed_collection(paths):
    """anndata backed ('r') AnnData per file, obs reduced to the plate column, joined in
    an AnnCollection (as scDataset's benchmarks/evaluate_scdataset.py does)."""
    import anndata as ad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AnnCollection / AnnLoader deprecation notices
        from anndata.experimental import AnnCollection
        adatas = [ad.read_h5ad(os.fspath(p), backed="r") for p in paths]
        for a in adatas:
            a.obs = a.obs[["plate"]]
        return AnnCollection(adatas)
