"""The value bins against scGPT's own `scgpt.preprocess.binning` (scgpt 0.2.4 as published,
unpacked without its dependencies into .scgpt-ref by scripts/install.sh).

scGPT spreads tied values with numpy's global generator, so its bins are compared in two
ways: with that generator replaced by constant draws (u = 0 gives each value's highest
possible bin, u -> 1 its lowest), every bin of ours must lie within scGPT's bounds and equal
scGPT's bin where the two bounds meet; with scGPT's real draws, the tied bins of both must
sit at the middle of their ranges, within a tolerance derived from the uniform's variance."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import types
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import cellfeed

REF = Path(__file__).resolve().parents[2] / ".scgpt-ref"
N_BINS = 51


@pytest.fixture(scope="module")
def scgpt_binning():
    if not (REF / "scgpt" / "preprocess.py").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{REF} is missing: scripts/install.sh unpacks scgpt==0.2.4 there")
        pytest.skip(f"scGPT's code is not unpacked in {REF} (scripts/install.sh does it)")
    # scgpt/__init__ imports its models, trainer and their dependencies; binning needs only
    # preprocess.py and the package's logger, so the package is stood in for by a module
    # holding the logger, with the real package directory as its path.
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "scgpt" or k.startswith("scgpt.")}
    pkg = types.ModuleType("scgpt")
    pkg.__path__ = [str(REF / "scgpt")]
    pkg.logger = logging.getLogger("scGPT")
    sys.modules["scgpt"] = pkg
    try:
        yield importlib.import_module("scgpt.preprocess").binning
    finally:
        for k in [k for k in sys.modules if k == "scgpt" or k.startswith("scgpt.")]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """Small counts (many ties), a cell with every gene nonzero (scGPT then bins the whole
    row, no zeros), a cell with one gene, an empty cell."""
    rng = np.random.default_rng(12)
    n, g = 160, 300
    X = rng.poisson(rng.uniform(0.3, 2.0, (n, 1)), (n, g)).astype(np.float64)
    X[5] = rng.poisson(4, g) + 1
    X[6] = 0
    X[6, 17] = 3
    X[7] = 0
    genes = [f"G{i:04d}" for i in range(g)]
    a = ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)))
    a.var_names = genes
    a.obs_names = [f"c{i}" for i in range(n)]
    path = tmp_path_factory.mktemp("scgpt") / "cells.h5ad"
    a.write_h5ad(path)
    tot = X.sum(1, keepdims=True)
    norm = np.log1p(np.divide(X * 1e4, tot, out=np.zeros_like(X), where=tot > 0))
    return path, genes, norm


def _ours(path, genes, seed):
    col = cellfeed.open(path)
    vocab = cellfeed.vocab.Vocabulary.from_genes(genes)
    pipe = cellfeed.inputs.Pipeline(
        vocab, (cellfeed.inputs.NormalizeTotal(1e4), cellfeed.inputs.Log1p()),
        cellfeed.inputs.ValueBins(N_BINS, max_length=len(genes) + 1, mask_ratio=0.0, sample=False))
    out = pipe.run(col, np.arange(col.n_obs), seed=seed)
    bins = np.zeros((col.n_obs, len(genes)))
    for i in range(col.n_obs):
        n = int(out["length"][i])
        bins[i, out["gene_ids"][i, 1:n]] = out["values"][i, 1:n]
    return bins


def _scgpt(binning, norm, monkeypatch, draw):
    """scGPT's bins of every row, its generator replaced by `draw(n)` (None: its own)."""
    with monkeypatch.context() as m:
        if draw is not None:
            m.setattr(np.random, "rand", draw)
        return np.stack([binning(row.copy(), N_BINS) if row.max() > 0 else np.zeros_like(row)
                         for row in norm])


def test_bins_lie_within_scgpts_bounds_and_equal_its_untied_bins(scgpt_binning, cells, monkeypatch):
    path, genes, norm = cells
    hi = _scgpt(scgpt_binning, norm, monkeypatch, lambda n: np.zeros(n))
    lo = _scgpt(scgpt_binning, norm, monkeypatch, lambda n: np.full(n, 1 - 1e-9))
    assert (lo <= hi).all()
    ours = _ours(path, genes, seed=4)
    nz = norm > 0
    assert ((ours > 0) == nz).all()  # zeros stay 0, every nonzero value gets a bin >= 1
    assert ((ours >= lo) & (ours <= hi)).all(), np.argwhere((ours < lo) | (ours > hi))[:5]
    exact = nz & (lo == hi)
    tied = nz & (lo < hi)
    np.testing.assert_array_equal(ours[exact], hi[exact])
    assert exact.sum() > 300 and tied.sum() > 1000  # both kinds are exercised
    # the dense cell (no zeros: scGPT bins the whole row) and the one-gene cell
    assert (ours[5] >= 1).all() and ours[6].sum() == ours[6, 17] >= 1 and (ours[7] == 0).all()


def test_tied_bins_are_spread_like_scgpts(scgpt_binning, cells, monkeypatch):
    path, genes, norm = cells
    hi = _scgpt(scgpt_binning, norm, monkeypatch, lambda n: np.zeros(n))
    lo = _scgpt(scgpt_binning, norm, monkeypatch, lambda n: np.full(n, 1 - 1e-9))
    tied = (norm > 0) & (lo < hi)
    mid = (lo + hi) / 2
    # a uniform draw over the w = hi - lo + 1 integers of the range: variance (w^2 - 1) / 12
    var = (((hi - lo + 1) ** 2 - 1) / 12)[tied].sum()
    np.random.seed(0)
    theirs = _scgpt(scgpt_binning, norm, monkeypatch, None)
    for name, bins in (("scgpt", theirs), ("cellfeed", _ours(path, genes, seed=9))):
        assert ((bins[tied] >= lo[tied]) & (bins[tied] <= hi[tied])).all(), name
        z = (bins - mid)[tied].sum() / np.sqrt(var)
        assert abs(z) < 5, (name, z)
        # and not the same constant end of the range every time
        assert (bins[tied] == lo[tied]).mean() < 0.9 and (bins[tied] == hi[tied]).mean() < 0.9, name
