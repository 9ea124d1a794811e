"""A collection of several files behaves like anndata.concat of them (inner join)."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellfeed
from fixtures import ROW_SETS, as_plain_index, make_var, random_csr, row_set, write_anndata

SETS = ["multi", "multi_with_empty"]


def concat_reference(reference, paths) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.concat([reference(p) for p in paths])


def dense(x) -> np.ndarray:
    return np.asarray(x.todense()) if sp.issparse(x) else np.asarray(x)


def labels(s: pd.Series) -> list:
    """Per-row labels of a column, missing values as None."""
    return [None if pd.isna(v) else v for v in s.astype(object)]


@pytest.fixture(scope="module", params=SETS)
def multi(request, generated, reference):
    paths = getattr(generated, request.param)
    return paths, concat_reference(reference, paths), [reference(p) for p in paths]


def test_fixture_categories_differ_between_files(generated, reference):
    cats = [list(reference(p).obs["cell_type"].cat.categories) for p in generated.multi]
    assert len({tuple(c) for c in cats}) == 3
    kinds = [type(reference(p).X) for p in generated.multi]
    assert np.ndarray in kinds and any(sp.issparse(reference(p).X) for p in generated.multi)


def test_shape_offsets_names(multi):
    paths, cat, parts = multi
    col = cellfeed.open(paths)
    assert (col.n_obs, col.n_vars) == cat.shape
    assert col.files == [str(p) for p in paths]
    np.testing.assert_array_equal(col.file_offsets,
                                  np.concatenate([[0], np.cumsum([a.n_obs for a in parts])]))
    assert list(col.var_names) == list(cat.var_names)
    assert list(col.obs_names()) == list(cat.obs_names)


@pytest.mark.parametrize("kind", ROW_SETS + ["boundaries"])
def test_read_matches_concat(multi, kind):
    paths, cat, parts = multi
    col = cellfeed.open(paths, threads=2)
    if kind == "boundaries":  # the rows on each side of every file boundary
        off = col.file_offsets
        rows = np.array([r for o in off[1:-1] for r in (o - 1, o) if 0 <= r < col.n_obs]
                        + [0, col.n_obs - 1])
    else:
        rows = row_set(kind, col.n_obs, seed=21)
    got = col.read(rows)
    assert got.dtype == np.float32 and got.shape == (len(rows), cat.n_vars)
    np.testing.assert_array_equal(got.toarray(), dense(cat.X)[rows].astype(np.float32),
                                  strict=True)
    if kind not in ("empty", "single"):  # rows from more than one file
        assert len(np.unique(np.searchsorted(col.file_offsets, rows, side="right"))) > 1


def test_threads_identical(multi):
    paths, _, _ = multi
    rows = row_set("duplicates", cellfeed.open(paths).n_obs, seed=4)
    a = cellfeed.open(paths, threads=1).read(rows)
    b = cellfeed.open(paths, threads=2).read(rows)
    for x, y in ((a.data, b.data), (a.indices, b.indices), (a.indptr, b.indptr)):
        np.testing.assert_array_equal(x, y, strict=True)


@pytest.mark.parametrize("kind", ["all", "unsorted", "duplicates", "empty"])
def test_obs_matches_concat(multi, kind):
    paths, cat, _ = multi
    col = cellfeed.open(paths)
    # Columns in every file (anndata's inner join); "only_in_p1" is dropped by both.
    assert col.obs_columns == list(cat.obs.columns)
    assert "only_in_p1" not in col.obs_columns
    rows = row_set(kind, col.n_obs, seed=8)
    got = col.obs(rows=rows)
    exp = as_plain_index(cat.obs.iloc[rows])
    pd.testing.assert_index_equal(got.index, exp.index)
    for c in exp.columns:
        if isinstance(exp[c].dtype, pd.CategoricalDtype):
            # Categories differ between files: the union may be ordered differently, so
            # compare the label of every row and the set of categories.
            assert isinstance(got[c].dtype, pd.CategoricalDtype), c
            assert labels(got[c]) == labels(exp[c]), c
            assert set(got[c].cat.categories) == set(exp[c].cat.categories), c
        else:
            pd.testing.assert_series_equal(got[c], exp[c], obj=c)


def test_numeric_column_dtypes_promote_like_concat(generated, reference):
    """n_counts is int32 in one file and int64 in another: both give int64."""
    paths = generated.multi
    assert {reference(p).obs["n_counts"].dtype for p in paths} == {np.dtype("int32"),
                                                                     np.dtype("int64")}
    got = cellfeed.open(paths).obs(["n_counts"])["n_counts"]
    assert got.dtype == concat_reference(reference, paths).obs["n_counts"].dtype


def test_same_file_three_times(paths, reference):
    p = paths["csr08_int64_int32_int32_gzip_c17"]
    adata = reference(p)
    col = cellfeed.open([p, p, p])
    assert col.n_obs == 3 * adata.n_obs
    rows = np.array([0, adata.n_obs, 2 * adata.n_obs + 5, 7])
    np.testing.assert_array_equal(col.read(rows).toarray(),
                                  adata.X[rows % adata.n_obs].toarray().astype(np.float32))
    pd.testing.assert_frame_equal(col.obs(rows=rows).reset_index(drop=True),
                                  adata.obs.iloc[rows % adata.n_obs].reset_index(drop=True))


@pytest.mark.parametrize("join", ["inner", "outer"])
@pytest.mark.parametrize("other", ["genes_b", "genes_c"])
def test_different_var_names_join_like_concat(generated, reference, join, other):
    """Files with different genes: join="inner" (the default) / "outer" give what
    anndata.concat(join=...) gives, columns matched by gene name."""
    files = [generated.errors["genes_a"], generated.errors[other]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat = ad.concat([reference(p) for p in files], join=join)
    col = cellfeed.open(files, join=join) if join != "inner" else cellfeed.open(files)
    assert sorted(col.var_names) == sorted(cat.var_names)
    exp = dense(cat[:, list(col.var_names)].X).astype(np.float32)
    for kind in ("all", "duplicates", "edges"):
        rows = row_set(kind, col.n_obs, seed=2)
        np.testing.assert_array_equal(col.read(rows).toarray(), exp[rows], strict=True)


def test_genes_that_cannot_be_joined(generated):
    a = generated.errors["genes_a"]
    with pytest.raises(ValueError, match="no gene is common"):
        cellfeed.open([a, generated.errors["genes_disjoint"]])
    cellfeed.open([a, a])  # same genes: fine


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_a_repeated_gene_name_joins_as_anndata_after_make_unique(generated, reference, join):
    """A file naming a gene twice (refused in a collection until issue 37): joined by the
    names anndata's var_names_make_unique() gives, as anndata.concat does after it."""
    files = [generated.errors["genes_a"], generated.errors["genes_dup"]]
    refs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in files:
            r = reference(p).copy()
            r.var_names_make_unique()
            refs.append(r)
        cat = ad.concat(refs, join=join)
    col = cellfeed.open(files, join=join)
    assert sorted(col.var_names) == sorted(cat.var_names)
    exp = dense(cat[:, list(col.var_names)].X).astype(np.float32)
    rows = row_set("all", col.n_obs, seed=2)
    np.testing.assert_array_equal(col.read(rows).toarray(), exp[rows], strict=True)


