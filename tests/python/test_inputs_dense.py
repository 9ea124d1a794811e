"""The dense presets (AIDO.Cell / scFoundation RDA pretraining) and their transforms:
normalize_total / log1p / clip against scanpy, depth tokens against their definitions,
RDA downsampling, binomial thinning and value masking against statistical tolerances
derived here, integer-count errors, and bitwise determinism across threads, DataLoader
workers and a resume in a fresh process."""

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

sc = pytest.importorskip("scanpy")
torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

HERE = Path(__file__).resolve().parent
PANEL = ref.panel()
Z = 5.0  # tolerances are 5 standard errors: a false failure has probability < 1e-6


def _write(path, X, var_names):
    a = ad.AnnData(X=sp.csr_matrix(X, dtype=np.float32))
    a.var_names = list(var_names)
    a.obs_names = [f"{path.stem}_{i}" for i in range(X.shape[0])]
    a.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dense")
    rng = np.random.default_rng(11)
    genes = list(rng.choice(PANEL, 450, replace=False))
    g1, g2 = genes[:300], genes[150:]
    depth = rng.lognormal(0, 0.7, (120, 1))
    X1 = rng.poisson(depth * rng.gamma(0.5, 2, (1, 300)))
    X1[[0, 57]] = 0  # empty cells
    X2 = rng.poisson(rng.lognormal(0, 0.7, (90, 1)) * rng.gamma(0.5, 2, (1, 300)))
    X2[5] = 0
    f1 = _write(root / "part1.h5ad", X1, g1)
    f2 = _write(root / "part2.h5ad", X2, g2)
    # Deep cells on a small vocabulary, for the statistical tests.
    small = genes[:200]
    lam = rng.gamma(2.0, 12.0, (1, 200))
    Xs = rng.poisson(lam * rng.uniform(0.5, 1.5, (3000, 1)))
    fs = _write(root / "deep.h5ad", Xs, small)
    bad = Xs[:20].astype(np.float32)
    bad[13, 7] = 2.5
    fb = _write(root / "fractional.h5ad", bad, small)
    return {"files": [f1, f2], "genes": genes, "small": small, "deep": fs, "fractional": fb}


def _reference_panel(paths):
    """anndata concat of the files reindexed onto the panel (numpy reference)."""
    dense, present = [], []
    for p in paths:
        d, pr, _ = ref.on_vocab(ref.read(p), PANEL, "symbol")
        dense.append(d)
        present.append(np.repeat(pr[None], d.shape[0], 0))
    return np.vstack(dense), np.vstack(present)


def _scanpy_norm_log(X, target=1e4, clip=None):
    a = ad.AnnData(X=np.asarray(X, dtype=np.float64))
    sc.pp.normalize_total(a, target_sum=target)
    sc.pp.log1p(a)
    out = np.asarray(a.X)
    return np.minimum(out, clip) if clip is not None else out


def _all_inputs(loader):
    """Every cell's inputs keyed by global row id (numpy), from one epoch."""
    got = {}
    for b in loader:
        arrs = {k: v.numpy() for k, v in b.inputs.items()}
        for j, r in enumerate(np.asarray(b.rows)):
            got[int(r)] = {k: a[j] for k, a in arrs.items()}
    return got


