"""cellfeed.open(...).read(rows) against anndata, file by file.

The reference is anndata.read_h5ad of the same file (and h5py for storage facts);
values are compared exactly after float32 conversion of the stored values (numpy's
float32 conversion is round-to-nearest, as the engine's must be).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

import cellfeed
from fixtures import (CSR_GRID, DENSE_GRID, FILTERS, LAYER_CASES, ROW_SETS, SINGLE_NAMES,
                      reference_matrix, row_set)

X_CASES = [(name, None) for name in SINGLE_NAMES] + LAYER_CASES


def _ids(case):
    name, layer = case
    return name if layer is None else f"{name}[{layer}]"


def expected_rows(matrix, rows: np.ndarray) -> sp.csr_matrix:
    """anndata's rows as a float32 CSR matrix: for a sparse source its stored entries in
    stored order (scipy's row indexing keeps them), for a dense one its nonzeros."""
    if sp.issparse(matrix):
        m = matrix.tocsr()
        # scipy warns on unsigned index arrays (uint8/16/32 files): widen them first.
        m = sp.csr_matrix((m.data, m.indices.astype(np.int64), m.indptr.astype(np.int64)),
                          shape=m.shape)
        sub = m[rows]
        return sp.csr_matrix((sub.data.astype(np.float32), sub.indices, sub.indptr),
                             shape=sub.shape)
    return sp.csr_matrix(np.asarray(matrix)[rows].astype(np.float32))


@pytest.mark.parametrize("kind", ROW_SETS)
@pytest.mark.parametrize("case", X_CASES, ids=_ids)
def test_read_matches_anndata(paths, reference, case, kind):
    name, layer = case
    adata = reference(paths[name])
    matrix = reference_matrix(adata, layer)
    col = cellfeed.open(paths[name], layer=layer)
    rows = row_set(kind, col.n_obs, seed=len(name))

    got = col.read(rows)

    assert isinstance(got, sp.csr_matrix)
    assert got.dtype == np.float32
    assert got.shape == (len(rows), matrix.shape[1])
    dense_ref = (np.asarray(matrix[rows].todense()) if sp.issparse(matrix)
                 else np.asarray(matrix)[rows]).astype(np.float32)
    np.testing.assert_array_equal(got.toarray(), dense_ref, strict=True)
    # Same stored entries, in the same order, row by row.
    exp = expected_rows(matrix, rows)
    np.testing.assert_array_equal(got.indptr, exp.indptr)
    np.testing.assert_array_equal(got.indices, exp.indices)
    np.testing.assert_array_equal(got.data, exp.data, strict=True)


@pytest.mark.parametrize("case", X_CASES, ids=_ids)
def test_shape_and_names(paths, reference, case):
    name, layer = case
    adata = reference(paths[name])
    matrix = reference_matrix(adata, layer)
    col = cellfeed.open(paths[name], layer=layer)
    assert (col.n_obs, col.n_vars) == matrix.shape
    assert col.shape == matrix.shape
    assert len(col) == adata.n_obs
    var_names = adata.raw.var_names if layer == "raw" else adata.var_names
    assert list(col.var_names) == list(var_names)
    assert col.files == [str(paths[name])]
    np.testing.assert_array_equal(col.file_offsets, [0, adata.n_obs])


@pytest.mark.parametrize("name", ["ad_csr_float32_plain", "ad_dense_float32_gzip",
                                  "csr01_float64_int64_int64_gzip_c3", "real_pbmc68k"])
def test_threads_give_identical_results(paths, name):
    one = cellfeed.open(paths[name], threads=1)
    two = cellfeed.open(paths[name], threads=2)
    assert (one.threads, two.threads) == (1, 2)
    assert cellfeed.open(paths[name]).threads >= 1
    for kind in ROW_SETS:
        rows = row_set(kind, one.n_obs, seed=3)
        a, b = one.read(rows), two.read(rows)
        for x, y in ((a.data, b.data), (a.indices, b.indices), (a.indptr, b.indptr)):
            np.testing.assert_array_equal(x, y, strict=True)
        assert one.obs(rows=rows).equals(two.obs(rows=rows))


def test_repeated_reads_are_stable(paths, reference):
    col = cellfeed.open(paths["csr00_float32_int32_int32_none_c3"], threads=2)
    ref = reference(paths["csr00_float32_int32_int32_none_c3"]).X
    rows = row_set("duplicates", col.n_obs, seed=9)
    for _ in range(3):
        np.testing.assert_array_equal(col.read(rows).toarray(), ref[rows].toarray())


def test_rows_accept_numpy_and_lists(paths, reference):
    col = cellfeed.open(paths["ad_csr_float32_plain"])
    ref = reference(paths["ad_csr_float32_plain"]).X
    for rows in ([5, 1, 5], (5, 1, 5), np.array([5, 1, 5], dtype=np.int32),
                 np.array([5, 1, 5], dtype=np.uint64), range(2, 9)):
        np.testing.assert_array_equal(col.read(rows).toarray(), ref[list(rows)].toarray())


# --------------------------------------------------------------------------------------
# Storage facts: the fixtures cover what they claim, and summaries() reports it as h5py does

def h5py_filters(ds: h5py.Dataset) -> str:
    """The filter pipeline of a dataset, in pipeline order, as h5py's libhdf5 reports it."""
    plist = ds.id.get_create_plist()
    names = []
    for i in range(plist.get_nfilters()):
        fid, _flags, values, _name = plist.get_filter(i)
        names.append({1: f"gzip({values[0]})" if values else "gzip", 2: "shuffle",
                      3: "fletcher32", 32000: "lzf"}.get(fid, str(fid)))
    return "+".join(names) or "none"


def expected_summary_arrays(path, element="X") -> list[dict]:
    out = []
    with h5py.File(path, "r") as f:
        node = f[element]
        datasets = ([(f"{element}/{p}", node[p]) for p in ("data", "indices", "indptr")]
                    if isinstance(node, h5py.Group) else [(element, node)])
        for name, ds in datasets:
            out.append({
                "name": name, "dtype": str(ds.dtype), "shape": list(ds.shape),
                "chunk_shape": list(ds.chunks) if ds.chunks else [],
                "storage": "chunked" if ds.chunks else "contiguous",
                "filters": h5py_filters(ds),
                "num_chunks": ds.id.get_num_chunks() if ds.chunks else 0,
            })
    return out


SUMMARY_CASES = [n for n, _ in CSR_GRID] + [d[0] for d in DENSE_GRID] + [
    "ad_csr_float64_gzip", "ad_csr_uint16_lzf_minidx", "ad_dense_float64_plain",
    "h5_userblock_contig", "real_pbmc68k"]


@pytest.mark.parametrize("name", SUMMARY_CASES)
def test_summary_matches_h5py(paths, name):
    (s,) = cellfeed.open(paths[name]).summaries()
    with h5py.File(paths[name], "r") as f:
        X = f["X"]
        sparse = isinstance(X, h5py.Group)
        shape = tuple(int(v) for v in X.attrs["shape"]) if sparse else X.shape
        nnz = X["data"].shape[0] if sparse else None
    assert (s["n_obs"], s["n_vars"]) == shape
    assert s["encoding"] == ("csr_matrix" if sparse else "array")
    assert s["element"] == "X"
    if sparse:
        assert s["nnz"] == nnz
    got = [{k: a[k] for k in ("name", "dtype", "shape", "chunk_shape", "storage", "filters",
                              "num_chunks")} for a in s["arrays"]]
    exp = expected_summary_arrays(paths[name])
    # Unwritten chunks (the fill-value fixture) are still chunks of the grid for cellfeed.
    if name.endswith("_fill"):
        for e in exp:
            e["num_chunks"] = int(np.prod([-(-n // c) for n, c in zip(e["shape"],
                                                                          e["chunk_shape"])]))
    assert got == exp


@pytest.mark.parametrize("name,spec", CSR_GRID, ids=[n for n, _ in CSR_GRID])
def test_csr_grid_fixture_is_what_it_claims(paths, name, spec):
    """Guards the coverage: dtypes, chunking and filters as named (checked with h5py)."""
    with h5py.File(paths[name], "r") as f:
        g = f["X"]
        assert g.attrs["encoding-type"] == "csr_matrix"
        assert str(g["data"].dtype) == spec["data_dtype"]
        assert str(g["indices"].dtype) == spec["indices_dtype"]
        assert str(g["indptr"].dtype) == spec["indptr_dtype"]
        for part in ("data", "indices", "indptr"):
            ds = g[part]
            if spec["chunk"] is None and spec["filters"] == "none":
                assert ds.chunks is None
            elif spec["chunk"] is not None:
                assert ds.chunks == (spec["chunk"],)
            fkw = FILTERS[spec["filters"]]
            assert ds.compression == fkw.get("compression")
            assert ds.shuffle == fkw.get("shuffle", False)
            assert ds.fletcher32 == fkw.get("fletcher32", False)
        indptr = g["indptr"][...]
        lengths = np.diff(indptr)
        assert (lengths == 0).any()  # empty rows present
        if spec["chunk"] == 3:  # chunks smaller than one row
            assert lengths.max() > 3 * 4


def test_special_fixtures_are_what_they_claim(paths):
    with h5py.File(paths["ad_userblock_gzip"], "r") as f:
        assert f.userblock_size == 512
    with h5py.File(paths["h5_userblock_contig"], "r") as f:
        assert f.userblock_size == 1024
        assert all(f["X"][p].chunks is None for p in ("data", "indices", "indptr"))
    with h5py.File(paths["ad_zero_cells"], "r") as f:
        assert tuple(f["X"].attrs["shape"]) == (0, 50)
    with h5py.File(paths["ad_layers_raw"], "r") as f:
        assert f["raw/var/_index"].shape[0] > f["var/_index"].shape[0]
        assert f["layers/counts"].attrs["encoding-type"] == "csr_matrix"
        assert f["layers/scaled"].attrs["encoding-type"] == "array"
    with h5py.File(paths["dense_float64_c16x8_fill"], "r") as f:
        ds = f["X"]
        n_grid = -(-ds.shape[0] // 16) * -(-ds.shape[1] // 8)
        assert ds.id.get_num_chunks() < n_grid  # some chunks never written
        assert ds.fillvalue == 2.5
    with h5py.File(paths["ad_csr_uint16_lzf_minidx"], "r") as f:
        assert f["X/indices"].dtype == np.uint16
        # strings (index, categories) are LZF-compressed too: read through libhdf5
        assert f["obs/_index"].compression == "lzf"
        assert f["obs/cell_type/categories"].compression == "lzf"
    with h5py.File(paths["h5_unsorted_indices"], "r") as f:
        idx, ptr = f["X/indices"][...], f["X/indptr"][...]
        assert any((np.diff(idx[a:b]) < 0).any() for a, b in zip(ptr[:-1], ptr[1:]))


def test_fill_value_chunks_read_as_fill(paths, reference):
    """Chunks never written hold the dataset's fill value (2.5), as h5py/anndata read."""
    adata = reference(paths["dense_float64_c16x8_fill"])
    assert (np.asarray(adata.X)[16:48] == 2.5).all()
    got = cellfeed.open(paths["dense_float64_c16x8_fill"]).read(np.arange(16, 48)).toarray()
    assert (got == 2.5).all()


# --------------------------------------------------------------------------------------
# Errors

def test_rows_out_of_range(paths):
    col = cellfeed.open(paths["ad_csr_float32_plain"])
    n = col.n_obs
    for rows in ([n], [0, n + 5], [-1], [3, -2, 4], [2**40]):
        with pytest.raises(IndexError):
            col.read(rows)
    with pytest.raises(IndexError):
        cellfeed.open(paths["ad_zero_cells"]).read([0])
    col.read([n - 1])  # the last row is fine


def test_rows_must_be_integers_1d(paths):
    col = cellfeed.open(paths["ad_csr_float32_plain"])
    with pytest.raises(TypeError):
        col.read([0.5, 1.0])
    with pytest.raises(ValueError):
        col.read([[0, 1]])


def test_csc_is_rejected(generated):
    path = generated.errors["csc"]
    with h5py.File(path, "r") as f:
        assert f["X"].attrs["encoding-type"] == "csc_matrix"
    with pytest.raises(ValueError, match="csc_matrix") as e:
        cellfeed.open(path)
    assert str(path) in str(e.value)


def test_corrupt_gzip_chunk(generated, reference):
    clean, bad = generated.errors["corrupt_gzip_clean"], generated.errors["corrupt_gzip"]
    with h5py.File(bad, "r") as f:
        assert f["X/data"].compression == "gzip" and f["X/data"].id.get_num_chunks() > 3
    col = cellfeed.open(bad)  # metadata and indptr are intact
    ref = reference(clean).X
    # Rows whose values lie outside the corrupt chunk (chunk 2 = values [512, 768)) read.
    ptr = ref.indptr
    ok_rows = [r for r in range(ref.shape[0]) if ptr[r + 1] <= 512 or ptr[r] >= 768]
    np.testing.assert_array_equal(col.read(ok_rows).toarray(), ref[ok_rows].toarray())
    with pytest.raises(ValueError) as e:
        col.read(np.arange(col.n_obs))
    assert str(bad) in str(e.value) and "X/data" in str(e.value)


def test_corrupt_fletcher32_chunk(generated):
    path = generated.errors["corrupt_fletcher32"]
    col = cellfeed.open(path)
    with pytest.raises(ValueError) as e:
        col.read(np.arange(col.n_obs))
    assert str(path) in str(e.value) and "X/indices" in str(e.value)


def test_indices_outside_n_vars(generated):
    path = generated.errors["bad_indices"]
    col = cellfeed.open(path)
    col.read([0, 1, 2, 4])  # rows without the bad value read
    with pytest.raises(ValueError) as e:
        col.read([5])
    assert str(path) in str(e.value) and "X/indices" in str(e.value)


def test_decreasing_indptr(generated):
    path = generated.errors["bad_indptr"]
    with pytest.raises(ValueError) as e:
        cellfeed.open(path).read(np.arange(20))
    assert str(path) in str(e.value) and "X/indptr" in str(e.value)


def test_not_hdf5(generated):
    path = generated.errors["not_hdf5"]
    with pytest.raises(ValueError) as e:
        cellfeed.open(path)
    assert str(path) in str(e.value)


def test_missing_file(generated):
    path = generated.errors["missing"]
    with pytest.raises(OSError) as e:
        cellfeed.open(path)
    assert str(path) in str(e.value)


def test_truncated_file(generated):
    path = generated.errors["truncated"]
    with pytest.raises((ValueError, OSError)) as e:
        col = cellfeed.open(path)
        col.read(np.arange(col.n_obs))
    assert str(path) in str(e.value)


def test_unknown_layer(paths):
    with pytest.raises(ValueError, match="nope") as e:
        cellfeed.open(paths["ad_layers_raw"], layer="nope")
    assert "counts" in str(e.value)  # lists the layers that exist
    with pytest.raises(ValueError):
        cellfeed.open(paths["ad_csr_float32_plain"], layer="raw")  # no raw there


def test_no_files():
    with pytest.raises(ValueError):
        cellfeed.open([])
