"""QC filters over sources whose files disagree about which QC metrics obs holds (issue 37,
defect 1): every file is judged on its own obs column where it has one and on computed
metrics where it has none, for every metric and any mix of files. Expected rows come from
pandas over anndata's reading of each file's obs and from numpy over its X, never from
cellfeed; the computed metrics follow scanpy's definitions (total counts, genes with a
non-zero count, the percentage of counts in genes whose names start with "MT-")."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import cellfeed

QC = ("total_counts", "n_genes_by_counts", "pct_counts_mt")
N_CELLS, N_GENES = 100, 30
# Each file's own QC columns are the true metric plus these offsets, so a file judged on
# computed values instead of its own column (or the other way round) selects other rows.
OFFSET = {"total_counts": 1000.0, "n_genes_by_counts": 20.0, "pct_counts_mt": 60.0}
# One threshold per metric, near the middle of the true values.
FILTER = {"total_counts": "total_counts > 25", "n_genes_by_counts": "n_genes_by_counts >= 9",
          "pct_counts_mt": "pct_counts_mt < 19.5"}


def _x(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(1.0, size=(N_CELLS, N_GENES)).astype(np.float32)


def _computed(x: np.ndarray, var_names) -> pd.DataFrame:
    mt = np.array([g.startswith("MT-") for g in var_names])
    total = x.sum(axis=1)
    return pd.DataFrame({"total_counts": total, "n_genes_by_counts": (x > 0).sum(axis=1),
                         "pct_counts_mt": np.where(total > 0, x[:, mt].sum(axis=1) / np.where(total > 0, total, 1) * 100, 0)})


def _write(path, seed: int, own: tuple[str, ...]) -> None:
    x = _x(seed)
    var = [f"MT-{i}" for i in range(4)] + [f"G{i}" for i in range(N_GENES - 4)]
    true = _computed(x, var)
    obs = pd.DataFrame({"plate": pd.Categorical([f"p{seed}"] * N_CELLS)},
                       index=[f"f{seed}c{i}" for i in range(N_CELLS)])
    for m in own:
        obs[m] = (true[m].to_numpy() + OFFSET[m]).astype(np.float64 if m == "pct_counts_mt" else np.float32)
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=var)).write_h5ad(path)


def _judged(path) -> pd.DataFrame:
    """What each cell of `path` must be judged on: its own obs column, else computed."""
    a = ad.read_h5ad(path)
    comp = _computed(np.asarray(a.X), list(a.var_names))
    return pd.DataFrame({m: (a.obs[m].to_numpy(np.float64) if m in a.obs.columns else comp[m].to_numpy(np.float64))
                         for m in QC})


def _expected(paths, where_metrics) -> np.ndarray:
    rows, base = [], 0
    for p in paths:
        j = _judged(p)
        keep = np.ones(len(j), bool)
        for m in where_metrics:
            keep &= _apply(FILTER[m], j[m].to_numpy())
        rows.append(base + np.flatnonzero(keep))
        base += len(j)
    return np.concatenate(rows)


def _apply(expr: str, v: np.ndarray) -> np.ndarray:
    _, op, value = expr.split()
    value = float(value)
    return {">": v > value, ">=": v >= value, "<": v < value}[op]


# Files: every subset of the three metrics present in obs, one file each (8 files).
SUBSETS = [s for r in range(4) for s in itertools.combinations(QC, r)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("qcmix")
    out = []
    for i, own in enumerate(SUBSETS):
        p = d / f"f{i}_{'_'.join(own) or 'none'}.h5ad"
        _write(p, i, own)
        out.append(p)
    return out


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLFEED_CACHE_DIR", str(tmp_path / "cache"))


WHERES = [(m,) for m in QC] + [QC[:2], QC]


@pytest.mark.parametrize("metrics", WHERES, ids=["+".join(w) for w in WHERES])
def test_each_file_is_judged_on_its_own_column_or_computed_values(files, metrics):
    where = " and ".join(FILTER[m] for m in metrics)
    corpus = cellfeed.Corpus([cellfeed.Source("s", [str(p) for p in files], where=where)])
    got = corpus.rows("train")
    np.testing.assert_array_equal(got, _expected(files, metrics))


@pytest.mark.parametrize("metrics", WHERES, ids=["+".join(w) for w in WHERES])
def test_a_source_over_one_file_agrees_with_the_same_file_in_many(files, metrics):
    where = " and ".join(FILTER[m] for m in metrics)
    for p in files:
        alone = cellfeed.Corpus([cellfeed.Source("s", [str(p)], where=where)])
        want = _expected([p], metrics)
        if len(want) == 0:  # e.g. a file whose own pct_counts_mt (+60) fails the filter
            with pytest.raises(ValueError, match=f"{p.name}.*matches no cell"):
                alone.rows("train")
            continue
        np.testing.assert_array_equal(alone.rows("train"), want, err_msg=str(p))


def test_the_issue_reproduction(tmp_path):
    # a.h5ad: no QC columns; b.h5ad: total_counts = true totals + 1000 (all pass on b's own).
    x = np.random.default_rng(3).poisson(0.3, size=(100, 100)).astype(np.float32)
    ad.AnnData(x).write_h5ad(tmp_path / "a.h5ad")
    b = ad.AnnData(x.copy())
    b.obs["total_counts"] = x.sum(axis=1) + 1000
    b.write_h5ad(tmp_path / "b.h5ad")
    files = [str(tmp_path / "a.h5ad"), str(tmp_path / "b.h5ad")]
    want_a = np.flatnonzero(x.sum(axis=1) > 25)
    for where in ("total_counts > 25", "total_counts > 25 and n_genes_by_counts >= 0"):
        rows = cellfeed.Corpus([cellfeed.Source("s", files, where=where)]).rows("train")
        np.testing.assert_array_equal(rows, np.concatenate([want_a, 100 + np.arange(100)]), err_msg=where)


def _toml(path, files, where) -> None:
    path.write_text("seed = 0\n\n[[source]]\nname = \"s\"\nfiles = [" +
                    ", ".join(json.dumps(str(f)) for f in files) + f"]\nwhere = {json.dumps(where)}\n")


def test_toml_and_the_cli_report_count_the_same_cells(files, tmp_path):
    where = " and ".join(FILTER[m] for m in QC)
    spec = tmp_path / "c.toml"
    _toml(spec, files, where)
    want = len(_expected(files, QC))
    corpus = cellfeed.Corpus.from_toml(spec)
    assert len(corpus.rows("train")) == want
    r = subprocess.run([sys.executable, "-m", "cellfeed", "corpus", str(spec), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    counts = report["counts"] if isinstance(report, dict) and "counts" in report else report
    text = json.dumps(counts)
    assert f'"passing": {want}' in text, text[:2000]