def test_rows_out_of_range_multi(generated):
    col = cellfeed.open(generated.multi)
    with pytest.raises(IndexError):
        col.read([0, col.n_obs])
    with pytest.raises(IndexError):
        col.obs(rows=[col.n_obs + 1])


def test_one_bad_file_fails_the_collection(generated):
    with pytest.raises(ValueError) as e:
        cellfeed.open([generated.multi[0], generated.errors["not_hdf5"]])
    assert str(generated.errors["not_hdf5"]) in str(e.value)


def test_float_categories_merge_by_value(tmp_path, reference):
    """Float categories that differ only after the 6th digit stay distinct (and numeric)
    when files' categories are merged."""
    rng = np.random.default_rng(1)
    var = make_var(10, rng)
    files = []
    for k, cats in enumerate(([0.1234567, 1.0], [0.1234568, 1.0], [1.0, 0.1234567])):
        obs = pd.DataFrame({"c": pd.Categorical.from_codes([0, 1, -1, 0], categories=cats)},
                           index=[f"f{k}_{i}" for i in range(4)])
        files.append(write_anndata(tmp_path / f"f{k}.h5ad",
                                   ad.AnnData(random_csr(rng, 4, 10), obs=obs, var=var)))
    cat = concat_reference(reference, files)
    got = cellfeed.open(files).obs()["c"]
    assert labels(got) == labels(cat.obs["c"])
    assert got.cat.categories.dtype == np.float64
    assert sorted(got.cat.categories) == sorted(cat.obs["c"].cat.categories)
