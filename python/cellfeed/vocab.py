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

Examples
--------
>>> import cellfeed
>>> len(cellfeed.vocab.Vocabulary.scfoundation())
19264
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
    """The 19,264 HGNC symbols of the scFoundation / AIDO.Cell panel, in model order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> import cellfeed
    >>> cellfeed.vocab.scfoundation_genes()[:3]
    ['A1BG', 'A1CF', 'A2M']
    """
    return list(_scfoundation())


def geneformer_vocab() -> pd.DataFrame:
    """Geneformer's gc104M token dictionary (Geneformer V2).

    Returns
    -------
    pandas.DataFrame
        ``token`` (0..n-1; 0-3 are <pad>, <mask>, <cls>, <eos>), ``ensembl_id``,
        ``symbol`` and ``median`` (the gene's nonzero median, NaN for the special tokens).

    Examples
    --------
    >>> import cellfeed
    >>> df = cellfeed.vocab.geneformer_vocab()
    >>> len(df), df.loc[4, "ensembl_id"], df.loc[4, "symbol"]
    (20275, 'ENSG00000000003', 'TSPAN6')
    """
    return _geneformer().copy()


def gencode_table() -> pd.DataFrame:
    """The GENCODE v44 gene table CELLxGENE uses, for translating Ensembl IDs and symbols.

    Returns
    -------
    pandas.DataFrame
        ``ensembl_id`` (unversioned) and ``symbol``, one row per gene.

    Examples
    --------
    >>> import cellfeed
    >>> cellfeed.vocab.gencode_table().loc[1].tolist()
    ['ENSG00000223972', 'DDX11L1']
    """
    return pd.DataFrame(list(_gencode()), columns=["ensembl_id", "symbol"])


@dataclass(frozen=True)
class Vocabulary:
    """A model's genes in model order (position = id).

    Parameters
    ----------
    name : str
        What reports call it.
    genes : tuple of str
        The genes; a gene's position is its id in the model.
    by : {"symbol", "ensembl"}, default "symbol"
        What the genes are: HGNC symbols or Ensembl gene IDs.
    medians : tuple of float, optional
        Geneformer's per-gene nonzero medians (NaN for special tokens); needed by
        :class:`cellfeed.inputs.RankTokens`.

    Examples
    --------
    >>> import cellfeed
    >>> v = cellfeed.vocab.Vocabulary.geneformer()
    >>> v.name, len(v), v.by, v.genes[4]
    ('geneformer_gc104M', 20275, 'ensembl', 'ENSG00000000003')
    >>> cellfeed.vocab.Vocabulary.from_genes(["CD3E", "MS4A1"]).genes
    ('CD3E', 'MS4A1')
    """

    name: str
    genes: tuple
    by: str = "symbol"  # "symbol" or "ensembl"
    medians: tuple | None = None  # Geneformer: per entry, NaN for special tokens

    @classmethod
    def scfoundation(cls) -> "Vocabulary":
        """The 19,264-symbol scFoundation / AIDO.Cell panel.

        Returns
        -------
        Vocabulary
        """
        return cls("scfoundation_19264", _scfoundation(), "symbol")

    @classmethod
    def geneformer(cls) -> "Vocabulary":
        """Geneformer V2's dictionary by Ensembl ID, with its gene medians.

        Returns
        -------
        Vocabulary
            Ids 0-3 (the special tokens) have empty gene names.
        """
        df = _geneformer()
        ids = tuple("" if t < 4 else e for t, e in zip(df["token"], df["ensembl_id"]))
        return cls("geneformer_gc104M", ids, "ensembl", tuple(df["median"].astype(float)))

    @classmethod
    def from_genes(cls, genes, by: str = "symbol", name: str = "custom") -> "Vocabulary":
        """A vocabulary from a list of genes or a gene-list file.

        Parameters
        ----------
        genes : sequence of str, str or os.PathLike
            The genes in model order, or a file read by :func:`cellfeed.read_gene_list`.
        by : {"symbol", "ensembl"}, default "symbol"
            What the genes are.
        name : str, default "custom"
            What reports call it.

        Returns
        -------
        Vocabulary
        """
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
    """A collection mapped onto a vocabulary: per-file reports and presence masks.

    Made by :func:`map_genes`.

    Parameters
    ----------
    vocab : Vocabulary
        The vocabulary mapped onto.
    """

    vocab: Vocabulary
    _map: object = field(repr=False)

    @property
    def reports(self) -> list[dict]:
        """Per file: file, file_genes, mapped, translated, summed, vocab_missing,
        unmapped_examples."""
        return self._map.reports

    def report(self) -> pd.DataFrame:
        """:attr:`reports` as a table.

        Returns
        -------
        pandas.DataFrame
            One row per file.
        """
        return pd.DataFrame(self.reports)

    def present(self, file: int) -> np.ndarray:
        """The vocabulary genes a file has.

        Parameters
        ----------
        file : int
            The file's position in the collection.

        Returns
        -------
        numpy.ndarray
            bool, one per vocabulary id.
        """
        return self._map.present(file).astype(bool)

    def column_to_vocab(self, file: int) -> np.ndarray:
        """Where a file's genes land in the vocabulary.

        Parameters
        ----------
        file : int
            The file's position in the collection.

        Returns
        -------
        numpy.ndarray
            int32, one per collection column: its vocabulary id, -1 for none.
        """
        return self._map.column_to_vocab(file)


def map_genes(collection, vocab="scfoundation", var_column: str | None = None,
              translate: bool = True) -> GeneMapping:
    """Map every file of a collection onto a vocabulary, and report what mapped.

    Genes are matched by symbol or Ensembl ID (Ensembl versions stripped), translated
    through GENCODE v44 where a file holds the other kind; several file genes that land on
    one vocabulary gene are summed.

    Parameters
    ----------
    collection : Collection
        The files (each mapped on its own).
    vocab : str, Vocabulary, sequence of str or path, default "scfoundation"
        ``"scfoundation"``, ``"geneformer"``, a :class:`Vocabulary`, a gene list or a
        gene-list file.
    var_column : str, optional
        Take each file's gene identifiers from this var column instead of var names.
    translate : bool, default True
        Use the GENCODE table where a file holds the other identifier kind.

    Returns
    -------
    GeneMapping
        Per-file reports (``file``, ``file_genes``, ``mapped``, ``translated``, ``summed``,
        ``vocab_missing``, ``unmapped_examples``) and presence masks.

    Raises
    ------
    ValueError
        A file with no gene in the vocabulary, naming it, with example names from both
        sides.

    Examples
    --------
    >>> import cellfeed
    >>> col = cellfeed.open("data/pbmc68k/10x_pbmc68k_reduced.zarr.zip", layer="counts")
    >>> m = cellfeed.map_genes(col, "scfoundation")
    >>> m.reports[0]["file_genes"], m.reports[0]["mapped"], int(m.present(0).sum())
    (765, 691, 691)
    """
    v = _as_vocab(vocab)
    engine = collection._c if hasattr(collection, "_c") else collection
    table = list(_gencode()) if translate else []
    m = _cellfeed.map_genes(engine, list(v.genes), v.by, var_column or "", table)
    return GeneMapping(v, m)
