"""A drug screen built from REAL cells with SIMULATED drug effects whose ground truth is known.

The cells are the CellBench five-cell-line CEL-seq2 plates (data/cellbench: A549, H1975,
H2228, H838, HCC827; real UMI counts, their common genes). No real drug was applied: each
simulated drug is a gene program (a set of genes, each scaled up or down by a fixed log
fold change) whose strength differs per cell line. The screen is laid out as real plates
are: each plate has two DMSO wells and one well per drug, the five lines multiplexed in
every well, the cells of a well contiguous in the file. A well's cells are real cells of
each line drawn with replacement, and every cell's counts (controls included) are drawn
again as Poisson(count x fold change), so a reused cell is never an exact copy.

Written as one gzip h5ad: X = the simulated counts (csr float32) on the most expressed
genes; obsm["X_hvg"] = log1p(counts per 10k) of the most variable of them (dense float32,
the features the model sees, as STATE's X_hvg); obs = drug, cell_line, plate, well. The
truth (each drug's log fold change per line on the X_hvg genes) goes to a JSON file.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

DATA = Path(__file__).resolve().parent.parent / "data" / "cellbench"
PLATES = ["sc_celseq2_5cl_p1", "sc_celseq2_5cl_p2", "sc_celseq2_5cl_p3"]


def real_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CellBench 5-line cells on their common genes: counts [cells, genes], line, gene ids."""
    counts, lines = [], []
    for name in PLATES:
        c = pd.read_csv(DATA / f"{name}.count.csv.gz", index_col=0)  # genes x cells
        meta = pd.read_csv(DATA / f"{name}.metadata.csv.gz", index_col=0)
        cells = [x for x in c.columns if x in meta.index]
        counts.append(c[cells])
        lines.append(meta.loc[cells, "cell_line_demuxlet"].astype(str).to_numpy())
    genes = sorted(set.intersection(*(set(c.index) for c in counts)))
    X = np.concatenate([c.loc[genes].to_numpy(np.float32).T for c in counts])
    return X, np.concatenate(lines), np.array(genes)


def log_norm(x: np.ndarray) -> np.ndarray:
    """log1p of counts per 10,000 (the feature space, and the space deltas are measured in)."""
    return np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1.0) * 1e4).astype(np.float32)


def build(out_dir: Path, n_drugs: int = 8, n_plates: int = 2, cells_per_line: int = 30,
          n_genes: int = 1000, n_hvg: int = 300, program_size: int = 25, seed: int = 0) -> dict:
    """Write the screen; return its paths, drugs, lines and the feature genes."""
    rng = np.random.default_rng(seed)
    X, line_of, gene_ids = real_cells()
    top = np.sort(np.argsort(-X.sum(0))[:n_genes])  # the most expressed genes
    X, gene_ids = X[:, top], gene_ids[top]
    hvg = np.sort(np.argsort(-log_norm(X).var(0))[:n_hvg])  # most variable, by column of X
    lines = sorted(set(line_of))
    drugs = [f"drug{k}" for k in range(n_drugs)]
    # A drug: program genes among the features, a log fold change each (up or down), and a
    # strength per line (the same program acts more or less strongly in each context).
    lfc = np.zeros((n_drugs, len(lines), X.shape[1]), np.float32)
    for k in range(n_drugs):
        genes = rng.choice(hvg, size=program_size, replace=False)
        base = rng.uniform(0.7, 1.6, program_size) * rng.choice([-1.0, 1.0], program_size)
        for c in range(len(lines)):
            lfc[k, c, genes] = rng.uniform(0.3, 1.5) * base
    pools = {ln: np.flatnonzero(line_of == ln) for ln in lines}
    blocks, obs = [], []
    for p in range(n_plates):
        wells = ["DMSO", *drugs, "DMSO"]
        for w, drug in enumerate(wells):
            # Every line in every well (multiplexed), in a shuffled order within the well.
            line_idx = rng.permutation(np.repeat(np.arange(len(lines)), cells_per_line))
            src = np.array([rng.choice(pools[lines[c]]) for c in line_idx])
            fold = 1.0 if drug == "DMSO" else np.exp(lfc[drugs.index(drug), line_idx])
            blocks.append(rng.poisson(X[src] * fold).astype(np.float32))
            obs += [(drug, lines[c], f"plate{p}", f"plate{p}_W{w:02d}") for c in line_idx]
    counts = np.concatenate(blocks)
    obs = pd.DataFrame(obs, columns=["drug", "cell_line", "plate", "well"]).astype("category")
    obs.index = [f"cell{i}" for i in range(len(obs))]
    a = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=gene_ids))
    a.obsm["X_hvg"] = log_norm(counts)[:, hvg]
    a.uns["simulated"] = "real CellBench cells, simulated drug effects (examples/perturb_screen.py)"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "screen.h5ad"
    a.write_h5ad(path, compression="gzip")
    truth = {"lines": lines, "drugs": drugs, "hvg_genes": gene_ids[hvg].tolist(),
             "lfc_hvg": {f"{d}|{ln}": lfc[k, c, hvg].tolist()
                         for k, d in enumerate(drugs) for c, ln in enumerate(lines)}}
    (out_dir / "truth.json").write_text(json.dumps(truth))
    return {"path": path, "truth": truth, "n_cells": a.n_obs, "n_genes": a.n_vars}
