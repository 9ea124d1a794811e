"""Gene names that repeat within a file (issue 37, defect 2): made unique exactly as
anndata's `var_names_make_unique()` does, the same for a file alone and in a collection,
and files are joined by those names. Compared with anndata: each file read by anndata,
made unique, and concatenated with `anndata.concat` (inner and outer joins)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import cellfeed

# Repeats, a triple, and a name ("MED4-1") that the first repeat's new name would collide
# with, so anndata's rule of skipping taken names is exercised.
GENES_A = ["MED4", "ACTB", "MED4", "GAPDH", "TTN", "TTN", "MED4-1", "TTN", "CD3E"]
GENES_B = ["TTN", "CD3E", "MED4", "TTN", "NEW1", "MED4", "ACTB", "TTN", "MED4-1"]


def _write(path, genes, seed):
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, size=(40, len(genes))).astype(np.float32)
    a = ad.AnnData(x, obs=pd.DataFrame(index=[f"{path.stem}{i}" for i in range(40)]),
                   var=pd.DataFrame(index=genes))
    a.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dupgenes")
    return _write(d / "a.h5ad", GENES_A, 0), _write(d / "b.h5ad", GENES_B, 1)


def _anndata_unique(path) -> ad.AnnData:
    a = ad.read_h5ad(path)
    a.var_names_make_unique()
    return a


def _as_frame(matrix, var_names) -> pd.DataFrame:
    dense = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    return pd.DataFrame(dense, columns=list(var_names))


def test_a_file_alone_gets_anndatas_unique_names(files):
    a = _anndata_unique(files[0])
    col = cellfeed.open(files[0])
    assert list(col.var_names) == list(a.var_names)
    assert len(set(col.var_names)) == len(GENES_A)
    np.testing.assert_array_equal(col.read(np.arange(col.n_obs)).toarray(), a.X)


@pytest.mark.parametrize("join", ["inner", "outer"])
def test_a_collection_joins_by_the_unique_names(files, join):
    ref = ad.concat([_anndata_unique(p) for p in files], join=join)
    col = cellfeed.open([str(p) for p in files], join=join)
    assert sorted(col.var_names) == sorted(ref.var_names)
    got = _as_frame(col.read(np.arange(col.n_obs)), col.var_names)
    want = _as_frame(ref.X, ref.var_names)[list(col.var_names)].fillna(0)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_the_same_file_alone_and_in_a_collection_agree(files):
    alone = cellfeed.open(files[0])
    both = cellfeed.open([str(files[0]), str(files[0])])
    assert list(both.var_names) == list(alone.var_names)
    np.testing.assert_array_equal(both.read(np.arange(40)).toarray(), alone.read(np.arange(40)).toarray())


def test_a_gene_list_names_the_unique_names(files):
    genes = ["TTN-2", "MED4-2", "MED4", "CD3E"]  # MED4-2: the second MED4 ("MED4-1" is taken)
    col = cellfeed.open([str(p) for p in files], join=genes)
    assert list(col.var_names) == genes
    ref = [_anndata_unique(p) for p in files]
    want = np.vstack([r[:, genes].X for r in ref])
    np.testing.assert_array_equal(col.read(np.arange(col.n_obs)).toarray(), want)


def test_a_gene_list_with_a_repeat_is_still_refused(files):
    with pytest.raises(ValueError, match="gene list.*'MED4' appears more than once"):
        cellfeed.open([str(p) for p in files], join=["MED4", "MED4"])
