"""Independent references for cellfeed.inputs, written from the published definitions
(docs/MODEL_INPUTS.md) with numpy / pandas / scanpy. They read the files with anndata and
never call cellfeed."""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

VOCAB = Path(__file__).resolve().parents[2] / "python" / "cellfeed" / "vocab"
ENSEMBL = re.compile(r"^(ENS[A-Z]*[A-Z]\d+)")


def read(path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(path)


def panel() -> list[str]:
    return pd.read_csv(VOCAB / "scfoundation_19264_genes.tsv", sep="\t")["gene_name"].tolist()


def geneformer() -> pd.DataFrame:
    return pd.read_csv(VOCAB / "geneformer_gc104M_vocab.tsv", sep="\t", keep_default_na=False,
                       na_values={"median": [""]})


def gencode() -> pd.DataFrame:
    with open(VOCAB / "cellxgene_gencode_v44_genes.csv", newline="") as fh:
        rows = [r[:2] for r in csv.reader(fh)]
    return pd.DataFrame(rows, columns=["ensembl_id", "symbol"])


def strip_version(name: str) -> str:
    m = ENSEMBL.match(name)
    return m.group(1) if m else name


def vocab_index(names, vocab, by, table=None) -> np.ndarray:
    """Per file gene: its vocabulary position (-1 = none), from the definitions: strip
    Ensembl versions; translate the other identifier kind through the table (a symbol
    with several IDs in the vocabulary maps to none)."""
    pos = {g: i for i, g in reversed(list(enumerate(vocab))) if g}
    id2sym = {} if table is None else dict(zip(table.ensembl_id.map(strip_version), table.symbol))
    sym2ids: dict = {}
    if table is not None:
        for i, s in zip(table.ensembl_id.map(strip_version), table.symbol):
            sym2ids.setdefault(s, []).append(i)
    out = []
    for n in names:
        is_id = bool(ENSEMBL.match(n))
        if is_id == (by == "ensembl"):
            out.append(pos.get(strip_version(n), -1))
        elif is_id:
            out.append(pos.get(id2sym.get(strip_version(n), None), -1))
        else:
            hits = {pos[i] for i in sym2ids.get(n, []) if i in pos}
            out.append(hits.pop() if len(hits) == 1 else -1)
    return np.asarray(out, dtype=np.int64)


def on_vocab(adata: ad.AnnData, vocab, by, table=None, names=None):
    """The cells of `adata` on the vocabulary: dense [n, V] with duplicates summed, and
    the presence mask [V]."""
    names = list(adata.var_names) if names is None else list(names)
    idx = vocab_index(names, vocab, by, table)
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    keep = idx >= 0
    M = sp.csr_matrix((np.ones(keep.sum()), (np.nonzero(keep)[0], idx[keep])),
                      shape=(len(names), len(vocab)))
    dense = np.asarray(X.astype(np.float64) @ M.toarray())
    present = np.zeros(len(vocab), bool)
    present[idx[keep]] = True
    return dense, present, idx
