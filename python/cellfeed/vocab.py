"""Gene vocabularies shipped with cellfeed, and mapping a collection onto one.

Shipped (python/cellfeed/vocab/, licenses in NOTICE there):
- scfoundation_19264_genes.tsv: the 19,264-symbol panel of scFoundation and AIDO.Cell.
- geneformer_gc104M_vocab.tsv: Geneformer V2's token dictionary (token, ensembl_id,
  symbol, median; tokens 0-3 are <pad>, <mask>, <cls>, <eos>).
- cellxgene_gencode_v44_genes.csv: GENCODE v44 Ensembl ID <-> symbol (CELLxGENE).

map_genes() maps every file of a collection onto a vocabulary by symbol or Ensembl ID
(from var names or a var column; Ensembl versions stripped; translated through GENCODE
where a file holds the other kind), sums several file genes that land on one vocabulary
gene, flags absent genes per file, and reports per file what mapped. The work is C++
(src/transform/gene_map.cc).
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import _cellfeed

VOCAB_DIR = Path(__file__).resolve().parent / "vocab"
SCFOUNDATION_FILE = VOCAB_DIR / "scfoundation_19264_genes.tsv"
GENEFORMER_FILE = VOCAB_DIR / "geneformer_gc104M_vocab.tsv"
GENCODE_FILE = VOCAB_DIR / "cellxgene_gencode_v44_genes.csv"


@functools.lru_cache(maxsize=None)
def _scfoundation() -> tuple[str, ...]:
    df = pd.read_csv(SCFOUNDATION_FILE, sep="\t", dtype={"gene_name": str})
    if not (df["index"].to_numpy() == np.arange(len(df))).all():
        raise ValueError(f"{SCFOUNDATION_FILE}: index column is not 0..n-1")
    return tuple(df["gene_name"])


@functools.lru_cache(maxsize=None)
def _geneformer() -> pd.DataFrame:
    df = pd.read_csv(GENEFORMER_FILE, sep="\t", dtype={"ensembl_id": str, "symbol": str},
                     keep_default_na=False, na_values={"median": [""]})
    if not (df["token"].to_numpy() == np.arange(len(df))).all():
        raise ValueError(f"{GENEFORMER_FILE}: tokens are not 0..n-1")
    return df


@functools.lru_cache(maxsize=None)
def _gencode() -> tuple[tuple[str, str], ...]:
    with open(GENCODE_FILE, newline="", encoding="utf-8") as fh:
        return tuple((r[0], r[1]) for r in csv.reader(fh) if len(r) >= 2)


def scfoundation_genes() -> list[str]:
    """The 19,264 HGNC symbols of the scFoundation / AIDO.Cell panel, in model order."""
    return list(_scfoundation())


def geneformer_vocab() -> pd.DataFrame:
    """Geneformer gc104M dictionary: token, ensembl_id, symbol, median (NaN for specials)."""
    return _geneformer().copy()


def gencode_table() -> pd.DataFrame:
    """GENCODE v44 (CELLxGENE): ensembl_id, symbol."""
    return pd.DataFrame(list(_gencode()), columns=["ensembl_id", "symbol"])


@dataclass(frozen=True)
class Vocabulary:
    """A model's genes in model order (position = id); `by` says what they are."""

    name: str
    genes: tuple
    by: str = "symbol"  # "symbol" or "ensembl"
    medians: tuple | None = None  # Geneformer: per entry, NaN for special tokens

    @classmethod
    def scfoundation(cls) -> "Vocabulary":
        return cls("scfoundation_19264", _scfoundation(), "symbol")

    @classmethod
    def geneformer(cls) -> "Vocabulary":
        df = _geneformer()
        ids = tuple("" if t < 4 else e for t, e in zip(df["token"], df["ensembl_id"]))
        return cls("geneformer_gc104M", ids, "ensembl", tuple(df["median"].astype(float)))

    @classmethod
    def from_genes(cls, genes, by: str = "symbol", name: str = "custom") -> "Vocabulary":
        if isinstance(genes, (str, os.PathLike)):
            from .collection import read_gene_list
            genes = read_gene_list(genes)
        return cls(name, tuple(str(g) for g in genes), by)

    def __len__(self) -> int:
        return len(self.genes)


def _as_vocab(vocab) -> Vocabulary:
    if isinstance(vocab, Vocabulary):
        return vocab
    if vocab in ("scfoundation", "aido", "aido_cell"):
        return Vocabulary.scfoundation()
    if vocab == "geneformer":
        return Vocabulary.geneformer()
    return Vocabulary.from_genes(vocab)


@dataclass
class GeneMapping:
    """A collection mapped onto a vocabulary: per-file reports and presence masks."""

    vocab: Vocabulary
    _map: object = field(repr=False)

    @property
    def reports(self) -> list[dict]:
        """Per file: file, file_genes, mapped, translated, summed, vocab_missing,
        unmapped_examples."""
        return self._map.reports

    def report(self) -> pd.DataFrame:
        return pd.DataFrame(self.reports)

    def present(self, file: int) -> np.ndarray:
        """bool [vocab_size]: the vocabulary genes file `file` has."""
        return self._map.present(file).astype(bool)

    def column_to_vocab(self, file: int) -> np.ndarray:
        """int32 [n_vars]: collection column -> vocabulary id (-1 = none) for file `file`."""
        return self._map.column_to_vocab(file)


def map_genes(collection, vocab="scfoundation", var_column: str | None = None,
              translate: bool = True) -> GeneMapping:
    """Maps every file of `collection` onto `vocab` ("scfoundation", "geneformer", a
    Vocabulary, a gene list or a gene-list file). var_column: take each file's gene
    identifiers from that var column instead of var names. translate: use the GENCODE
    table where a file holds the other identifier kind. A file with no gene in the
    vocabulary raises ValueError naming it, with example names from both sides."""
    v = _as_vocab(vocab)
    engine = collection._c if hasattr(collection, "_c") else collection
    table = list(_gencode()) if translate else []
    m = _cellfeed.map_genes(engine, list(v.genes), v.by, var_column or "", table)
    return GeneMapping(v, m)
