"""Gene vocabularies: shipped files, mapping files onto a vocabulary by symbol or Ensembl
ID (var names or a var column, versions stripped, GENCODE translation), summing of
duplicates, per-file presence, reports, and the no-overlap error. Compared with the
numpy reference in inputs_reference.py on files written by anndata."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import anndata as ad

import cellfeed
import inputs_reference as ref

PANEL = ref.panel()
GENCODE = ref.gencode()


def _unique_symbol_ids(rng, n):
    """GENCODE IDs whose symbol is in the panel and names one ID only."""
    t = GENCODE[GENCODE.symbol.isin(set(PANEL))]
    t = t[~t.symbol.duplicated(keep=False)]
    return t.iloc[rng.choice(len(t), n, replace=False)]


def _write(path, X, var_names, var=None):
    a = ad.AnnData(X=sp.csr_matrix(X, dtype=np.float32),
                   var=var if var is not None else pd.DataFrame(index=var_names))
    a.var_names = var_names
    a.obs_names = [f"{path.stem}_{i}" for i in range(X.shape[0])]
    a.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    rng = np.random.default_rng(7)
    n = 40
    # A: panel symbols plus names no vocabulary has.
    sym = list(rng.choice(PANEL, 250, replace=False)) + [f"NOTAGENE{i}" for i in range(15)]
    A = _write(root / "symbols.h5ad", rng.poisson(0.8, (n, len(sym))), sym)
    # B: versioned Ensembl IDs as var names, symbols in a var column with duplicates
    # (two IDs named after one panel symbol: summed by symbol).
    t = _unique_symbol_ids(rng, 200)
    ids = [f"{i}.{rng.integers(1, 20)}" for i in t.ensembl_id]
    symbols = list(t.symbol)
    symbols[1] = symbols[0]
    symbols[3] = symbols[2]
    var = pd.DataFrame({"feature_name": pd.Categorical(symbols)}, index=ids)
    B = _write(root / "ids.h5ad", rng.poisson(0.8, (n, len(ids))), ids, var)
    # C: no gene in common with any vocabulary.
    C = _write(root / "alien.h5ad", rng.poisson(1, (5, 12)), [f"xyz{i}" for i in range(12)])
    return {"A": A, "B": B, "C": C}


def test_vocabularies_ship_with_the_package():
    import importlib.resources as res
    root = res.files("cellfeed") / "vocab"
    names = {p.name for p in root.iterdir()}
    assert {"scfoundation_19264_genes.tsv", "geneformer_gc104M_vocab.tsv",
            "cellxgene_gencode_v44_genes.csv", "NOTICE", "LICENSE-Apache-2.0",
            "LICENSE-MIT"} <= names
    assert cellfeed.vocab.scfoundation_genes() == PANEL and len(PANEL) == 19264
    gf = cellfeed.vocab.Vocabulary.geneformer()
    table = ref.geneformer()
    assert len(gf) == len(table) and list(gf.genes[4:]) == list(table.ensembl_id[4:])
    assert gf.genes[:4] == ("", "", "", "")
    np.testing.assert_array_equal(np.asarray(gf.medians[4:]), table["median"].to_numpy()[4:])


@pytest.mark.parametrize("case", ["A_symbol", "B_ids_to_symbol", "B_column_symbol",
                                  "A_to_ensembl", "B_ensembl"])
def test_mapping_matches_reference(files, case):
    path = files[case[0]]
    adata = ref.read(path)
    var_column = "feature_name" if case == "B_column_symbol" else None
    names = adata.var["feature_name"].astype(str) if var_column else adata.var_names
    if case in ("A_to_ensembl", "B_ensembl"):
        vocab = cellfeed.vocab.Vocabulary.geneformer()
        ref_vocab, by = list(vocab.genes), "ensembl"
        steps, out = (), cellfeed.inputs.Dense()
        pipe = cellfeed.inputs.Pipeline(vocab, steps, out, var_column=var_column)
    else:
        ref_vocab, by = PANEL, "symbol"
        pipe = cellfeed.inputs.Pipeline("scfoundation", (), cellfeed.inputs.Dense(),
                                        var_column=var_column)
    col = cellfeed.open(path)
    got = pipe.run(col, np.arange(col.n_obs))
    expect, present, idx = ref.on_vocab(adata, ref_vocab, by, GENCODE, names)
    np.testing.assert_array_equal(got["values"], expect.astype(np.float32))
    np.testing.assert_array_equal(got["attention_mask"][0], present)
    assert (got["attention_mask"] == present).all()
    rep = pipe.mapping(col).reports[0]
    assert rep["file"] == str(path)
    assert rep["file_genes"] == len(names)
    assert rep["mapped"] == int((idx >= 0).sum())
    assert rep["vocab_missing"] == int(sum(1 for g, p in zip(ref_vocab, present) if g and not p))
    counts = np.bincount(idx[idx >= 0], minlength=len(ref_vocab))
    assert rep["summed"] == int(counts[counts > 1].sum())
    unmapped = [n for n, i in zip(names, idx) if i < 0]
    assert rep["unmapped_examples"] == unmapped[:5]
    if case == "B_column_symbol":
        assert rep["summed"] == 4  # the two duplicated symbols
    if case == "B_ids_to_symbol":
        assert rep["translated"] == rep["mapped"] > 0


def test_several_files_mask_per_cell(files):
    """Cells of one batch come from different files: each row gets its own file's mask."""
    paths = [files["A"], files["B"]]
    col = cellfeed.open(paths, join="outer")
    loader = cellfeed.Loader(col, batch_size=16, fetch_factor=2, seed=3,
                             inputs=cellfeed.inputs.Pipeline("scfoundation", (), cellfeed.inputs.Dense()))
    refs = [ref.on_vocab(ref.read(p), PANEL, "symbol", GENCODE) for p in paths]
    offsets = col.file_offsets
    seen = 0
    for batch in loader:
        for j, r in enumerate(batch.rows):
            f = int(np.searchsorted(offsets, r, side="right") - 1)
            dense, present, _ = refs[f]
            np.testing.assert_array_equal(batch.inputs["values"][j].numpy(),
                                          dense[r - offsets[f]].astype(np.float32))
            np.testing.assert_array_equal(batch.inputs["attention_mask"][j].numpy(), present)
            seen += 1
    assert seen == col.n_obs


