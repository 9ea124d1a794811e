"""obs / var / obs_names against anndata (pd.testing with dtypes checked)."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

import cellfeed
from fixtures import (LAYER_CASES, ROW_SETS, SINGLE_NAMES, as_plain_index, reference_var,
                      row_set)

RICH = "ad_csr_float32_plain"  # obs with every column kind anndata writes


def test_rich_fixture_covers_every_encoding(paths):
    """The obs of the main fixture holds every column encoding (checked with h5py), so the
    frame comparisons below cover them all."""
    with h5py.File(paths[RICH], "r") as f:
        enc = {k: f["obs"][k].attrs["encoding-type"] for k in f["obs"].attrs["column-order"]}
        cat = {k: f[f"obs/{k}/categories"].dtype.kind for k, e in enc.items()
               if e == "categorical"}
        ordered = {k: bool(f[f"obs/{k}"].attrs["ordered"]) for k in cat}
        codes = {k: f[f"obs/{k}/codes"][...] for k in cat}
    assert set(enc.values()) == {"categorical", "array", "string-array", "nullable-integer",
                                 "nullable-boolean", "nullable-string-array"}
    assert {"O", "i", "f"} <= set(cat.values())  # string and numeric categories
    assert True in ordered.values() and False in ordered.values()
    assert any((c == -1).any() for c in codes.values())  # missing values


def test_obs_kinds_match_h5py_encodings(paths):
    col = cellfeed.open(paths[RICH])
    kinds = {name: kind for name, kind, _ in col.summaries()[0]["obs_columns"]}
    with h5py.File(paths[RICH], "r") as f:
        for name in f["obs"].attrs["column-order"]:
            node = f[f"obs/{name}"]
            enc = node.attrs["encoding-type"]
            exp = {"categorical": "categorical", "string-array": "string",
                   "nullable-integer": "nullable-integer", "nullable-boolean": "nullable-boolean",
                   "nullable-string-array": "nullable-string"}.get(enc)
            if enc == "array":
                exp = "bool" if node.dtype == bool else "numeric"
            assert kinds[name] == exp, name


@pytest.mark.parametrize("name", SINGLE_NAMES)
def test_obs_matches_anndata(paths, reference, name):
    adata = reference(paths[name])
    col = cellfeed.open(paths[name])
    assert col.obs_columns == list(adata.obs.columns)
    pd.testing.assert_frame_equal(col.obs(), as_plain_index(adata.obs))


@pytest.mark.parametrize("kind", ROW_SETS)
@pytest.mark.parametrize("name", [RICH, "ad_csr_int32_lzf_categoricals", "ad_userblock_gzip",
                                  "h5_nullable_string_index", "csr00_float32_int32_int32_none_c3",
                                  "csr13_int64_int64_int64_shuffle+gzip9+fletcher32_c17",
                                  "real_pbmc68k", "ad_zero_cells"])
def test_obs_rows_match_anndata(paths, reference, name, kind):
    adata = reference(paths[name])
    col = cellfeed.open(paths[name])
    rows = row_set(kind, col.n_obs, seed=11)
    exp = as_plain_index(adata.obs.iloc[rows])
    pd.testing.assert_frame_equal(col.obs(rows=rows), exp)
    assert list(col.obs_names(rows)) == list(adata.obs_names[rows])


def test_obs_column_selection(paths, reference):
    adata = reference(paths[RICH])
    col = cellfeed.open(paths[RICH])
    cols = ["note", "cell_type", "n_int", "barcode"]
    rows = row_set("duplicates", col.n_obs, seed=5)
    pd.testing.assert_frame_equal(col.obs(cols, rows=rows),
                                  as_plain_index(adata.obs.iloc[rows][cols]))
    pd.testing.assert_frame_equal(col.obs("grade"), as_plain_index(adata.obs[["grade"]]))
    pd.testing.assert_frame_equal(col.obs([]), as_plain_index(adata.obs[[]]))


def test_obs_names(paths, reference):
    for name in (RICH, "h5_nullable_string_index", "real_pbmc68k"):
        adata = reference(paths[name])
        col = cellfeed.open(paths[name])
        assert list(col.obs_names()) == list(adata.obs_names)


def test_categorical_details(paths, reference):
    """Codes -1 are missing; ordered flag and category dtype kept (numeric categories)."""
    adata = reference(paths[RICH])
    obs = cellfeed.open(paths[RICH]).obs()
    for c in ("cell_type", "grade", "batch", "dose"):
        got, exp = obs[c], adata.obs[c]
        assert got.cat.ordered == exp.cat.ordered
        pd.testing.assert_index_equal(got.cat.categories, exp.cat.categories)
        np.testing.assert_array_equal(got.cat.codes.to_numpy(), exp.cat.codes.to_numpy())
        np.testing.assert_array_equal(got.isna().to_numpy(), exp.isna().to_numpy())
    assert obs["grade"].cat.ordered and not obs["cell_type"].cat.ordered
    assert obs["cell_type"].isna().any()


def test_obs_errors(paths):
    col = cellfeed.open(paths[RICH])
    with pytest.raises(ValueError, match="no_such_column"):
        col.obs(["no_such_column"])
    with pytest.raises(IndexError):
        col.obs(rows=[col.n_obs])
    with pytest.raises(IndexError):
        col.obs_names([-1])


VAR_CASES = [(n, None) for n in SINGLE_NAMES] + LAYER_CASES


@pytest.mark.parametrize("case", VAR_CASES,
                         ids=[n if l is None else f"{n}[{l}]" for n, l in VAR_CASES])
def test_var_matches_anndata(paths, reference, case):
    name, layer = case
    adata = reference(paths[name])
    col = cellfeed.open(paths[name], layer=layer)
    exp = reference_var(adata, layer)
    assert col.var_columns == list(exp.columns)
    pd.testing.assert_frame_equal(col.var(), as_plain_index(exp))
    assert list(col.var_names) == list(exp.index)


def test_var_column_selection(paths, reference):
    adata = reference(paths[RICH])
    col = cellfeed.open(paths[RICH])
    pd.testing.assert_frame_equal(col.var(["chrom", "means"]),
                                  as_plain_index(adata.var[["chrom", "means"]]))
    with pytest.raises(ValueError, match="nope"):
        col.var(["nope"])


def test_raw_var_has_more_genes(paths, reference):
    adata = reference(paths["ad_layers_raw"])
    raw = cellfeed.open(paths["ad_layers_raw"], layer="raw")
    x = cellfeed.open(paths["ad_layers_raw"])
    assert raw.n_vars == adata.raw.n_vars > x.n_vars == adata.n_vars
    assert list(raw.var_names) == list(adata.raw.var_names)
    # obs is the same whatever the layer
    pd.testing.assert_frame_equal(raw.obs(), x.obs())
