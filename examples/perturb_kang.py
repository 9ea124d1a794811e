"""A real control-vs-stimulated check: PBMCs with and without interferon-beta (Kang et al.
2018, a 99-cell x 99-gene fragment of each condition in data/kang2018).

The two matrices are written as one h5ad (obs `stim`: ctrl / stim), cut into cell sets by
cellfeed.SetLoader with `stim` as the perturbation, and the genes ranked by the delta of
their mean log1p(counts per 10k) between the stimulated sets and their matched control
sets. Interferon-stimulated genes should lead; ISG15 is the one of them in the fragment
(IFI6, IFIT1, MX1, IFI27 are not among its genes). The fragment holds no cell-type labels
(its marker genes have 1-3 counts in each file), so there is one context.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

import cellfeed

DATA = Path(__file__).resolve().parent.parent / "data" / "kang2018"


def read_matrix(path: Path) -> pd.DataFrame:
    """cells x genes counts; the header names one more barcode than the rows have values."""
    lines = path.read_text().splitlines()
    barcodes = lines[0].split("\t")
    rows = [ln.split("\t") for ln in lines[1:]]
    n = len(rows[0]) - 1
    return pd.DataFrame({r[0]: np.array(r[1:], dtype=np.float32) for r in rows}, index=barcodes[:n])


def write_h5ad(out_dir: Path) -> Path:
    parts = []
    for stim, name in (("ctrl", "immune_control_expression_matrix.txt"),
                       ("stim", "immune_stimulated_expression_matrix.txt")):
        df = read_matrix(DATA / name)
        df.index = [f"{stim}:{b}" for b in df.index]
        parts.append((stim, df))
    genes = list(parts[0][1].columns)
    X = np.concatenate([df[genes].to_numpy() for _, df in parts])
    obs = pd.DataFrame({"stim": np.concatenate([[s] * len(df) for s, df in parts]),
                        "cell_type": "PBMC"}, index=[i for _, df in parts for i in df.index])
    a = ad.AnnData(X=sp.csr_matrix(X), obs=obs.astype("category"), var=pd.DataFrame(index=genes))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "kang2018_fragment.h5ad"
    a.write_h5ad(path)
    return path


def log_norm(x: np.ndarray) -> np.ndarray:
    return np.log1p(x / np.maximum(x.sum(-1, keepdims=True), 1.0) * 1e4)


def check(out_dir: Path, set_size: int = 16, seed: int = 0) -> dict:
    """Genes ranked by the stimulated-minus-control delta over the delivered sets."""
    path = write_h5ad(out_dir)
    pert = cellfeed.Perturbation("stim", control=["ctrl"], context="cell_type")
    loader = cellfeed.SetLoader(str(path), pert, set_size=set_size, sets_per_batch=4, seed=seed,
                                output="numpy")
    genes = np.array(loader.collection.var_names)
    stim, ctrl, rows = [], [], []
    for b in loader:
        keep = np.array([n == "stim" for n in b.pert_names])
        stim.append(log_norm(b.pert_X[keep]).reshape(-1, len(genes)))
        ctrl.append(log_norm(b.ctrl_X[keep]).reshape(-1, len(genes)))
        rows.append((b.pert_rows[keep].reshape(-1), b.ctrl_rows[keep].reshape(-1)))
    delta = np.concatenate(stim).mean(0) - np.concatenate(ctrl).mean(0)
    order = np.argsort(-delta)
    return {"path": str(path), "top_genes": genes[order[:5]].tolist(),
            "top_delta": [round(float(delta[i]), 3) for i in order[:5]],
            "pert_rows": np.concatenate([r[0] for r in rows]),
            "ctrl_rows": np.concatenate([r[1] for r in rows])}
