"""Declared corpora (cellfeed.Corpus): filters against pandas on obs read by anndata,
exact counts, weights and temperature, class balance, upsampling, splits without
leakage, the report against what an epoch delivers, TOML, and every bad declaration
failing before a batch is read."""

from __future__ import annotations

import collections
import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellfeed
from fixtures import make_obs, make_var, write_anndata

SIZES = (700, 500, 300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three anndata-written files with every obs column kind; X holds integer counts."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(12)
    out = []
    for i, n in enumerate(SIZES):
        obs = make_obs(n, rng, prefix=f"f{i}")
        X = sp.random(n, 40, density=0.25, format="csr", random_state=i, dtype=np.float32)
        X.data = np.floor(X.data * 30) + 1
        var = make_var(40, rng)
        var.index = [("MT-" if j < 4 else "G") + str(j) for j in range(40)]
        out.append(write_anndata(root / f"f{i}.h5ad", ad.AnnData(X, obs=obs, var=var)))
    return out


@pytest.fixture(scope="module")
def obs_ref(files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [ad.read_h5ad(f).obs for f in files]


def selected(corpus, source=None) -> np.ndarray:
    """Global rows that pass the filters (no split declared: all are train)."""
    return corpus.rows(split="train", source=source)


def concat_obs(obs_ref, idx):
    return pd.concat([obs_ref[i] for i in idx], ignore_index=True)


# Each filter with its reference written directly in pandas; three-valued logic: a test on
# a missing value is unknown, `not` keeps it unknown, and only true cells are selected.
def _is(d, col, fn):
    s = d[col]
    return s.notna() & fn(s).fillna(False).astype(bool)


FILTERS = {
    "cell_type == 'T'": lambda d: _is(d, "cell_type", lambda s: s == "T"),
    "cell_type != 'T'": lambda d: _is(d, "cell_type", lambda s: s != "T"),
    "cell_type in ['T', 'B']": lambda d: _is(d, "cell_type", lambda s: s.isin(["T", "B"])),
    "cell_type not in ['T']": lambda d: _is(d, "cell_type", lambda s: ~s.isin(["T"])),
    "grade == 'high'": lambda d: _is(d, "grade", lambda s: s == "high"),
    "batch == 7": lambda d: _is(d, "batch", lambda s: s.astype(float) == 7),
    "batch > 3": lambda d: _is(d, "batch", lambda s: s.astype(float) > 3),
    "dose >= 1": lambda d: _is(d, "dose", lambda s: s.astype(float) >= 1),
    "dose < 1": lambda d: _is(d, "dose", lambda s: s.astype(float) < 1),
    "n_genes < 2500": lambda d: d.n_genes < 2500,
    "n_counts <= 10000": lambda d: d.n_counts <= 10000,
    "pct_mito > 0.5": lambda d: d.pct_mito > np.float32(0.5),
    "score >= 0 and score < 1": lambda d: (d.score >= 0) & (d.score < 1),
    "is_doublet == false": lambda d: ~d.is_doublet,
    "is_doublet != true": lambda d: ~d.is_doublet,
    "small == 3 or small > 190": lambda d: (d.small == 3) | (d.small > 190),
    "sample == 'sample1'": lambda d: d["sample"] == "sample1",
    "sample in ['sample0', 'sample2']": lambda d: d["sample"].isin(["sample0", "sample2"]),
    "barcode == 'ACGT000001'": lambda d: d.barcode == "ACGT000001",
    "n_int > 0": lambda d: _is(d, "n_int", lambda s: s > 0),
    "n_int != 0": lambda d: _is(d, "n_int", lambda s: s != 0),
    "n_int32 in [1, 2, 3]": lambda d: _is(d, "n_int32", lambda s: s.isin([1, 2, 3])),
    "flag == true": lambda d: _is(d, "flag", lambda s: s == True),  # noqa: E712
    "flag != true": lambda d: _is(d, "flag", lambda s: s != True),  # noqa: E712
    "note == 'n3'": lambda d: _is(d, "note", lambda s: s == "n3"),
    "note not in ['n3', 'n4']": lambda d: _is(d, "note", lambda s: ~s.isin(["n3", "n4"])),
    "not (cell_type == 'T')": lambda d: _is(d, "cell_type", lambda s: s != "T"),
    "cell_type == 'T' or n_int > 0":
        lambda d: _is(d, "cell_type", lambda s: s == "T") | _is(d, "n_int", lambda s: s > 0),
    "not (cell_type == 'T' and n_int > 0)":  # true iff one side is false (not unknown)
        lambda d: _is(d, "cell_type", lambda s: s != "T") | _is(d, "n_int", lambda s: s <= 0),
    "(grade == 'low' or grade == 'mid') and not is_doublet == true":
        lambda d: _is(d, "grade", lambda s: s.isin(["low", "mid"])) & ~d.is_doublet,
}


@pytest.mark.parametrize("expr", list(FILTERS))
def test_filter_matches_pandas_multifile(files, obs_ref, expr):
    c = cellfeed.Corpus([cellfeed.Source("all", files, where=expr)])
    ref = FILTERS[expr](concat_obs(obs_ref, [0, 1, 2])).to_numpy()
    np.testing.assert_array_equal(selected(c), np.flatnonzero(ref))
    assert c.counts().loc["all", "passing"] == ref.sum()


def test_sources_over_some_files_map_to_global_rows(files, obs_ref):
    c = cellfeed.Corpus([cellfeed.Source("a", files[1], where="cell_type == 'B'"),
                         cellfeed.Source("b", [files[2], files[0]], where="score > 0")])
    # Collection files: declaration order, each once: f1, f2, f0.
    assert c.files == [os.path.abspath(files[i]) for i in (1, 2, 0)]
    a = np.flatnonzero(_is(obs_ref[1], "cell_type", lambda s: s == "B"))
    b2 = np.flatnonzero(obs_ref[2].score > 0) + SIZES[1]
    b0 = np.flatnonzero(obs_ref[0].score > 0) + SIZES[1] + SIZES[2]
    np.testing.assert_array_equal(selected(c, "a"), a)
    np.testing.assert_array_equal(selected(c, "b"), np.sort(np.concatenate([b2, b0])))


def _epoch(loader, epoch=0):
    loader.set_epoch(epoch)
    rows, srcs, sizes = [], [], []
    for b in loader:
        rows.append(np.asarray(b.rows))
        srcs.append(np.asarray(b.source))
        sizes.append(len(b))
    return np.concatenate(rows), np.concatenate(srcs), sizes


def test_exact_counts_fixed_and_per_epoch(files):
    def corpus(mode):
        return cellfeed.Corpus([cellfeed.Source("a", files[0], where="n_genes < 2500", cells=123),
                                cellfeed.Source("b", files[1], cells=77)], subsample=mode, seed=5)

    for mode in ("fixed", "epoch"):
        c = corpus(mode)
        loader = cellfeed.Loader(c, batch_size=16, block_size=2, fetch_factor=3)
        per_epoch = []
        for epoch in range(2):
            rows, srcs, _ = _epoch(loader, epoch)
            assert collections.Counter(srcs.tolist()) == {0: 123, 1: 77}
            a = rows[srcs == 0]
            assert len(set(a.tolist())) == 123  # without replacement
            assert set(a.tolist()) <= set(selected(c, "a").tolist())
            per_epoch.append(set(a.tolist()))
        if mode == "fixed":
            assert per_epoch[0] == per_epoch[1]
        else:
            assert per_epoch[0] != per_epoch[1]
        assert len(loader) == math.ceil(200 / 16)


def test_subsample_is_uniform_over_seeds(files):
    """Each passing cell is kept with probability n/m. Over K seeds its count is ~
    Binomial(K, n/m); the sum of squared z-scores over m cells has mean ~m and standard
    deviation ~sqrt(2m) (slightly less: exact counts correlate cells negatively)."""
    K, n = 150, 60
    counts = None
    for seed in range(K):
        c = cellfeed.Corpus([cellfeed.Source("a", files[2], cells=n)], seed=seed)
        kept = c.epoch_rows()[0][2]
        if counts is None:
            counts = np.zeros(SIZES[2], np.int64)
        counts[kept] += 1
    m = SIZES[2]
    p = n / m
    z2 = ((counts - K * p) ** 2 / (K * p * (1 - p))).sum()
    assert counts.sum() == K * n
    assert abs(z2 - m) < 5 * math.sqrt(2 * m), z2


def _largest_remainder(total, mass):
    mass = np.asarray(mass, float)
    exact = total * mass / mass.sum()
    out = np.floor(exact).astype(int)
    order = sorted(range(len(mass)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[: total - out.sum()]:
        out[i] += 1
    return out.tolist()


@pytest.mark.parametrize("temperature", [None, 1.0, 2.0, 8.0])
def test_weights_and_temperature(files, temperature):
    weights = [2.0, 1.0, 1.0]
    srcs = [cellfeed.Source(f"s{i}", f, weight=w) for i, (f, w) in enumerate(zip(files, weights))]
    c = cellfeed.Corpus(srcs, epoch_cells=900, temperature=temperature, seed=1)
    mass = [w * (n ** (1 / temperature) if temperature else 1) for w, n in zip(weights, SIZES)]
    want = _largest_remainder(900, mass)
    assert c.counts()["requested"].tolist() == want
    loader = cellfeed.Loader(c, batch_size=30, block_size=3, fetch_factor=2)
    _, s, sizes = _epoch(loader)
    assert [int((s == i).sum()) for i in range(3)] == want
    # Every full batch holds each source in proportion. A fetch's windows hold each source
    # to within one block of its exact share and the deal spreads it over the fetch's
    # batches to within a cell: |count - 30 p| <= block_size + 1 = 4. Uniform random
    # sampling strays by a binomial standard deviation sqrt(30 p (1-p)) (2.6 for p = 0.64).
    p = np.asarray(want) / 900
    k = np.cumsum([0] + sizes)
    for b in range(len(sizes)):
        if sizes[b] != 30:
            continue
        got = np.bincount(s[k[b]:k[b + 1]], minlength=3)
        assert (np.abs(got - 30 * p) <= 4).all(), (b, got, 30 * p)
    rep = loader.report()
    assert rep.batch_proportions["mean_tv"] < rep.batch_proportions["random_tv"] / 2


def test_upsampling_gives_k_or_k_plus_1_copies(files):
    m = SIZES[2]
    with pytest.raises(ValueError, match=rf"'up' is asked for {int(2.5 * m)} cells but has {m}"):
        cellfeed.Corpus([cellfeed.Source("up", files[2], cells=int(2.5 * m))]).build()
    c = cellfeed.Corpus([cellfeed.Source("up", files[2], cells=int(2.5 * m), upsample=True)])
    rows, _, _ = _epoch(cellfeed.Loader(c, batch_size=25, block_size=5, fetch_factor=2))
    times = collections.Counter(rows.tolist())
    assert len(times) == m and set(times.values()) == {2, 3}
    assert sum(v == 3 for v in times.values()) == int(2.5 * m) - 2 * m


def test_class_balance_equal_and_scaled(files, obs_ref):
    o = obs_ref[0]
    have = o.cell_type.value_counts()  # missing labels are excluded from the classes
    for balance, scale in (("equal", None), ("scaled", 50.0)):
        c = cellfeed.Corpus([cellfeed.Source("a", files[0], cells=200, balance_by="cell_type",
                                             balance=balance, balance_scale=scale, upsample=True)])
        classes = sorted(have.index)
        mass = [1.0 if balance == "equal" else have[k] * scale / (have[k] + scale) for k in classes]
        want = dict(zip(classes, _largest_remainder(200, mass)))
        rows, _, _ = _epoch(cellfeed.Loader(c, batch_size=20, block_size=1, fetch_factor=2))
        got = o.cell_type.iloc[rows].value_counts().to_dict()
        assert got == want
        labels = c.report(columns=["cell_type"]).labels
        assert dict(zip(labels.value, labels.target.astype(int))) == want
        assert dict(zip(labels.value, labels.delivered)) == want


def test_per_cell_weights(files, obs_ref):
    w = np.asarray(obs_ref[1]["small"], float)  # uint8 weights, some 0
    counts = np.zeros(SIZES[1])
    for seed in range(40):
        c = cellfeed.Corpus([cellfeed.Source("a", files[1], cells=100, weight_column="small")], seed=seed)
        counts[c.epoch_rows()[0][2]] += 1  # the corpus holds f1 alone: rows from 0
    assert counts[w == 0].sum() == 0
    heavy, light = w >= np.quantile(w, 0.75), (w > 0) & (w <= np.quantile(w, 0.25))
    assert counts[heavy].mean() > 2 * counts[light].mean()


def test_listed_split_and_leakage(files, obs_ref):
    c = cellfeed.Corpus([cellfeed.Source("all", files)],
                        split=cellfeed.Split(by="sample", val=["sample1"], test=["sample2"],
                                             leakage_columns=["cell_type", "sample"]))
    o = concat_obs(obs_ref, [0, 1, 2])
    for split, value in (("train", "sample0"), ("val", "sample1"), ("test", "sample2")):
        np.testing.assert_array_equal(c.rows(split), np.flatnonzero(o["sample"] == value))
    leaks = c.leaks()
    assert set(leaks.column) == {"cell_type"}  # the split column itself never leaks
    train_rows, _, _ = _epoch(cellfeed.Loader(c, batch_size=32))
    assert set(train_rows.tolist()).isdisjoint(c.rows("val").tolist() + c.rows("test").tolist())
    val_rows, _, _ = _epoch(cellfeed.Loader(c, split="val", batch_size=32))
    assert sorted(val_rows.tolist()) == c.rows("val").tolist()


def test_fraction_split_keeps_groups_whole(files, obs_ref):
    c = cellfeed.Corpus([cellfeed.Source("all", files)],
                        split=cellfeed.Split(by="n_genes", fractions={"train": 0.6, "val": 0.2, "test": 0.2},
                                             seed=3))
    o = concat_obs(obs_ref, [0, 1, 2])
    where = {}
    for split in ("train", "val", "test"):
        for g in set(o.n_genes.iloc[c.rows(split)].tolist()):
            assert where.setdefault(g, split) == split  # a group never spans two splits
    frac = {s: len(c.rows(s)) / len(o) for s in ("train", "val", "test")}
    groups = o.n_genes.nunique()
    # The share of groups per split is Binomial(groups, p) / groups: within 5 sd.
    for s, p in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        sd = math.sqrt(p * (1 - p) / groups)
        assert abs(frac[s] - p) < 5 * sd + 0.02, frac


def test_cell_level_split_by_obs_names(files, obs_ref):
    """by="obs_names": each cell its own group. Fractions are Binomial(n, p) / n; a cell
    keeps its split when the files are given in another order."""
    split = cellfeed.Split(by="obs_names", fractions={"train": 0.8, "val": 0.2}, seed=5)
    c = cellfeed.Corpus([cellfeed.Source("all", files)], split=split)
    o = concat_obs(obs_ref, [0, 1, 2])
    n = len(o)
    val = c.rows("val")
    assert len(val) + len(c.rows("train")) == n and len(c.rows("test")) == 0
    sd = math.sqrt(0.2 * 0.8 / n)
    assert abs(len(val) / n - 0.2) < 5 * sd, len(val) / n
    def names(corpus, rows):  # (file name, obs name) of each row, independent of file order
        col = corpus.collection
        fi = np.searchsorted(col.file_offsets[1:], rows, side="right")
        return {(Path(col.files[i]).name, nm) for i, nm in zip(fi, col.obs_names(rows))}

    rev = cellfeed.Corpus([cellfeed.Source("all", files[::-1])], split=split)
    assert names(c, val) == names(rev, rev.rows("val"))
    with pytest.raises(ValueError, match="obs_names.*fractions"):
        cellfeed.Corpus([cellfeed.Source("all", files)],
                        split=cellfeed.Split(by="obs_names", val=["x"])).build()


def test_held_out_source(files):
    c = cellfeed.Corpus([cellfeed.Source("a", files[0]), cellfeed.Source("b", files[1]),
                         cellfeed.Source("held", files[2], split="test")])
    rows, srcs, _ = _epoch(cellfeed.Loader(c, batch_size=50))
    assert 2 not in set(srcs.tolist())
    lo = SIZES[0] + SIZES[1]
    assert (rows < lo).all()
    test_rows, _, _ = _epoch(cellfeed.Loader(c, split="test", batch_size=50, shuffle=False))
    assert test_rows.tolist() == list(range(lo, lo + SIZES[2]))


def test_report_equals_what_an_epoch_delivers(files, obs_ref):
    c = cellfeed.Corpus([cellfeed.Source("a", files[0], where="cell_type in ['T', 'B']", cells=200),
                         cellfeed.Source("b", files[1], cells=250, balance_by="grade", upsample=True),
                         cellfeed.Source("c", files[2], split="val")])
    loader = cellfeed.Loader(c, batch_size=32, block_size=4, fetch_factor=2, obs=["cell_type"])
    rep = loader.report(columns=["grade"])
    rows, srcs, _ = _epoch(loader)
    delivered = loader.delivered()
    assert delivered.tolist() == rep.sources["delivered"].tolist() == [200, 250, 0]
    assert rep.sources["requested"].tolist() == [200, 250, 0]
    o = concat_obs(obs_ref, [0, 1, 2])
    for name, s in (("a", 0), ("b", 1)):
        got = o.grade.iloc[rows[srcs == s]].value_counts().to_dict()
        lab = rep.labels[rep.labels.source == name]
        assert {k: v for k, v in zip(lab.value, lab.delivered) if v} == {k: v for k, v in got.items() if v}
    # JSON, markdown and the plot render
    d = json.loads(rep.to_json())
    assert d["sources"][0]["delivered"] == 200
    assert "| a |" in rep.to_markdown()


def test_per_rank_counts_sum_to_the_declaration(files):
    c = cellfeed.Corpus([cellfeed.Source("a", files[0], cells=301), cellfeed.Source("b", files[1], cells=150)])
    rep = c.report(world_size=3, batch_size=16)
    per_rank = rep.sources[[f"rank_{r}" for r in range(3)]].to_numpy()
    total = 451
    assert per_rank.sum() == math.ceil(total / 3) * 3  # padding: fewer than world_size cells
    for r in range(3):
        loader = cellfeed.Loader(c, batch_size=16, rank=r, world_size=3)
        _, s, _ = _epoch(loader)
        assert np.bincount(s, minlength=2).tolist() == per_rank[:, r].tolist()


def test_qc_metrics_against_numpy_and_cache(files, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLFEED_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ad.read_h5ad(files[0])
    X = a.X.toarray().astype(np.float64)
    mt = np.asarray([g.startswith("MT-") for g in a.var_names])
    df = cellfeed.qc_metrics(files[0])
    np.testing.assert_allclose(df.total_counts, X.sum(1))
    np.testing.assert_array_equal(df.n_genes_by_counts, (X != 0).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(X.sum(1) > 0, 100 * X[:, mt].sum(1) / X.sum(1), 0)
    np.testing.assert_allclose(df.pct_counts_mt, pct, rtol=1e-6, atol=1e-5)
    entries = os.listdir(tmp_path / "cache" / "qc")
    assert len(entries) == 1
    cellfeed.qc_metrics(files[0])
    assert os.listdir(tmp_path / "cache" / "qc") == entries  # served from the cache
    os.utime(files[0], ns=(os.stat(files[0]).st_atime_ns, os.stat(files[0]).st_mtime_ns + 10**9))
    cellfeed.qc_metrics(files[0])
    after = os.listdir(tmp_path / "cache" / "qc")
    assert len(after) == 1 and after != entries  # a new version replaced the old entry
    # QC columns in a filter
    c = cellfeed.Corpus([cellfeed.Source("a", files[0], where="total_counts > 100 and pct_counts_mt < 20")])
    want = np.flatnonzero((X.sum(1) > 100) & (np.float32(pct) < 20))
    np.testing.assert_array_equal(selected(c), want)


def test_qc_mito_share_of_ensembl_named_genes(tmp_path, monkeypatch):
    """Real CEL-seq2 counts named by Ensembl IDs: pct_counts_mt equals scanpy's with the
    mitochondrial genes found through the GENCODE table read here with pandas."""
    import scanpy as sc

    monkeypatch.setenv("CELLFEED_CACHE_DIR", str(tmp_path / "cache"))
    repo = Path(__file__).resolve().parents[2]
    counts = pd.read_csv(repo / "data/cellbench/sc_celseq2.count.csv.gz", index_col=0)
    a = ad.AnnData(sp.csr_matrix(counts.to_numpy(np.float32).T))
    a.var_names = counts.index.astype(str)
    a.obs_names = counts.columns.astype(str)
    path = write_anndata(tmp_path / "celseq2.h5ad", a)
    gencode = pd.read_csv(repo / "python/cellfeed/vocab/cellxgene_gencode_v44_genes.csv", header=None,
                          names=["id", "symbol"])
    mito_ids = set(gencode.id[gencode.symbol.str.startswith("MT-")])
    a.var["mt"] = [g.split(".")[0] in mito_ids for g in a.var_names]
    assert a.var.mt.sum() >= 10  # the 13 mitochondrial protein genes are measured
    sc.pp.calculate_qc_metrics(a, qc_vars=["mt"], percent_top=None, inplace=True)
    df = cellfeed.qc_metrics(path)
    np.testing.assert_allclose(df.pct_counts_mt, a.obs.pct_counts_mt, rtol=1e-5, atol=1e-4)
    assert (df.pct_counts_mt > 0).mean() > 0.9


BAD = {
    "missing column": (dict(where="nope == 1"), r"obs column 'nope' not found"),
    "category typo": (dict(where="cell_type == 'Tcell'"), r"no cell has the category 'Tcell' \(nearest existing values: 'T'"),
    "string typo": (dict(where="sample == 'sampel1'"), r"no cell has the value 'sampel1'.*'sample1'"),
    "string vs number": (dict(where="score == 'a'"), r"numeric \(float64\).*compare it with a number"),
    "order on strings": (dict(where="cell_type > 'T'"), r"strings take == != in"),
    "bool vs number": (dict(where="is_doublet == 1"), r"compare it with true or false"),
    "matches nothing": (dict(where="n_genes > 1e9"), r"matches no cell"),
    "syntax": (dict(where="n_genes >"), r"expected a value at the end"),
    "quota too big": (dict(cells=10**6), r"'s' is asked for 1000000 cells but has 700"),
    "class too small": (dict(cells=700, balance_by="cell_type"), r"class '.*' of 'cell_type' is asked for"),
    "held-out quota": (dict(cells=10, split="test"), r"quotas apply to the train split only"),
    "bad split": (dict(split="holdout"), r"split must be one of"),
    "cells and weight": (dict(cells=5, weight=1.0), r"gives both cells and weight"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_declarations_fail_before_any_batch(files, case):
    kw, msg = BAD[case]
    with pytest.raises(ValueError, match=msg):
        cellfeed.Loader(cellfeed.Corpus([cellfeed.Source("s", files[0], **kw)]), batch_size=8)


def test_bad_corpus_level_declarations(files, tmp_path):
    with pytest.raises(ValueError, match=r"either exact cell counts or weights"):
        cellfeed.Corpus([cellfeed.Source("a", files[0], cells=5), cellfeed.Source("b", files[1], weight=1)]).build()
    with pytest.raises(ValueError, match=r"no cell passing the filters has the value 'sampel2' \(nearest existing values: 'sample2'"):
        cellfeed.Corpus([cellfeed.Source("a", files[0])], split=cellfeed.Split(by="sample", test=["sampel2"])).build()
    with pytest.raises(FileNotFoundError, match="matches no file"):
        cellfeed.Corpus([cellfeed.Source("a", str(tmp_path / "*.h5ad"))])
    with pytest.raises(ValueError, match="two sources are named 'a'"):
        cellfeed.Corpus([cellfeed.Source("a", files[0]), cellfeed.Source("a", files[1])]).build()
    # A column that one file of a source lacks names that file.
    rng = np.random.default_rng(0)
    obs = make_obs(20, rng).drop(columns=["note"])
    var = make_var(40, rng)
    var.index = [("MT-" if j < 4 else "G") + str(j) for j in range(40)]
    other = write_anndata(tmp_path / "nonote.h5ad", ad.AnnData(sp.random(20, 40, 0.1, "csr", dtype=np.float32),
                                                                obs=obs, var=var))
    with pytest.raises(ValueError, match=rf"{other}: obs column 'note' not found"):
        cellfeed.Corpus([cellfeed.Source("a", [files[0], other], where="note == 'n3'")]).build()
    spec = tmp_path / "bad.toml"
    spec.write_text('seed = 1\ncolour = "red"\n[[source]]\nname = "a"\nfiles = ["x"]\n')
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        cellfeed.Corpus.from_toml(spec)


def _write_toml(path: Path, files, cells=120):
    path.write_text(f"""
seed = 4
subsample = "fixed"

[split]
by = "sample"
val = ["sample1"]
leakage_columns = ["cell_type"]

[[source]]
name = "a"
files = ["{files[0]}"]
where = "n_genes < 4000 and cell_type != 'NK'"
cells = {cells}

[[source]]
name = "b"
files = ["{os.path.basename(files[1])}"]
cells = 90
balance_by = "grade"
upsample = true
""")
    return path


def test_per_source_layer(tmp_path, monkeypatch):
    """One source keeps counts in X, another in layers/counts (X there is normalized): each
    is read from its own place, and QC filters see that matrix (checked against anndata)."""
    monkeypatch.setenv("CELLFEED_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    mats = []
    for i in range(2):
        X = sp.random(80, 30, density=0.3, format="csr", random_state=10 + i, dtype=np.float32)
        X.data = np.floor(X.data * 20) + 1
        mats.append(X)
    a = ad.AnnData(mats[0])
    b = ad.AnnData((mats[1] / 7.5).astype(np.float32), layers={"counts": mats[1]})
    for x in (a, b):
        x.obs_names = [f"c{j}" for j in range(80)]
        x.var_names = [f"G{j}" for j in range(30)]
    pa, pb = write_anndata(tmp_path / "a.h5ad", a), write_anndata(tmp_path / "b.h5ad", b)
    c = cellfeed.Corpus([cellfeed.Source("x", pa, where="total_counts > 40"),
                         cellfeed.Source("y", pb, where="total_counts > 40", layer="counts")],
                        values="counts")
    assert c.file_layers == [None, "counts"]
    got = c.collection.read(np.arange(160)).toarray()
    np.testing.assert_array_equal(got, np.vstack([mats[0].toarray(), mats[1].toarray()]))
    totals = np.concatenate([np.asarray(m.sum(1)).ravel() for m in mats])
    np.testing.assert_array_equal(c.rows("train"), np.flatnonzero(totals > 40))
    with pytest.raises(ValueError, match="one matrix per corpus"):
        cellfeed.Corpus([cellfeed.Source("x", pb), cellfeed.Source("y", pb, layer="counts")]).build()


def test_toml_equals_the_python_declaration(files, tmp_path):
    spec = _write_toml(Path(os.path.dirname(files[1])) / "spec_eq.toml", files)
    from_toml = cellfeed.Corpus.from_toml(spec)
    direct = cellfeed.Corpus([cellfeed.Source("a", [files[0]], where="n_genes < 4000 and cell_type != 'NK'", cells=120),
                              cellfeed.Source("b", [files[1]], cells=90, balance_by="grade", upsample=True)],
                             split=cellfeed.Split(by="sample", val=["sample1"], leakage_columns=["cell_type"]),
                             seed=4)
    assert from_toml.fingerprint == direct.fingerprint
    a, _, _ = _epoch(cellfeed.Loader(from_toml, batch_size=16))
    b, _, _ = _epoch(cellfeed.Loader(direct, batch_size=16))
    np.testing.assert_array_equal(a, b)


def test_cli_corpus_report(files, tmp_path):
    spec = _write_toml(Path(os.path.dirname(files[1])) / "spec_cli.toml", files)
    png = tmp_path / "corpus.png"
    proc = subprocess.run(["cellfeed", "corpus", str(spec), "--json", "--plot", str(png),
                           "--columns", "grade", "--world-size", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert [s["delivered"] for s in rep["sources"]] == [120, 90]
    assert sum(s["rank_0"] + s["rank_1"] for s in rep["sources"]) == 210
    assert png.stat().st_size > 1000
    bad = spec.with_name("spec_cli_bad.toml")  # beside the files: paths are relative to it
    bad.write_text(spec.read_text().replace("cells = 120", "cells = 100000"))
    proc = subprocess.run(["cellfeed", "corpus", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "is asked for 100000 cells" in proc.stderr


RESUME_SCRIPT = """
import json, sys
import numpy as np
import cellfeed
spec, state_path, out = sys.argv[1:4]
loader = cellfeed.Loader(cellfeed.Corpus.from_toml(spec), batch_size=16, block_size=2, fetch_factor=3)
loader.load_state_dict(json.load(open(state_path)))
json.dump([np.asarray(b.rows).tolist() for b in loader], open(out, "w"))
"""


def test_resume_in_a_fresh_process_and_fingerprint(files, tmp_path):
    spec = _write_toml(Path(os.path.dirname(files[1])) / "spec_resume.toml", files)
    corpus = cellfeed.Corpus.from_toml(spec)
    loader = cellfeed.Loader(corpus, batch_size=16, block_size=2, fetch_factor=3)
    loader.set_epoch(1)
    full = [np.asarray(b.rows).tolist() for b in loader]
    loader.set_epoch(1)
    it = iter(loader)
    for _ in range(5):
        next(it)
    state = loader.state_dict()
    del it
    (tmp_path / "state.json").write_text(json.dumps(state))
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(spec), str(tmp_path / "state.json"),
                           str(tmp_path / "out.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out.json").read_text()) == full[5:]
    changed = _write_toml(Path(os.path.dirname(files[1])) / "spec_resume2.toml", files, cells=121)
    other = cellfeed.Loader(cellfeed.Corpus.from_toml(changed), batch_size=16, block_size=2, fetch_factor=3)
    with pytest.raises(ValueError, match="another corpus declaration"):
        other.load_state_dict(state)


def test_dataloader_workers_deliver_the_same_batches(files):
    torch = pytest.importorskip("torch")
    c = cellfeed.Corpus([cellfeed.Source("a", files[0], cells=200), cellfeed.Source("b", files[1], weight=None)],
                        seed=2)
    loader = cellfeed.Loader(c, batch_size=16, block_size=2, fetch_factor=2)
    direct = {b.index: (np.asarray(b.rows).tolist(), np.asarray(b.source).tolist()) for b in loader}
    for workers in (1, 2):
        dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=workers)
        got = {b.index: (np.asarray(b.rows).tolist(), np.asarray(b.source).tolist()) for b in dl}
        assert got == direct


def test_forked_workers_keep_the_evaluated_corpus(files, tmp_path, monkeypatch):
    """A forked DataLoader worker opens the files again but does not evaluate the
    declaration again (filters, QC, subsamples): evaluations are counted by the processes
    that run them, through the QC step every evaluation goes through."""
    torch = pytest.importorskip("torch")
    log = tmp_path / "evaluations.txt"
    real = cellfeed.corpus.qc_columns_for

    def counted(*a, **k):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*a, **k)

    monkeypatch.setattr(cellfeed.corpus, "qc_columns_for", counted)
    c = cellfeed.Corpus([cellfeed.Source("a", files[0], cells=150, where="n_genes_by_counts > 0"),
                         cellfeed.Source("b", files[1], weight=None)], seed=4)
    loader = cellfeed.Loader(c, batch_size=16, block_size=2, fetch_factor=2)
    direct = {b.index: np.asarray(b.rows).tolist() for b in loader}
    assert log.read_text().split() == [str(os.getpid())]
    for persistent in (False, True):
        dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2,
                                         multiprocessing_context="fork", persistent_workers=persistent)
        for _ in range(2):
            assert {b.index: np.asarray(b.rows).tolist() for b in dl} == direct
    assert log.read_text().split() == [str(os.getpid())]  # no worker evaluated it
    # A changed file is refused rather than read through a stale selection.
    col = cellfeed.open([files[1], files[0]])
    with pytest.raises(ValueError, match="same rows"):
        c._engine.with_collection(col._c)


def _evaluated(c):
    """Everything an evaluated corpus answers, in plain values."""
    lanes = [(e, name, copy, rows.tolist()) for e in (0, 1)
             for name, copy, rows in c.epoch_rows("train", epoch=e)]
    return (c.counts().to_dict(), c.leaks().to_dict(),
            [c.rows(split=sp).tolist() for sp in ("train", "val", "test")],
            c._engine.class_targets(), lanes)


@pytest.mark.parametrize("subsample", ["fixed", "epoch"])
def test_a_pickled_corpus_carries_its_evaluation(files, tmp_path, monkeypatch, subsample):
    """An evaluated corpus, pickled (as a spawned DataLoader worker gets it), is not
    evaluated again where it is unpickled while its files are unchanged; with a file
    touched since, it is. Both answer exactly what the original evaluation does."""
    import pickle

    log = tmp_path / "evaluations.txt"
    real = cellfeed.corpus.qc_columns_for

    def counted(*a, **k):
        with open(log, "a") as f:
            f.write("evaluated\n")
        return real(*a, **k)

    monkeypatch.setattr(cellfeed.corpus, "qc_columns_for", counted)
    copies = [shutil.copy(f, tmp_path / Path(f).name) for f in files[:2]]
    c = cellfeed.Corpus([cellfeed.Source("a", copies[0], cells=150, where="n_genes_by_counts > 2"),
                         cellfeed.Source("b", copies[1], cells=90, balance_by="grade", upsample=True),
                         cellfeed.Source("w", copies[1], cells=40, weight_column="small")],
                        split=cellfeed.Split(by="sample", val=["sample1"], leakage_columns=["cell_type"]),
                        subsample=subsample, seed=4)
    expected = _evaluated(c)
    assert log.read_text().split() == ["evaluated"]
    blob = pickle.dumps(c)
    restored = pickle.loads(blob)
    assert _evaluated(restored) == expected
    assert log.read_text().split() == ["evaluated"]  # not evaluated again
    loader = cellfeed.Loader(restored, batch_size=16, block_size=2, fetch_factor=2)
    ref = cellfeed.Loader(c, batch_size=16, block_size=2, fetch_factor=2)
    for e in (0, 1):
        loader.set_epoch(e)
        ref.set_epoch(e)
        assert [np.asarray(b.rows).tolist() for b in loader] == [np.asarray(b.rows).tolist() for b in ref]
    # A file touched since the evaluation: evaluated again, same answers.
    st = os.stat(copies[1])
    os.utime(copies[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _evaluated(pickle.loads(blob)) == expected
    assert log.read_text().split() == ["evaluated"] * 2
    # Damaged saved bytes are an error, never a silent selection.
    _, saved = pickle.loads(blob)._saved
    col = cellfeed.open(copies)
    sources, options = c._engine_declaration(None)
    for bad, msg in [(saved[:-7], "truncated|damaged"), (b"x" + saved[1:], "wrong header"),
                     (saved + b"\0", "damaged")]:
        with pytest.raises(ValueError, match=msg):
            cellfeed._cellfeed.Corpus.restore(col._c, sources, options, bad)
    with pytest.raises(ValueError, match="other files or rows"):
        cellfeed._cellfeed.Corpus.restore(cellfeed.open(copies[::-1])._c, sources, options, saved)


def test_spawned_workers_get_the_evaluated_corpus(files):
    """Spawned DataLoader workers (whose processes import cellfeed afresh) deliver the
    corpus's batches exactly: the evaluation arrives with the pickled Loader."""
    torch = pytest.importorskip("torch")
    c = cellfeed.Corpus([cellfeed.Source("a", files[0], cells=150, where="n_genes_by_counts > 0"),
                         cellfeed.Source("b", files[1], weight=None)], seed=4)
    loader = cellfeed.Loader(c, batch_size=16, block_size=2, fetch_factor=2)
    direct = {b.index: np.asarray(b.rows).tolist() for b in loader}
    dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2,
                                     multiprocessing_context="spawn", persistent_workers=True)
    for _ in range(2):
        assert {b.index: np.asarray(b.rows).tolist() for b in dl} == direct


def test_torchrun_two_ranks_deliver_the_declared_counts(files, tmp_path):
    pytest.importorskip("torch")
    here = Path(__file__).parent
    spec_toml = _write_toml(Path(os.path.dirname(files[1])) / "spec_dist.toml", files)
    spec = tmp_path / "spec.json"
    configs = {"corpus": dict(batch_size=8, block_size=2, fetch_factor=3, seed=3)}
    spec.write_text(json.dumps({"corpus_toml": str(spec_toml), "configs": configs}))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(here)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(here / "dist_worker.py"), str(tmp_path), str(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recs = [json.loads((tmp_path / f"corpus.rank{r}.json").read_text()) for r in range(2)]
    assert len(recs[0]["batches"]) == len(recs[1]["batches"]) == recs[0]["len"]
    srcs = collections.Counter(s for r in recs for b in r["sources"] for s in b)
    # 120 + 90 = 210 cells: even, so no padding; exactly the declared counts across ranks.
    assert srcs == {0: 120, 1: 90}
    rows = [c for r in recs for b in r["batches"] for c in b]
    corpus = cellfeed.Corpus.from_toml(spec_toml)
    lanes = corpus.epoch_rows()
    want = collections.Counter(int(x) for _, _, rr in lanes for x in rr)
    assert collections.Counter(rows) == want


def test_upsampled_copies_get_their_own_model_inputs(files):
    """Copies of an upsampled cell are keyed apart (row id + copy): binomial thinning of the
    same cell's counts differs between its copies, while copy 0 matches the plain loader."""
    from cellfeed.inputs import Dense, Pipeline, Thin
    genes = [("MT-" if j < 4 else "G") + str(j) for j in range(40)]
    pipe = Pipeline(genes, (Thin(fraction=0.5),), Dense("none"))
    c = cellfeed.Corpus([cellfeed.Source("up", files[2], cells=2 * SIZES[2], upsample=True)])
    loader = cellfeed.Loader(c, batch_size=50, block_size=5, fetch_factor=2, inputs=pipe)
    seen = collections.defaultdict(list)
    for b in loader:
        values = np.asarray(b.inputs["values"])
        for r, v in zip(np.asarray(b.rows), values):
            seen[int(r)].append(v.copy())
    assert set(len(v) for v in seen.values()) == {2}
    differ = sum(not np.array_equal(a, b) for a, b in seen.values())
    nonzero = sum(a.sum() > 1 for a, _ in seen.values())
    assert differ > 0.9 * nonzero
