"""Writes the wheel smoke test's inputs (scripts/wheel_smoke.sh), with the system Python's
anndata / h5py / zarr, so that the clean venv under test needs none of them: one small
AnnData in four stores, one per codec family the wheel bundles a library for (gzip:
libdeflate + zlib, lzf: liblzf, zarr v2 blosc-lz4: libblosc + liblz4, zarr v3 zstd:
libzstd), expected.npz: the dense X of each, its obs names and cell types, and
corpus.toml, a declared corpus over them for `cellfeed corpus`.

usage: python make_fixture.py OUTDIR
"""

import sys
import warnings
from pathlib import Path

import anndata as ad
import numcodecs
import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr
from zarr.codecs import ZstdCodec


def adata(seed: int, n_obs: int, var_names) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.7, size=(n_obs, len(var_names))).astype(np.float32)
    dense[rng.random(dense.shape) < 0.5] = 0
    obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice(["B", "T", "NK"], n_obs))},
                       index=[f"s{seed}_c{i}" for i in range(n_obs)])
    return ad.AnnData(X=sp.csr_matrix(dense), obs=obs, var=pd.DataFrame(index=var_names))


def write_zarr(a: ad.AnnData, path: Path, fmt: int, kwargs: dict) -> None:
    g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    ad.io.write_elem(g, "/", a)
    del g["X"]
    ad.io.write_elem(g, "X", a.X, dataset_kwargs=kwargs)
    zarr.consolidate_metadata(str(path))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    var_names = [f"g{j}" for j in range(40)]
    stores = {
        "gzip.h5ad": lambda a, p: a.write_h5ad(p, compression="gzip"),
        "lzf.h5ad": lambda a, p: a.write_h5ad(p, compression="lzf"),
        "blosc_v2.zarr": lambda a, p: write_zarr(
            a, p, 2, {"compressor": numcodecs.Blosc(cname="lz4", clevel=5), "chunks": (50,)}),
        "zstd_v3.zarr": lambda a, p: write_zarr(
            a, p, 3, {"compressors": [ZstdCodec(level=3)], "chunks": (50,)}),
    }
    expected = {}
    for i, (name, write) in enumerate(stores.items()):
        a = adata(i, 30 + 7 * i, var_names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write(a, out / name)
        expected[f"{name}:X"] = a.X.toarray()
        expected[f"{name}:obs_names"] = np.asarray(a.obs_names, dtype=str)
        expected[f"{name}:cell_type"] = np.asarray(a.obs["cell_type"], dtype=str)
    expected["var_names"] = np.asarray(var_names, dtype=str)
    expected["files"] = np.asarray(list(stores), dtype=str)
    np.savez(out / "expected.npz", **expected)
    (out / "corpus.toml").write_text(
        'seed = 0\n\n[[source]]\nname = "hdf5"\nfiles = ["gzip.h5ad", "lzf.h5ad"]\n'
        'where = "cell_type == \'B\'"\n\n[[source]]\nname = "zarr"\n'
        'files = ["blosc_v2.zarr", "zstd_v3.zarr"]\n')


if __name__ == "__main__":
    main(Path(sys.argv[1]))
