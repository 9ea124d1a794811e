"""Writer of the zarr stores the zarr tests read, with the real anndata and zarr-python.

Runs in this Python (zarr v2 and v3 from anndata 0.12 / zarr 3) and, as a script, in the
separate Python 3.12 environment holding anndata >= 0.13 and annbatch
(`python zarr_fixtures.py OUTDIR`), where it also writes each store's reference as
read back by that environment's `anndata.read_zarr` (an .h5ad beside it), so the tests
compare cellfeed with anndata's own zarr reader, never with the arrays used to write.

Every store holds one AnnData: CSR X, a dense layer, raw (with more genes), and obs/var
with categorical, string, numeric, bool and nullable columns. Codec variants rewrite X
and the layer with the given zarr keyword arguments (`anndata.io.write_elem`'s
dataset_kwargs) and consolidate the metadata again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr


def make_adata(n_obs: int = 240, n_vars: int = 60, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    X = sp.random(n_obs, n_vars, density=0.15, format="csr", dtype=np.float32,
                  random_state=seed)
    X.data = np.ceil(X.data * 20).astype(np.float32)
    X[3] = 0  # an empty row
    X.eliminate_zeros()
    obs = pd.DataFrame(index=[f"cell{seed}_{i}" for i in range(n_obs)])
    obs["cell_type"] = pd.Categorical(rng.choice(["T", "B", "NK", "Mono"], n_obs))
    obs["donor"] = [f"d{i % 7}" for i in range(n_obs)]
    obs["n_counts"] = np.asarray(X.sum(axis=1)).ravel().astype(np.float32)
    obs["batch"] = rng.integers(0, 5, n_obs).astype(np.int64)
    obs["is_doublet"] = rng.random(n_obs) > 0.9
    obs["n_genes_nullable"] = pd.array([None if i % 9 == 0 else i for i in range(n_obs)],
                                       dtype="Int64")
    obs["qc_pass"] = pd.array([None if i % 11 == 0 else i % 2 == 0 for i in range(n_obs)],
                              dtype="boolean")
    var = pd.DataFrame(index=[f"gene{i}" for i in range(n_vars)])
    var["highly_variable"] = rng.random(n_vars) > 0.5
    var["mean"] = rng.random(n_vars)
    var["feature_type"] = pd.Categorical(["Gene Expression"] * n_vars)
    a = ad.AnnData(X=X, obs=obs, var=var)
    a.layers["counts"] = (X * 2).toarray().astype(np.int32)
    raw_X = sp.hstack([X, sp.random(n_obs, 5, density=0.3, format="csr", dtype=np.float32,
                                    random_state=seed + 1)]).tocsr()
    raw_var = pd.DataFrame(index=list(var.index) + [f"rawgene{i}" for i in range(5)])
    a.raw = ad.AnnData(X=raw_X, obs=obs[[]], var=raw_var)
    return a


def _quiet():
    warnings.simplefilter("ignore")


def write_store(path, fmt: int, kwargs: dict | None = None, adata: ad.AnnData | None = None,
                consolidate: bool = True, dense_chunks: tuple | None = None) -> Path:
    """An AnnData store written by anndata; X and layers/counts with `kwargs` (the dense
    layer's chunks `dense_chunks`, 2-D, in place of kwargs' 1-D `chunks`)."""
    path = Path(path)
    with warnings.catch_warnings():
        _quiet()
        a = adata if adata is not None else make_adata()
        g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
        ad.io.write_elem(g, "/", a)
        if kwargs:
            del g["X"]
            ad.io.write_elem(g, "X", a.X, dataset_kwargs=kwargs)
            del g["layers/counts"]
            dense = {k: v for k, v in kwargs.items() if k not in ("chunks", "shards")}
            if dense_chunks:
                dense["chunks"] = dense_chunks
            ad.io.write_elem(g, "layers/counts", a.layers["counts"], dataset_kwargs=dense)
        if consolidate:
            zarr.consolidate_metadata(str(path))
    return path


def zip_store(directory, zip_path, deflate: bool = False, prefix: str = "") -> Path:
    """A zip of a directory store, as `zip -r` makes it: members DEFLATEd or STORED."""
    directory, zip_path = Path(directory), Path(zip_path)
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(zip_path, "w", compression=method) as z:
        for root, _, files in sorted(os.walk(directory)):
            for f in sorted(files):
                full = Path(root) / f
                z.write(full, prefix + str(full.relative_to(directory)))
    return zip_path


def zarr_zip_store(directory, zip_path) -> Path:
    """The same store copied into zarr-python's own ZipStore (STORED members)."""
    with warnings.catch_warnings():
        _quiet()
        src = zarr.open_group(str(directory), mode="r")
        a = ad.io.read_elem(src)
        store = zarr.storage.ZipStore(str(zip_path), mode="w")
        g = zarr.open_group(store, mode="w")
        ad.io.write_elem(g, "/", a)
        zarr.consolidate_metadata(store)
        store.close()
    return Path(zip_path)


