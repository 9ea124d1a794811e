"""obsm matrices (per-cell features: X_hvg, X_pca, embeddings; dense or CSR), listed with
`col.obsm_keys` and read with `col.read_obsm(key, rows)`, compared with anndata's own
`adata.obsm[key][rows]` on files written by anndata: h5ad uncompressed and gzip (chunked),
zarr v2 and v3 (sharded) as directories and zips, one file and several, dense and sparse;
plus anndata's 0.7 archives (data/anndata_archives) and the errors of bad declarations."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import zarr

import cellfeed

REPO = Path(__file__).resolve().parents[2]
ARCHIVES = REPO / "data" / "anndata_archives"


def _adata(n: int, seed: int, hvg_cols: int = 2000) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    X = sp.random(n, 30, density=0.2, format="csr", dtype=np.float32, random_state=seed)
    a = ad.AnnData(X=X)
    a.obs_names = [f"c{seed}_{i}" for i in range(n)]
    a.obsm["X_hvg"] = rng.random((n, hvg_cols), dtype=np.float32)
    a.obsm["X_pca"] = rng.standard_normal((n, 50))  # float64
    a.obsm["X_state"] = rng.standard_normal((n, 16)).astype(np.float32)
    a.obsm["X_sparse"] = sp.random(n, 300, density=0.05, format="csr", dtype=np.float32,
                                   random_state=seed + 1)
    a.obsm["counts_int"] = rng.integers(0, 9, (n, 7)).astype(np.int32)
    return a


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def _write_h5ad(a: ad.AnnData, path: Path, gzip: bool) -> Path:
    path = path.with_suffix(".h5ad")
    if not gzip:
        _quiet(a.write_h5ad, path)
        return path
    _quiet(a.write_h5ad, path, compression="gzip")
    with h5py.File(path, "r+") as f:  # chunks that split rows and columns
        del f["obsm/X_hvg"]
        _quiet(ad.io.write_elem, f, "obsm/X_hvg", a.obsm["X_hvg"],
               dataset_kwargs={"compression": "gzip", "chunks": (37, 300)})
    return path


def _write_zarr(a: ad.AnnData, path: Path, fmt: int, zipped: bool) -> Path:
    d = path.with_suffix(".zarr")
    g = zarr.open_group(str(d), mode="w", zarr_format=fmt)
    _quiet(ad.io.write_elem, g, "/", a)
    kwargs = {"chunks": (29, 256)}
    if fmt == 3:
        kwargs["shards"] = (58, 512)  # sharded, as anndata >= 0.13 writes by default
    del g["obsm/X_hvg"]
    _quiet(ad.io.write_elem, g, "obsm/X_hvg", a.obsm["X_hvg"], dataset_kwargs=kwargs)
    zarr.consolidate_metadata(str(d))
    if not zipped:
        return d
    z = path.with_suffix(".zarr.zip")
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(d.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(d).as_posix())
    return z


WRITERS = {
    "h5ad": lambda a, p: _write_h5ad(a, p, gzip=False),
    "h5ad-gzip": lambda a, p: _write_h5ad(a, p, gzip=True),
    "zarr2": lambda a, p: _write_zarr(a, p, 2, zipped=False),
    "zarr2-zip": lambda a, p: _write_zarr(a, p, 2, zipped=True),
    "zarr3-sharded": lambda a, p: _write_zarr(a, p, 3, zipped=False),
    "zarr3-sharded-zip": lambda a, p: _write_zarr(a, p, 3, zipped=True),
}
KEYS = ["X_hvg", "X_pca", "X_state", "X_sparse", "counts_int"]


def read_ref(path: Path) -> ad.AnnData:
    if path.suffix == ".h5ad":
        return _quiet(ad.read_h5ad, path)
    if path.is_file():
        return _quiet(ad.read_zarr, zarr.storage.ZipStore(str(path), mode="r"))
    return _quiet(ad.read_zarr, str(path))


def expected(refs: list[ad.AnnData], key: str, rows: np.ndarray) -> np.ndarray:
    whole = [r.obsm[key].toarray() if sp.issparse(r.obsm[key]) else np.asarray(r.obsm[key])
             for r in refs]
    return np.concatenate(whole).astype(np.float32)[rows]


def dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else m


def rows_for(n: int, seed: int = 0) -> np.ndarray:
    """Every row in a random order, then some again, and a sorted run."""
    rng = np.random.default_rng(seed)
    p = rng.permutation(n)
    return np.concatenate([p, p[: n // 5], np.arange(3, 12)]).astype(np.int64)


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_one_file_matches_anndata(tmp_path, fmt):
    a = _adata(145, seed=1)
    path = WRITERS[fmt](a, tmp_path / "a")
    ref = read_ref(path)
    col = cellfeed.open(str(path))
    keys = col.obsm_keys
    assert list(keys) == sorted(ref.obsm.keys())
    for key in KEYS:
        want = ref.obsm[key]
        assert keys[key]["shape"] == want.shape
        assert keys[key]["encoding"] == ("csr_matrix" if sp.issparse(want) else "array")
        assert keys[key]["dtype"] == (want.dtype.name)
        rows = rows_for(ref.n_obs)
        got = col.read_obsm(key, rows)
        assert got.dtype == np.float32 and got.shape == (len(rows), want.shape[1])
        assert sp.issparse(got) == sp.issparse(want)
        if sp.issparse(got):
            assert isinstance(got, sp.csr_matrix)
            got.check_format(full_check=True)
        np.testing.assert_array_equal(dense(got), expected([ref], key, rows))


def test_several_files_of_every_format(tmp_path):
    sizes = [70, 145, 33, 90, 51, 64]
    paths = [WRITERS[fmt](_adata(n, seed=10 + i, hvg_cols=400), tmp_path / f"f{i}")
             for i, (fmt, n) in enumerate(zip(WRITERS, sizes))]
    refs = [read_ref(p) for p in paths]
    col = cellfeed.open([str(p) for p in paths])
    assert list(col.obsm_keys) == sorted(KEYS)
    rows = rows_for(sum(sizes), seed=3)
    for key in KEYS:
        got = col.read_obsm(key, rows)
        np.testing.assert_array_equal(dense(got), expected(refs, key, rows))
    # A request that touches one file only, and an empty one.
    np.testing.assert_array_equal(col.read_obsm("X_pca", [75, 74]),
                                  expected(refs, "X_pca", np.array([75, 74])))
    assert col.read_obsm("X_hvg", []).shape == (0, 400)
    assert col.read_obsm("X_sparse", []).shape == (0, 300)


def test_dense_in_one_file_sparse_in_another_reads_dense(tmp_path):
    a, b = _adata(40, seed=2, hvg_cols=64), _adata(30, seed=3, hvg_cols=64)
    b.obsm["X_pca"] = sp.csr_matrix(np.where(np.abs(b.obsm["X_pca"]) > 1, b.obsm["X_pca"], 0))
    a.obsm["X_sparse"] = a.obsm["X_sparse"].toarray()
    paths = [WRITERS["h5ad"](a, tmp_path / "a"), WRITERS["zarr2"](b, tmp_path / "b")]
    refs = [read_ref(p) for p in paths]
    col = cellfeed.open([str(p) for p in paths])
    assert col.obsm_keys["X_pca"]["encoding"] == "mixed"
    rows = rows_for(70, seed=4)
    for key in ("X_pca", "X_sparse"):
        got = col.read_obsm(key, rows)
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, expected(refs, key, rows))


def test_anndata_07_archives(tmp_path):
    paths = [ARCHIVES / v / name for v in ("v0.7.0", "v0.7.8")
             for name in ("adata.h5ad", "adata.zarr.zip")]
    refs = [read_ref(p) for p in paths]
    col = cellfeed.open([str(p) for p in paths])
    # obsm/df is a dataframe, not a matrix: not listed.
    assert list(col.obsm_keys) == ["array", "sparse"]
    rows = rows_for(120, seed=5)
    for key in ("array", "sparse"):
        np.testing.assert_array_equal(dense(col.read_obsm(key, rows)), expected(refs, key, rows))
    with pytest.raises(ValueError,
                       match=r"adata\.h5ad: obsm/df: encoding 'dataframe' is not a matrix"):
        col.read_obsm("df", [0])


def test_missing_key_and_other_width_are_errors_naming_the_file(tmp_path):
    a, b = _adata(20, seed=4, hvg_cols=32), _adata(20, seed=5, hvg_cols=48)
    del b.obsm["X_state"]
    pa, pb = WRITERS["h5ad"](a, tmp_path / "a"), WRITERS["zarr2-zip"](b, tmp_path / "b")
    col = cellfeed.open([str(pa), str(pb)])
    assert "X_state" not in col.obsm_keys and "X_hvg" not in col.obsm_keys
    assert "X_pca" in col.obsm_keys
    with pytest.raises(ValueError, match=r"b\.zarr\.zip: obsm/X_state: missing "
                                         r"\(this file's obsm: X_hvg, X_pca, X_sparse, "
                                         r"counts_int\)"):
        col.read_obsm("X_state", [0])
    with pytest.raises(ValueError,
                       match=r"b\.zarr\.zip: obsm/X_hvg: has 48 columns, .*a\.h5ad has 32"):
        col.read_obsm("X_hvg", [0])
    with pytest.raises(IndexError):
        col.read_obsm("X_pca", [40])


def test_non_finite_values_are_an_error_unless_values_any(tmp_path):
    a = _adata(25, seed=6, hvg_cols=8)
    a.obsm["X_pca"][7, 3] = np.nan
    path = WRITERS["zarr3-sharded"](a, tmp_path / "a")
    with pytest.raises(ValueError, match=r"obsm/X_pca"):
        cellfeed.open(str(path)).read_obsm("X_pca", [6, 7])
    got = cellfeed.open(str(path), values="any").read_obsm("X_pca", [7])
    assert np.isnan(got[0, 3]) and np.isfinite(np.delete(got[0], 3)).all()


def test_csc_and_bad_rows_in_obsm_do_not_stop_x(tmp_path):
    a = _adata(20, seed=7, hvg_cols=8)
    a.obsm["X_csc"] = sp.csc_matrix(a.obsm["X_state"])
    path = WRITERS["h5ad"](a, tmp_path / "a")
    col = cellfeed.open(str(path))
    assert col.read([0, 1]).shape == (2, 30)  # X opens whatever obsm holds
    assert "X_csc" not in col.obsm_keys
    with pytest.raises(ValueError, match=r"obsm/X_csc: csc_matrix is not read"):
        col.read_obsm("X_csc", [0])