def test_normalize_log1p_clip_and_aido_tokens_match_scanpy(data):
    col = cellfeed.open(data["files"], join="outer")
    pipe = cellfeed.inputs.Pipeline(
        "scfoundation", (cellfeed.inputs.NormalizeTotal(1e4), cellfeed.inputs.Log1p(),
                         cellfeed.inputs.Clip(max=20.0)),
        cellfeed.inputs.Dense("aido"))
    loader = cellfeed.Loader(col, batch_size=32, fetch_factor=2, seed=1, inputs=pipe)
    got = _all_inputs(loader)
    raw, present = _reference_panel(data["files"])
    expect = _scanpy_norm_log(raw, clip=20.0)
    totals = raw.sum(1)
    assert len(got) == col.n_obs
    for r in range(col.n_obs):
        v = got[r]["values"]
        assert v.shape == (19266,) and v.dtype == np.float32
        np.testing.assert_allclose(v[:19264], expect[r], rtol=2e-6, atol=1e-6)
        t = min(max(math.log10(totals[r]) if totals[r] > 0 else 5.0, 5.0), 20.0)
        np.testing.assert_allclose(v[19264:], [t, t], rtol=1e-6)
        np.testing.assert_array_equal(got[r]["attention_mask"][:19264], present[r])
        assert got[r]["attention_mask"][19264:].all()
    # empty cells: zeros (never NaN) and the floor token
    for r in (0, 57, 120 + 5):
        assert totals[r] == 0
        assert not np.isnan(got[r]["values"]).any() and (got[r]["values"][:19264] == 0).all()
        assert (got[r]["values"][19264:] == 5.0).all()