def test_files_with_the_same_genes_share_a_map(files, tmp_path):
    """Plates of one experiment (A and a copy of A) share one gene map, B has its own; every
    cell still gets its own file's values and mask, and every file its own report."""
    copy = tmp_path / "A_again.h5ad"
    shutil.copy(files["A"], copy)
    paths = [files["A"], files["B"], copy]
    col = cellfeed.open(paths, join="outer")
    pipe = cellfeed.inputs.Pipeline("scfoundation", (), cellfeed.inputs.Dense())
    mapping = pipe.mapping(col)
    np.testing.assert_array_equal(mapping.column_to_vocab(2), mapping.column_to_vocab(0))
    np.testing.assert_array_equal(mapping.present(2), mapping.present(0))
    assert not np.array_equal(mapping.present(1), mapping.present(0))
    assert [r["file"] for r in mapping.reports] == [str(p) for p in paths]
    refs = [ref.on_vocab(ref.read(p), PANEL, "symbol", GENCODE) for p in paths]
    offsets = col.file_offsets
    got = pipe.run(col, np.arange(col.n_obs))
    for r in range(col.n_obs):
        f = int(np.searchsorted(offsets, r, side="right") - 1)
        dense, present, _ = refs[f]
        np.testing.assert_array_equal(got["values"][r], dense[r - offsets[f]].astype(np.float32))
        np.testing.assert_array_equal(got["attention_mask"][r], present)


def test_no_overlap_names_file_and_examples(files):
    col = cellfeed.open(files["C"])
    with pytest.raises(ValueError) as e:
        cellfeed.map_genes(col, "scfoundation")
    msg = str(e.value)
    assert str(files["C"]) in msg and "'xyz0'" in msg and "'A1BG'" in msg
    with pytest.raises(ValueError, match="alien.h5ad"):
        cellfeed.Loader(col, inputs=cellfeed.inputs.aido_cell_rda())


def test_missing_var_column_is_an_error(files):
    col = cellfeed.open(files["A"])
    with pytest.raises(ValueError, match="var column 'nope' not found"):
        cellfeed.map_genes(col, "scfoundation", var_column="nope")


def test_no_translation_without_table(files):
    col = cellfeed.open(files["B"])
    with pytest.raises(ValueError, match="ids.h5ad"):
        cellfeed.map_genes(col, "scfoundation", translate=False)