# --------------------------------------------------------------------------------------
# The Python 3.12 environment: anndata >= 0.13 (sharded zarr v3 by default) and annbatch.


def write_modern(outdir, pbmc68k: str | None = None) -> dict:
    """Stores written by anndata >= 0.13's defaults, zipped, and an annbatch collection.

    Returns {name: [store, reference .h5ad]} (annbatch: [root, references per dataset...]).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    made = {}
    with warnings.catch_warnings():
        _quiet()
        a = make_adata()
        d = outdir / "anndata013.zarr"
        a.write_zarr(d)
        made["sharded"] = [d]
        u = outdir / "anndata013_unsharded.zarr"
        g = zarr.open_group(str(u), mode="w", zarr_format=3)
        ad.io.write_elem(g, "/", a, dataset_kwargs={"shards": None})
        zarr.consolidate_metadata(str(u))
        made["unsharded"] = [u]
        z = outdir / "anndata013.zarr.zip"
        store = zarr.storage.ZipStore(str(z), mode="w")
        a.write_zarr(store)
        store.close()
        made["zipped"] = [z]
        if pbmc68k:  # the real store: only its reference (this zarr reads it)
            made["pbmc68k"] = [Path(pbmc68k)]
        for name, paths in made.items():
            ref = outdir / f"{name}.reference.h5ad"
            zipped = str(paths[0]).endswith(".zip")
            src = zarr.storage.ZipStore(str(paths[0]), mode="r") if zipped else paths[0]
            ad.read_zarr(src).write_h5ad(ref)
            paths.append(ref)
        try:
            import annbatch
        except ImportError:
            return {k: [str(p) for p in v] for k, v in made.items()}
        h5 = []
        for i in range(3):
            p = outdir / f"part{i}.h5ad"
            make_adata(n_obs=300 + 50 * i, seed=10 + i).write_h5ad(p)
            h5.append(p)
        root = outdir / "annbatch_collection.zarr"
        coll = annbatch.DatasetCollection(str(root))
        # dataset_size (rows per dataset) splits the cells over several dataset_<i> groups.
        coll.add_adatas([str(p) for p in h5], dataset_size=400, shuffle_chunk_size=100)
        made["annbatch"] = [root]
        gr = zarr.open_group(str(root), mode="r")
        i = 0
        while f"dataset_{i}" in gr:
            ref = outdir / f"annbatch_dataset_{i}.reference.h5ad"
            ad.io.read_elem(gr[f"dataset_{i}"]).write_h5ad(ref)
            made["annbatch"].append(ref)
            i += 1
        # annbatch writing straight into zarr-python's ZipStore (its own zipped layout);
        # the references are what annbatch reads back from the zip, dataset by dataset.
        zroot = outdir / "annbatch_collection.zarr.zip"
        store = zarr.storage.ZipStore(str(zroot), mode="w")
        coll = annbatch.DatasetCollection(zarr.open_group(store, mode="w"))
        coll.add_adatas([str(p) for p in h5], dataset_size=400, shuffle_chunk_size=100)
        store.close()
        made["annbatch_zip"] = [zroot]
        store = zarr.storage.ZipStore(str(zroot), mode="r")
        coll = annbatch.DatasetCollection(zarr.open_group(store, mode="r"), mode="r")
        for i, group in enumerate(coll):
            ref = outdir / f"annbatch_zip_dataset_{i}.reference.h5ad"
            ad.io.read_elem(group).write_h5ad(ref)
            made["annbatch_zip"].append(ref)
        store.close()
    return {k: [str(p) for p in v] for k, v in made.items()}


if __name__ == "__main__":
    print(json.dumps(write_modern(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)))