@pytest.mark.parametrize("t_mode,t_value", [("constant", 4.0), ("raw_total", 0.0), ("s_plus", 3.0)])
def test_scfoundation_depth_tokens(data, t_mode, t_value):
    col = cellfeed.open(data["files"][0])
    pipe = cellfeed.inputs.Pipeline(
        "scfoundation", (cellfeed.inputs.NormalizeTotal(1e4), cellfeed.inputs.Log1p()),
        cellfeed.inputs.Dense("scfoundation", t_mode=t_mode, t_value=t_value))
    out = pipe.run(col, np.arange(col.n_obs))
    raw, _ = _reference_panel(data["files"][:1])
    tot = raw.sum(1)
    s = np.where(tot > 0, np.log10(np.maximum(tot, 1)), 0.0)
    t = {"constant": np.full_like(s, t_value), "raw_total": s, "s_plus": s + t_value}[t_mode]
    np.testing.assert_allclose(out["values"][:, 19264], t.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(out["values"][:, 19265], s.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(out["values"][:, :19264], _scanpy_norm_log(raw), rtol=2e-6, atol=1e-6)


def test_aido_rda_preset_through_the_loader(data):
    """Names, dtypes, shapes; the target is scanpy's normalize+log1p(+clip) of the raw cell;
    unmasked inputs of cells not downsampled equal it; masked inputs hold the mask value;
    downsampled cells have S <= T."""
    col = cellfeed.open(data["files"], join="outer")
    loader = cellfeed.Loader(col, batch_size=32, fetch_factor=2, seed=5,
                             inputs=cellfeed.inputs.aido_cell_rda(mask_value=-7.0))
    first = next(iter(loader))
    spec = {k: (v.dtype, tuple(v.shape)) for k, v in first.inputs.items()}
    assert spec == {"values": (torch.float32, (32, 19266)),
                    "attention_mask": (torch.bool, (32, 19266)),
                    "mask": (torch.bool, (32, 19266)),
                    "target": (torch.float32, (32, 19264)),
                    "downsampled": (torch.bool, (32,))}
    got = _all_inputs(loader)
    raw, present = _reference_panel(data["files"])
    expect = _scanpy_norm_log(raw, clip=20.0)
    n_down = 0
    for r in range(col.n_obs):
        g = got[r]
        np.testing.assert_allclose(g["target"], expect[r], rtol=2e-6, atol=1e-6)
        m = g["mask"]
        assert not m[19264:].any() and not (m[:19264] & ~present[r]).any()
        assert (g["values"][m] == -7.0).all()
        if not g["downsampled"]:
            np.testing.assert_allclose(g["values"][:19264][~m[:19264]], expect[r][~m[:19264]],
                                       rtol=2e-6, atol=1e-6)
            assert g["values"][19264] == g["values"][19265]
        else:
            n_down += 1
            assert g["values"][19265] <= g["values"][19264]
    assert 0 < n_down < col.n_obs


def _deep_loader(data, pipe, **kw):
    col = cellfeed.open(data["deep"])
    return col, cellfeed.Loader(col, batch_size=100, fetch_factor=4, seed=kw.pop("seed", 9),
                                inputs=pipe, **kw)


def _small_vocab(data):
    return cellfeed.vocab.Vocabulary.from_genes(data["small"])


def test_rda_split_beta_and_binomial_statistics(data):
    """u ~ Bernoulli(0.5); b ~ Beta(2,2) (mean 1/2, variance 1/20, KS test); given b,
    X ~ Binomial(X_raw, b): the standardized sum of X - b X_raw is N(0, 1)."""
    from scipy import stats
    pipe = cellfeed.inputs.Pipeline(_small_vocab(data), (cellfeed.inputs.RdaDownsample(),),
                                    cellfeed.inputs.Dense())
    col, loader = _deep_loader(data, pipe)
    got = _all_inputs(loader)
    n = len(got)
    down = np.array([got[r]["downsampled"] for r in range(n)])
    # Bernoulli(0.5): |k - n/2| < Z sqrt(n/4)
    assert abs(down.sum() - n / 2) < Z * math.sqrt(n / 4)
    x = np.stack([got[r]["values"] for r in range(n)]).astype(np.float64)
    raw = np.stack([got[r]["target"] for r in range(n)]).astype(np.float64)
    np.testing.assert_array_equal(raw, ref.read(data["deep"]).X.toarray())  # target = raw counts
    assert (x[~down] == raw[~down]).all()
    assert (x == np.round(x)).all() and (x <= raw).all()
    xd, rd = x[down], raw[down]
    b = xd.sum(1) / rd.sum(1)  # the cell's rate, up to binomial noise
    m = len(b)
    a_, b_ = 2.0, 2.0
    mean = a_ / (a_ + b_)
    var = a_ * b_ / ((a_ + b_) ** 2 * (a_ + b_ + 1))
    mu4 = 3 * a_ * b_ * (a_ * b_ * (a_ + b_ - 6) + 2 * (a_ + b_) ** 2) / (
        (a_ + b_) ** 4 * (a_ + b_ + 1) * (a_ + b_ + 2) * (a_ + b_ + 3))
    noise = np.mean(b * (1 - b) / rd.sum(1))  # binomial noise of the estimate
    assert abs(b.mean() - mean) < Z * math.sqrt((var + noise) / m)
    assert abs(b.var() - (var + noise)) < Z * math.sqrt((mu4 - var ** 2) / m) + 2 * noise
    assert stats.kstest(b, stats.beta(2, 2).cdf).pvalue > 1e-4
    # Binomial(X_raw, b) given b (estimated per cell: its noise is in the variance below)
    mu = rd * b[:, None]
    sd = np.sqrt((rd * b[:, None] * (1 - b[:, None])).sum())
    # The per-cell rate is estimated from the same draws, so the sum is exactly 0; check
    # the dispersion instead: sum (X - n b)^2 ~ sum n b (1 - b) (1 - 1/genes) per cell.
    ss = ((xd - mu) ** 2).sum()
    expected_ss = (rd * b[:, None] * (1 - b[:, None])).sum() * (1 - 1 / rd.shape[1])
    assert abs(ss / expected_ss - 1) < 0.05, (ss, expected_ss, sd)


@pytest.mark.parametrize("p", [0.3, 0.85])
def test_thinning_binomial_mean_and_variance(data, p):
    """Thin(fraction=p): each value X ~ Binomial(n, p), n the raw count. Over all values:
    z = sum(X - n p) / sqrt(sum n p q) ~ N(0,1); the sum of squares (X - n p)^2 has mean
    sum n p q and variance sum (mu4 - (n p q)^2), mu4 = n p q (1 + 3 (n - 2) p q)."""
    pipe = cellfeed.inputs.Pipeline(_small_vocab(data), (cellfeed.inputs.Thin(fraction=p),),
                                    cellfeed.inputs.Dense())
    col, loader = _deep_loader(data, pipe, seed=p * 100)
    got = _all_inputs(loader)
    raw = ref.read(data["deep"]).X.toarray().astype(np.float64)
    x = np.stack([got[r]["values"] for r in range(len(got))]).astype(np.float64)
    q = 1 - p
    npq = raw * p * q
    z = (x - raw * p).sum() / math.sqrt(npq.sum())
    assert abs(z) < Z
    mu4 = npq * (1 + 3 * (raw - 2) * p * q)
    ss = ((x - raw * p) ** 2).sum()
    assert abs(ss - npq.sum()) < Z * math.sqrt((mu4 - npq ** 2).sum())
    assert (x <= raw).all() and (x == np.round(x)).all()


def test_thinning_to_a_target_depth(data):
    target = 1500.0
    pipe = cellfeed.inputs.Pipeline(_small_vocab(data), (cellfeed.inputs.Thin(target_total=target),),
                                    cellfeed.inputs.Dense())
    col, loader = _deep_loader(data, pipe)
    got = _all_inputs(loader)
    raw = ref.read(data["deep"]).X.toarray().astype(np.float64)
    x = np.stack([got[r]["values"] for r in range(len(got))]).astype(np.float64)
    tot = raw.sum(1)
    p = np.minimum(1, target / tot)
    # totals ~ Binomial(total, p): mean total p, variance total p (1 - p)
    z = (x.sum(1) - tot * p).sum() / math.sqrt((tot * p * (1 - p)).sum())
    assert abs(z) < Z
    assert (x[tot <= target] == raw[tot <= target]).all()


def test_value_mask_fractions(data):
    """Each nonzero position is masked with probability 0.30, each present zero with 0.03;
    absent genes and depth tokens never."""
    pipe = cellfeed.inputs.Pipeline(
        _small_vocab(data), (cellfeed.inputs.Thin(fraction=0.05),),
        cellfeed.inputs.Dense("aido", mask=True, mask_value=-3.0))
    col, loader = _deep_loader(data, pipe)
    got = _all_inputs(loader)
    # positions are classified by the input's values before masking: recompute them
    unmasked = cellfeed.inputs.Pipeline(_small_vocab(data), (cellfeed.inputs.Thin(fraction=0.05),),
                                        cellfeed.inputs.Dense("aido"))
    _, l2 = _deep_loader(data, unmasked)
    plain = _all_inputs(l2)
    m = np.stack([got[r]["mask"] for r in range(len(got))])
    v = np.stack([plain[r]["values"] for r in range(len(got))])
    assert not m[:, 200:].any()
    nz = v[:, :200] != 0
    for frac, sel in ((0.30, nz), (0.03, ~nz)):
        k, n = m[:, :200][sel].sum(), sel.sum()
        assert abs(k - n * frac) < Z * math.sqrt(n * frac * (1 - frac)), (frac, k, n)
    vals = np.stack([got[r]["values"] for r in range(len(got))])
    assert (vals[m] == -3.0).all()
    assert (vals[~m] == v[~m]).all()


def test_absent_genes_are_never_masked(data):
    col = cellfeed.open(data["files"][0])
    out = cellfeed.inputs.Pipeline("scfoundation", (), cellfeed.inputs.Dense(
        mask=True, mask_nonzero=1.0, mask_zero=1.0)).run(col, np.arange(col.n_obs))
    _, present = _reference_panel(data["files"][:1])
    np.testing.assert_array_equal(out["mask"], present)


def test_fractional_counts_are_an_error(data):
    col = cellfeed.open(data["fractional"])
    with pytest.raises(ValueError) as e:
        list(cellfeed.Loader(col, batch_size=4, fetch_factor=1, shuffle=False,
                             inputs=cellfeed.inputs.aido_cell_rda()))
    msg = str(e.value)
    assert "fractional.h5ad" in msg and "row 13" in msg and f"'{data['small'][7]}'" in msg
    assert "2.5" in msg and "integer" in msg


def test_bfloat16_values_are_torch_rounding(data):
    col = cellfeed.open(data["files"][0])
    mk = lambda dt: cellfeed.inputs.Pipeline(  # noqa: E731
        "scfoundation", (cellfeed.inputs.NormalizeTotal(), cellfeed.inputs.Log1p()),
        cellfeed.inputs.Dense("aido", dtype=dt))
    f32 = next(iter(cellfeed.Loader(col, batch_size=16, seed=2, inputs=mk("float32"))))
    b16 = next(iter(cellfeed.Loader(col, batch_size=16, seed=2, inputs=mk("bfloat16"))))
    assert b16.inputs["values"].dtype == torch.bfloat16
    assert torch.equal(b16.inputs["values"], f32.inputs["values"].to(torch.bfloat16))


# -- determinism --------------------------------------------------------------------------
KW = dict(batch_size=16, block_size=4, fetch_factor=3, seed=123)


def _fps(loader):
    return sorted((fingerprint(b) for b in loader), key=lambda d: d["index"])


def test_identical_across_threads_and_prefetch(data):
    paths = [str(p) for p in data["files"]]
    results = []
    for threads, prefetch in ((1, 1), (2, 2), (3, 4)):
        col = cellfeed.open(paths, join="outer", threads=threads)
        loader = cellfeed.Loader(col, prefetch=prefetch, inputs=cellfeed.inputs.aido_cell_rda(), **KW)
        loader.set_epoch(2)
        results.append(_fps(loader))
    assert results[0] == results[1] == results[2]
    # and per cell: another batching of the same epoch gives each cell the same inputs
    col = cellfeed.open(paths, join="outer")
    a = _all_inputs(cellfeed.Loader(col, inputs=cellfeed.inputs.aido_cell_rda(), **KW))
    b = _all_inputs(cellfeed.Loader(col, inputs=cellfeed.inputs.aido_cell_rda(),
                                    **dict(KW, batch_size=7, fetch_factor=5)))
    for r in a:
        for k in a[r]:
            np.testing.assert_array_equal(a[r][k], b[r][k])
    # a new epoch draws anew
    e1 = cellfeed.Loader(col, inputs=cellfeed.inputs.aido_cell_rda(), **KW)
    e1.set_epoch(1)
    c = _all_inputs(e1)
    assert any((a[r]["mask"] != c[r]["mask"]).any() for r in a)


def test_identical_through_two_dataloader_workers(data):
    paths = [str(p) for p in data["files"]]
    col = cellfeed.open(paths, join="outer")
    loader = cellfeed.Loader(col, inputs=cellfeed.inputs.aido_cell_rda(), **KW)
    loader.set_epoch(1)
    expected = _fps(loader)
    dl = DataLoader(loader, batch_size=None, num_workers=2, timeout=120)
    got = sorted((fingerprint(b) for b in dl), key=lambda d: d["index"])
    assert got == expected


def test_identical_after_resume_in_a_fresh_process(data, tmp_path):
    paths = [str(p) for p in data["files"]]
    kw = dict(KW, join="outer")
    loader = cellfeed.Loader(paths, inputs=cellfeed.inputs.aido_cell_rda(), **kw)
    loader.set_epoch(3)
    batches, states = [], []
    for b in loader:
        batches.append(fingerprint(b))
        if len(batches) in (1, 5):
            states.append(json.loads(json.dumps(loader.state_dict())))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"paths": paths, "kwargs": kw, "preset": "aido_cell_rda",
                                "vocab": None, "states": states}))
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(HERE / "inputs_resume.py"), str(spec), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())["results"]
    assert res[0] == batches[1:] and res[1] == batches[5:]
