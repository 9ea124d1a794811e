"""The token presets: Geneformer rank-value encoding (V1, V2) with masked-token labels, and
scGPT value binning with its collator, against numpy references written here from the
published definitions (docs/MODEL_INPUTS.md), plus statistical tests of the random parts
and determinism across threads and a resume in a fresh process."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellfeed
import inputs_reference as ref
from inputs_resume import fingerprint

torch = pytest.importorskip("torch")
HERE = Path(__file__).resolve().parent
Z = 5.0
GF = ref.geneformer()


def _write(path, X, var_names):
    a = ad.AnnData(X=sp.csr_matrix(X, dtype=np.float32))
    a.var_names = list(var_names)
    a.obs_names = [f"{path.stem}_{i}" for i in range(X.shape[0])]
    a.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    rng = np.random.default_rng(5)
    ids = list(rng.choice(GF.ensembl_id[4:].to_numpy(), 5200, replace=False))
    # versioned IDs, two pairs of file genes on one dictionary gene (summed), and genes
    # outside the dictionary (they count in n_counts but get no token)
    names = [f"{g}.{i % 7 + 1}" for i, g in enumerate(ids)]
    names[10] = ids[11] + ".99"
    names[20] = ids[21] + ".98"
    names += [f"ENSG9{i:010d}" for i in range(40)]
    X = rng.poisson(rng.uniform(0.2, 3.0, (60, 1)), (60, len(names)))
    X[3] = 0
    X[4, :] = 0
    X[4, :5] = 1  # a cell with few genes
    gf = _write(root / "ensembl.h5ad", X, names)
    # scGPT: symbols with many ties (small counts), one cell beyond max_length
    panel = ref.panel()
    sym = list(rng.choice(panel, 400, replace=False))
    Xs = rng.poisson(0.6, (300, 400))
    Xs[7] = 0
    Xs[8] = rng.poisson(5, 400) + 1
    sg = _write(root / "symbols.h5ad", Xs, sym)
    return {"gf": gf, "sg": sg, "sym": sym}


def _geneformer_reference(adata, version):
    """Tokens per Geneformer's tokenizer from its definition: Ensembl IDs (versions
    stripped) onto the dictionary, duplicates summed, n_counts over all genes,
    x / n_counts * 1e4 / median, nonzero genes by descending value (ties: token id)."""
    vocab = [("" if t < 4 else e) for t, e in zip(GF.token, GF.ensembl_id)]
    dense, _, _ = ref.on_vocab(adata, vocab, "ensembl")
    X = adata.X.toarray().astype(np.float64)
    n_counts = X.sum(1)
    med = GF["median"].to_numpy()
    out = []
    for i in range(X.shape[0]):
        nz = np.nonzero(dense[i])[0]
        if n_counts[i] == 0:
            nz = nz[:0]
        key = dense[i, nz] / n_counts[i] * 10000.0 / med[nz]
        order = nz[np.lexsort((nz, -key))]
        if version == 1:
            out.append(order[:2048])
        else:
            out.append(np.concatenate([[2], order[:4094], [3]]))
    return out


@pytest.mark.parametrize("version", [1, 2])
def test_geneformer_rank_encoding_matches_reference(files, version):
    col = cellfeed.open(files["gf"])
    pipe = cellfeed.inputs.Pipeline("geneformer", (), cellfeed.inputs.RankTokens(version, mlm=False))
    out = pipe.run(col, np.arange(col.n_obs))
    expect = _geneformer_reference(ref.read(files["gf"]), version)
    L = 2048 if version == 1 else 4096
    assert out["input_ids"].shape == (col.n_obs, L) and out["input_ids"].dtype == np.int64
    assert "labels" not in out
    long_cells = 0
    for i, e in enumerate(expect):
        n = len(e)
        assert out["length"][i] == n
        np.testing.assert_array_equal(out["input_ids"][i, :n], e)
        assert (out["input_ids"][i, n:] == 0).all()
        assert out["attention_mask"][i, :n].all() and not out["attention_mask"][i, n:].any()
        long_cells += n == L
    assert long_cells > 10  # truncation exercised
    rep = pipe.mapping(col).reports[0]
    assert rep["summed"] == 4 and rep["mapped"] == 5200 and rep["file_genes"] == 5240


def test_geneformer_mlm_statistics(files):
    """15% of gene tokens selected; of those 80% <mask>, 10% random gene token, 10% kept;
    labels -100 elsewhere; special tokens and padding never selected."""
    col = cellfeed.open(files["gf"])
    loader = cellfeed.Loader(col, batch_size=8, fetch_factor=2, seed=4,
                             inputs=cellfeed.inputs.geneformer_mlm(2))
    plain = cellfeed.inputs.Pipeline("geneformer", (), cellfeed.inputs.RankTokens(2, mlm=False))
    ids, labels, orig = [], [], []
    for b in loader:
        ids.append(b.inputs["input_ids"].numpy())
        labels.append(b.inputs["labels"].numpy())
        orig.append(plain.run(col, np.asarray(b.rows))["input_ids"])
    ids, labels, orig = map(np.vstack, (ids, labels, orig))
    special = (orig < 4)
    sel = labels != -100
    assert not (sel & special).any()
    np.testing.assert_array_equal(labels[sel], orig[sel])
    np.testing.assert_array_equal(ids[~sel], orig[~sel])
    n = (~special).sum()
    k = sel.sum()
    assert abs(k - 0.15 * n) < Z * math.sqrt(n * 0.15 * 0.85)
    masked = (ids[sel] == 1).sum()
    kept = (ids[sel] == orig[sel]).sum()
    rand = k - masked - kept
    V = len(GF)
    for got, p in ((masked, 0.8), (kept, 0.1 + 0.1 / (V - 4)), (rand, 0.1 - 0.1 / (V - 4))):
        assert abs(got - k * p) < Z * math.sqrt(k * p * (1 - p)), (got, k, p)
    r = ids[sel][(ids[sel] != 1) & (ids[sel] != orig[sel])]
    assert ((r >= 4) & (r < V)).all()


@pytest.mark.parametrize("preset", ["geneformer_v2", "scgpt"])
def test_pad_to_batch_is_fixed_padding_cut_to_the_longest_row(files, preset):
    """pad="batch" rows are sized by the engine: every tensor equals the pad="fixed" one
    cut to the batch's longest row, contiguous, for every batch of a shuffled epoch (small
    batches make the cut vary; the empty cells make some rows shorter than the cut)."""
    if preset == "scgpt":
        col = cellfeed.open(files["sg"])
        vocab = cellfeed.vocab.Vocabulary.from_genes(files["sym"])
        make = lambda pad: cellfeed.inputs.scgpt_masked_value(genes=vocab, max_length=450, pad=pad)
    else:
        col = cellfeed.open(files["gf"])
        # rows longer than any cell, so that no batch fills them
        make = lambda pad: cellfeed.inputs.Pipeline(
            "geneformer", (), cellfeed.inputs.RankTokens(2, max_tokens=6000, pad=pad))
    kw = dict(batch_size=3, fetch_factor=4, block_size=2, seed=11)
    fixed = list(cellfeed.Loader(col, inputs=make("fixed"), **kw))
    cut = list(cellfeed.Loader(col, inputs=make("batch"), **kw))
    assert len(fixed) == len(cut) > 10
    widths = set()
    for f, c in zip(fixed, cut):
        assert sorted(f.inputs) == sorted(c.inputs)
        n = int(f.inputs["length"].max())
        widths.add(n)
        for k, a in f.inputs.items():
            b = c.inputs[k]
            if a.dim() == 2:
                assert a.shape[1] > n and b.shape == (a.shape[0], n), k
                assert b.is_contiguous(), k
                assert torch.equal(b, a[:, :n]), k
            else:
                assert torch.equal(a, b), k
    assert len(widths) > 3  # the cut varies from batch to batch


def _scgpt_bins_reference(x):
    """scGPT binning bounds from its definition (numpy quantile + digitize): the bin of a
    nonzero value lies in [r + 1, l] (l = digitize left, r = digitize right); l when l = r."""
    nz = x[x != 0]
    edges = np.quantile(nz, np.linspace(0, 1, 50))
    l = np.digitize(nz, edges)
    r = np.digitize(nz, edges, right=True)
    return l, r


def test_scgpt_binning_and_collation(files):
    col = cellfeed.open(files["sg"])
    vocab = cellfeed.vocab.Vocabulary.from_genes(files["sym"])
    L = 120
    pipe = cellfeed.inputs.scgpt_masked_value(genes=vocab, max_length=L, mask_ratio=0.4)
    out = pipe.run(col, np.arange(col.n_obs), seed=3)
    a = ref.read(files["sg"])
    X = a.X.toarray().astype(np.float64)
    # the values scGPT bins: normalize_total to 1e4 then log1p (scanpy's definition)
    tot = X.sum(1, keepdims=True)
    norm = np.log1p(np.divide(X * 1e4, tot, out=np.zeros_like(X), where=tot > 0))
    V = len(files["sym"])
    spread = 0
    for i in range(col.n_obs):
        n = int(out["length"][i])
        ids, val = out["gene_ids"][i], out["values"][i]
        assert ids[0] == V and val[0] == 0.0  # <cls>
        assert (ids[n:] == V + 1).all() and (val[n:] == -2.0).all()
        assert out["attention_mask"][i, :n].all() and not out["attention_mask"][i, n:].any()
        nz = np.nonzero(X[i])[0]
        if len(nz) == 0:
            assert n == 1
            continue
        l, r = _scgpt_bins_reference(norm[i])
        genes = ids[1:n]
        assert n - 1 == min(len(nz), L - 1)
        assert set(genes) <= set(nz) and (np.diff(genes) > 0).all()
        pos = np.searchsorted(nz, genes)
        b = val[1:n]
        assert ((b >= 1) & (b <= 49 + 1)).all()
        exact = l[pos] == r[pos]
        np.testing.assert_array_equal(b[exact], l[pos][exact])
        assert ((b[~exact] >= r[pos][~exact] + 1) & (b[~exact] <= l[pos][~exact])).all()
        spread += (~exact).sum()
        # masking: non-cls, non-pad positions only, to -1
        m = out["masked_values"][i]
        assert m[0] == 0.0 and (m[n:] == -2.0).all()
        assert ((m[1:n] == -1.0) | (m[1:n] == b)).all()
    assert spread > 100  # ties were spread
    # cell 8 has 400 genes > L - 1: sampled
    assert out["length"][8] == L
    sel = out["masked_values"][:, 1:] == -1.0
    valid = out["attention_mask"][:, 1:]
    k, n = (sel & valid).sum(), valid.sum()
    assert abs(k - 0.4 * n) < Z * math.sqrt(n * 0.24)


def test_scgpt_bins_of_cells_with_many_distinct_values(tmp_path):
    """Cells whose nonzero values take more distinct values than the engine's table of them
    (256, src/transform/cell_state.h) are binned through a full sort instead; both kinds
    of cell, side by side, against the reference."""
    rng = np.random.default_rng(8)
    panel = ref.panel()
    sym = list(rng.choice(panel, 700, replace=False))
    X = rng.poisson(0.8, (40, 700))
    for i in range(0, 40, 2):  # 600 genes with distinct counts: 600 distinct values
        X[i] = 0
        X[i, rng.choice(700, 600, replace=False)] = rng.permutation(600) + 1
    path = _write(tmp_path / "distinct.h5ad", X, sym)
    col = cellfeed.open(path)
    vocab = cellfeed.vocab.Vocabulary.from_genes(sym)
    pipe = cellfeed.inputs.Pipeline(vocab, (cellfeed.inputs.NormalizeTotal(), cellfeed.inputs.Log1p()),
                                    cellfeed.inputs.ValueBins(max_length=701, mask_ratio=0))
    out = pipe.run(col, np.arange(col.n_obs), seed=2)
    Xf = ref.read(path).X.toarray().astype(np.float64)
    tot = Xf.sum(1, keepdims=True)
    norm = np.log1p(np.divide(Xf * 1e4, tot, out=np.zeros_like(Xf), where=tot > 0))
    for i in range(col.n_obs):
        nz = np.nonzero(Xf[i])[0]
        n = int(out["length"][i])
        assert n - 1 == len(nz)
        assert (i % 2 == 0) == (len(np.unique(norm[i][nz])) > 256)
        l, r = _scgpt_bins_reference(norm[i])
        b = out["values"][i, 1:n]
        np.testing.assert_array_equal(out["gene_ids"][i, 1:n], nz)
        exact = l == r
        np.testing.assert_array_equal(b[exact], l[exact])
        assert ((b[~exact] >= r[~exact] + 1) & (b[~exact] <= l[~exact])).all()


def test_scgpt_tie_spreading_is_uniform(files):
    """For a tie spanning bins r+1..l, U uniform gives each bin probability 1/(l - r)."""
    from scipy import stats
    col = cellfeed.open(files["sg"])
    vocab = cellfeed.vocab.Vocabulary.from_genes(files["sym"])
    pipe = cellfeed.inputs.Pipeline(vocab, (), cellfeed.inputs.ValueBins(max_length=401, mask_ratio=0))
    X = ref.read(files["sg"]).X.toarray().astype(np.float64)
    counts = {}
    for seed in range(6):
        out = pipe.run(col, np.arange(col.n_obs), seed=seed)
        for i in range(col.n_obs):
            nz = np.nonzero(X[i])[0]
            if len(nz) == 0:
                continue
            l, r = _scgpt_bins_reference(X[i])
            n = int(out["length"][i])
            b = out["values"][i, 1:n]
            for lo, hi, v in zip(r + 1, l, b):
                if hi > lo:
                    counts.setdefault((lo, hi), []).append(int(v) - lo)
    tested = 0
    for (lo, hi), v in counts.items():
        if len(v) < 200:
            continue
        f = np.bincount(v, minlength=hi - lo + 1)
        assert stats.chisquare(f).pvalue > 1e-5, ((lo, hi), f)
        tested += 1
    assert tested >= 1


@pytest.mark.parametrize("preset", ["geneformer_v2", "scgpt"])
def test_token_presets_identical_across_threads_and_resume(files, preset, tmp_path):
    from inputs_resume import make_preset
    path = str(files["gf"] if preset == "geneformer_v2" else files["sg"])
    vocab = None if preset == "geneformer_v2" else files["sym"]
    kw = dict(batch_size=8, block_size=2, fetch_factor=3, seed=8)
    runs = []
    for threads in (1, 3):
        col = cellfeed.open(path, threads=threads)
        loader = cellfeed.Loader(col, inputs=make_preset(preset, vocab), **kw)
        loader.set_epoch(1)
        runs.append([fingerprint(b) for b in loader])
    assert runs[0] == runs[1]
    loader = cellfeed.Loader(path, inputs=make_preset(preset, vocab), **kw)
    loader.set_epoch(1)
    states = []
    for i, b in enumerate(loader):
        if i == 2:
            states.append(json.loads(json.dumps(loader.state_dict())))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"paths": [path], "kwargs": kw, "preset": preset, "vocab": vocab,
                                "states": states}))
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(HERE / "inputs_resume.py"), str(spec), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(out.read_text())["results"][0] == runs[0][3:]
