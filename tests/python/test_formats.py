"""Real files in layouts other than anndata >= 0.8 h5ad, read by cellfeed and compared value
for value with independent readers: anndata (older h5ad layouts: 0.7 categoricals from R's
zellkonverter, the < 0.7 compound obs/var with raw.X / raw.var) and scanpy.read_10x_h5
(Cell Ranger v3 and v1/v2 matrices). Files: data/legacy, data/10x (see their notices)."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellfeed
from fixtures import as_plain_index

REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO / "data" / "legacy"
TENX = REPO / "data" / "10x"
ANNDATA05 = LEGACY / "pbmc68k_reduced_anndata05.h5ad"
ZELLKONVERTER = LEGACY / "zellkonverter_example.h5ad"
CELLRANK = LEGACY / "cellrank_adata_100.h5ad"
CELLRANGER3 = TENX / "cellranger3_filtered_feature_bc_matrix.h5"
CELLRANGER1 = TENX / "cellranger1_filtered_gene_bc_matrices.h5"


def read_anndata(path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(path)


def read_10x(path) -> ad.AnnData:
    sc = pytest.importorskip("scanpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sc.read_10x_h5(path, gex_only=False)


def as_csr(m) -> sp.csr_matrix:
    return sp.csr_matrix(m.toarray() if sp.issparse(m) else np.asarray(m), dtype=np.float32)


def shuffled_rows(n: int, seed: int = 0) -> np.ndarray:
    """Every row in a random order, some twice."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(n)
    return np.concatenate([rows, rows[: max(1, n // 7)]]).astype(np.int64)


def assert_matrix(col, expected) -> None:
    exp = as_csr(expected)
    assert col.shape == exp.shape
    rows = shuffled_rows(exp.shape[0])
    got = col.read(rows)
    np.testing.assert_array_equal(got.toarray(), exp[rows].toarray())


def assert_frames(col, adata, obs=True, var=True) -> None:
    assert list(col.obs_names()) == list(adata.obs_names)
    assert list(col.var_names) == list(adata.var_names)
    if obs:
        assert col.obs_columns == list(adata.obs.columns)
        pd.testing.assert_frame_equal(col.obs(), as_plain_index(adata.obs))
        rows = shuffled_rows(adata.n_obs, seed=1)
        pd.testing.assert_frame_equal(col.obs(rows=rows),
                                      as_plain_index(adata.obs.iloc[rows]))
    if var:
        assert col.var_columns == list(adata.var.columns)
        pd.testing.assert_frame_equal(col.var(), as_plain_index(adata.var))


# --------------------------------------------------------------------------------------
# anndata 0.7 categoricals (codes + `categories` object reference), written from R


@pytest.mark.parametrize("path", [ZELLKONVERTER, CELLRANK], ids=["zellkonverter", "cellrank"])
def test_anndata07_categoricals_match_anndata(path):
    adata = read_anndata(path)
    col = cellfeed.open(path)
    assert_matrix(col, adata.X)
    assert_frames(col, adata)
    cats = [c for c in adata.obs.columns if isinstance(adata.obs[c].dtype, pd.CategoricalDtype)]
    assert cats, "the file is expected to hold anndata 0.7 categoricals"


def test_zellkonverter_dense_int_layer_matches_anndata():
    adata = read_anndata(ZELLKONVERTER)
    col = cellfeed.open(ZELLKONVERTER, layer="counts")
    assert_matrix(col, adata.layers["counts"])


@pytest.mark.parametrize("layer", ["spliced", "Ms", "raw"])
def test_cellrank_layers_and_raw_match_anndata(layer):
    adata = read_anndata(CELLRANK)
    col = cellfeed.open(CELLRANK, layer=layer)
    if layer == "raw":
        assert_matrix(col, adata.raw.X)
        assert list(col.var_names) == list(adata.raw.var_names)
        pd.testing.assert_frame_equal(col.var(), as_plain_index(adata.raw.var))
    else:
        assert_matrix(col, adata.layers[layer])


# --------------------------------------------------------------------------------------
# anndata < 0.7: obs/var one compound dataset each, categories in uns, raw.X / raw.var


def test_anndata05_matches_anndata():
    adata = read_anndata(ANNDATA05)
    col = cellfeed.open(ANNDATA05)
    assert_matrix(col, adata.X)
    assert_frames(col, adata)
    # The categoricals come from uns/<col>_categories.
    assert isinstance(col.obs("bulk_labels")["bulk_labels"].dtype, pd.CategoricalDtype)


def test_anndata05_raw_matches_anndata():
    adata = read_anndata(ANNDATA05)
    col = cellfeed.open(ANNDATA05, layer="raw")
    assert_matrix(col, adata.raw.X)
    assert list(col.var_names) == list(adata.raw.var_names)
    assert col.var_columns == list(adata.raw.var.columns)


def test_anndata05_mixes_with_a_modern_file(tmp_path):
    """The same data in the 0.5 layout and rewritten by anndata 0.12 read as one collection,
    exactly like the two concatenated."""
    adata = read_anndata(ANNDATA05)
    modern = tmp_path / "modern.h5ad"
    adata.write_h5ad(modern)
    col = cellfeed.open([ANNDATA05, modern])
    both = ad.concat([adata, read_anndata(modern)], index_unique=None)
    assert_matrix(col, both.X)
    pd.testing.assert_frame_equal(col.obs(), as_plain_index(both.obs))


# --------------------------------------------------------------------------------------
# Cell Ranger HDF5 matrices, against scanpy.read_10x_h5


@pytest.mark.parametrize("path", [CELLRANGER3, CELLRANGER1], ids=["v3", "v1"])
def test_cellranger_matches_scanpy(path):
    adata = read_10x(path)
    col = cellfeed.open(path)
    assert_matrix(col, adata.X)
    assert_frames(col, adata, obs=False)
    assert col.obs_columns == list(adata.obs.columns)


def test_cellranger_v3_var_columns():
    col = cellfeed.open(CELLRANGER3)
    assert col.var_columns == ["gene_ids", "feature_types", "genome"]
    assert set(col.var(["feature_types"])["feature_types"]) == {"Gene Expression"}


def test_cellranger_v1_genome_as_layer():
    adata = read_10x(CELLRANGER1)
    col = cellfeed.open(CELLRANGER1, layer="hg19_chr21")
    assert_matrix(col, adata.X)
    with pytest.raises(ValueError, match="genome 'mm10' not found.*hg19_chr21"):
        cellfeed.open(CELLRANGER1, layer="mm10")


def test_cellranger_mixes_with_h5ad(tmp_path):
    """A Cell Ranger file next to the same cells written as h5ad by anndata: one collection,
    equal to the concatenation (counts, barcodes, genes)."""
    adata = read_10x(CELLRANGER3)
    h5ad = tmp_path / "same.h5ad"
    adata.write_h5ad(h5ad)
    col = cellfeed.open([CELLRANGER3, h5ad], values="counts")
    both = ad.concat([adata, read_anndata(h5ad)], index_unique=None)
    assert_matrix(col, both.X)
    assert list(col.obs_names()) == list(both.obs_names)
    assert list(col.var_names) == list(adata.var_names)


# --------------------------------------------------------------------------------------
# csc_matrix and X = None: clear errors that say what to do


def test_csc_x_says_how_to_convert(tmp_path):
    adata = read_anndata(CELLRANK)
    adata.X = sp.csc_matrix(adata.X)
    p = tmp_path / "csc.h5ad"
    adata.write_h5ad(p)
    with pytest.raises(ValueError, match=r"X: csc_matrix is not supported.*tocsr\(\)"):
        cellfeed.open(p)
    # The layers stay readable.
    assert_matrix(cellfeed.open(p, layer="spliced"), adata.layers["spliced"])


def test_absent_x_lists_the_layers(tmp_path):
    adata = read_anndata(CELLRANK)
    adata.X = None
    p = tmp_path / "nox.h5ad"
    adata.write_h5ad(p)
    with pytest.raises(ValueError, match=r"X: missing \(X is absent.*layer=NAME.*spliced.*layer='raw'"):
        cellfeed.open(p)
    assert_matrix(cellfeed.open(p, layer="unspliced"), adata.layers["unspliced"])
