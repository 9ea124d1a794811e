"""Model-ready inputs: transforms that run in C++ on the loader's threads::

    loader = cellfeed.Loader(paths, layer="counts", join="outer",
                             inputs=cellfeed.inputs.aido_cell_rda())
    for batch in loader:
        batch.inputs["values"], batch.inputs["target"], batch.inputs["mask"], ...

A Pipeline is a vocabulary (the gene space the model reads), a list of steps (Thin,
RdaDownsample, NormalizeTotal, Log1p, Clip) applied in order to each cell, and one output
(Dense, RankTokens, ValueBins). The presets build the exact inputs of AIDO.Cell /
scFoundation RDA pretraining, Geneformer V1/V2 masked-token pretraining and scGPT
masked-value pretraining; docs/MODEL_INPUTS.md lists every tensor (name, dtype, shape)
and the definition of every step. Random draws are keyed by (seed, epoch, cell,
purpose): a cell's inputs are the same whatever the threads, workers or resume point.

Tensors are zero-copy views of the engine's buffers (torch tensors when torch is
installed, else numpy arrays); they stay valid as long as they are referenced.

Examples
--------
>>> import cellfeed
>>> col = cellfeed.open("data/pbmc68k/10x_pbmc68k_reduced.zarr.zip", layer="counts")
>>> out = cellfeed.inputs.aido_cell_rda().run(col, [0, 1])    # two cells, no Loader
>>> {name: (a.shape, str(a.dtype)) for name, a in out.items()}   # doctest: +NORMALIZE_WHITESPACE
{'values': ((2, 19266), 'float32'), 'attention_mask': ((2, 19266), 'bool'),
 'mask': ((2, 19266), 'bool'), 'target': ((2, 19264), 'float32'), 'downsampled': ((2,), 'bool')}
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, asdict

import numpy as np

from . import _cellfeed
from .vocab import Vocabulary, _as_vocab, map_genes

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


# -- steps -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Thin:
    """Binomial thinning: x -> Binomial(x, p). Needs integer counts.

    Parameters
    ----------
    fraction : float, default 1.0
        p, when ``target_total`` is not given.
    target_total : float, default 0.0
        When positive, p = min(1, target_total / total) per cell.
    """
    fraction: float = 1.0
    target_total: float = 0.0

    def _dict(self):
        return {"kind": "thin", "fraction": float(self.fraction),
                "target_total": float(self.target_total or 0.0)}


@dataclass(frozen=True)
class RdaDownsample:
    """Read-depth-aware downsampling (RDA), as AIDO.Cell and scFoundation pretrain.

    u ~ Bernoulli(probability); if u, b ~ Beta(beta_a, beta_b) and x -> Binomial(x, b); the
    raw cell becomes the ``target`` output. Needs integer counts; at most one per pipeline.

    Parameters
    ----------
    probability : float, default 0.5
        Share of cells downsampled.
    beta_a, beta_b : int, default 2
        The Beta distribution of the kept fraction.
    """
    probability: float = 0.5
    beta_a: int = 2
    beta_b: int = 2

    def _dict(self):
        return {"kind": "rda", "probability": float(self.probability),
                "beta_a": int(self.beta_a), "beta_b": int(self.beta_b)}


@dataclass(frozen=True)
class NormalizeTotal:
    """x * target / sum(x), the sum in float64 over the cell's vocabulary genes.

    An empty cell stays all zero.

    Parameters
    ----------
    target : float, default 1e4
        The total each cell is scaled to.
    """
    target: float = 1e4

    def _dict(self):
        return {"kind": "normalize_total", "target": float(self.target)}


@dataclass(frozen=True)
class Log1p:
    """log(1 + x)."""

    def _dict(self):
        return {"kind": "log1p"}


@dataclass(frozen=True)
class Clip:
    """Clamp values to ``[min, max]``.

    Parameters
    ----------
    min : float, default -inf
        Lower bound.
    max : float, default inf
        Upper bound.
    """

    min: float = -math.inf
    max: float = math.inf

    def _dict(self):
        return {"kind": "clip", "min": float(self.min), "max": float(self.max)}


# -- outputs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Dense:
    """The dense vocabulary panel: ``values`` [n, V (+2 depth tokens)] and ``attention_mask``.

    With ``mask=True`` also ``mask`` (the loss positions); after RDA also ``target`` (the
    raw cell through the same steps) and ``downsampled``.

    Parameters
    ----------
    depth_tokens : {"none", "scfoundation", "aido"}, default "none"
        Tokens (T, S) appended after the panel: ``"scfoundation"``: S = log10(total),
        T by ``t_mode``; ``"aido"``: T = max(log10(raw total), 5),
        S = max(log10(total), 5), both clamped at 20.
    t_mode : {"constant", "raw_total", "s_plus"}, default "constant"
        T of the scFoundation tokens: ``t_value``, log10 of the raw total, or S + ``t_value``.
    t_value : float, default 4.0
        See ``t_mode``.
    dtype : {"float32", "bfloat16"}, default "float32"
        dtype of ``values``.
    mask : bool, default False
        Mask values (``mask`` output; masked values become ``mask_value``).
    mask_nonzero : float, default 0.30
        Probability that a nonzero position is masked.
    mask_zero : float, default 0.03
        Probability that a zero position of a gene the file has is masked.
    mask_value : float, default -1.0
        The value of masked positions.
    """
    depth_tokens: str = "none"
    t_mode: str = "constant"
    t_value: float = 4.0
    dtype: str = "float32"
    mask: bool = False
    mask_nonzero: float = 0.30
    mask_zero: float = 0.03
    mask_value: float = -1.0

    def _dict(self, vocab):
        d = asdict(self)
        d["kind"] = "dense"
        return d


@dataclass(frozen=True)
class RankTokens:
    """Geneformer rank-value tokens (ids = vocabulary positions): ``input_ids``,
    ``attention_mask``, ``length`` and, with MLM, ``labels``.

    Needs a vocabulary with gene medians (:meth:`cellfeed.vocab.Vocabulary.geneformer`).

    Parameters
    ----------
    version : {1, 2}, default 2
        1: 2,048 tokens; 2: <cls> + 4,094 + <eos>.
    max_tokens : int, default 0
        Row length; 0 for the version's.
    n_counts : {"all", "mapped"}, default "all"
        The total that normalizes a cell: all genes of the row (as Geneformer's
        tokenizer) or the mapped genes only.
    mlm : bool, default True
        Select tokens for masked-language-model training (``labels``: -100 elsewhere).
    mlm_probability : float, default 0.15
        Share of gene tokens selected.
    mask_fraction : float, default 0.8
        Share of the selected tokens that become <mask>.
    random_fraction : float, default 0.1
        Share of the selected tokens that become a random gene token (the rest stay).
    pad : {"fixed", "batch"}, default "fixed"
        Pad rows to the fixed length, or to the batch's longest row.
    """
    version: int = 2
    max_tokens: int = 0
    n_counts: str = "all"
    mlm: bool = True
    mlm_probability: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1
    pad: str = "fixed"  # or "batch": rows as long as the batch's longest (sized by the engine)

    def _dict(self, vocab):
        if self.pad not in ("fixed", "batch"):
            raise ValueError(f"pad must be 'fixed' or 'batch', got {self.pad!r}")
        if vocab.medians is None:
            raise ValueError("RankTokens needs a vocabulary with gene medians (Vocabulary.geneformer())")
        if self.n_counts not in ("all", "mapped"):
            raise ValueError(f"n_counts must be 'all' or 'mapped', got {self.n_counts!r}")
        med = [0.0 if (m is None or not np.isfinite(m)) else float(m) for m in vocab.medians]
        d = {k: v for k, v in asdict(self).items() if k != "pad"}
        d.update(kind="rank", medians=med, pad_id=0, mask_id=1, cls_id=2, eos_id=3, first_gene_id=4,
                 pad_to_batch=self.pad == "batch")
        return d


@dataclass(frozen=True)
class ValueBins:
    """scGPT's value bins: ``gene_ids``, ``values`` (bins), ``masked_values``,
    ``attention_mask`` and ``length``.

    Per-cell quantile bins (1..n_bins-1, zeros 0) of the cell's genes, <cls> first, at most
    ``max_length`` tokens, padded, values masked (docs/MODEL_INPUTS.md).

    Parameters
    ----------
    n_bins : int, default 51
        Bins, 0 included.
    max_length : int, default 1200
        Tokens per row, <cls> included.
    sample : bool, default True
        Longer cells keep ``max_length - 1`` genes sampled without replacement; False
        keeps the first ones.
    include_zeros : bool, default False
        Also tokenize the zero genes the cell's file has.
    cls_id, pad_id : int, default -1
        Token ids of <cls> and <pad>; -1 for vocab_size and vocab_size + 1.
    pad_value : float, default -2.0
        Value of padding positions.
    mask_value : float, default -1.0
        Value of masked positions in ``masked_values``.
    cls_value : float, default 0.0
        Value of <cls>.
    mask_ratio : float, default 0.4
        Share of gene positions masked.
    pad : {"fixed", "batch"}, default "fixed"
        Pad rows to ``max_length``, or to the batch's longest row.
    """
    n_bins: int = 51
    max_length: int = 1200
    sample: bool = True
    include_zeros: bool = False
    cls_id: int = -1
    pad_id: int = -1
    pad_value: float = -2.0
    mask_value: float = -1.0
    cls_value: float = 0.0
    mask_ratio: float = 0.4
    pad: str = "fixed"  # or "batch"

    def _dict(self, vocab):
        if self.pad not in ("fixed", "batch"):
            raise ValueError(f"pad must be 'fixed' or 'batch', got {self.pad!r}")
        d = {k: v for k, v in asdict(self).items() if k != "pad"}
        d.update(kind="binned", pad_to_batch=self.pad == "batch")
        return d


# -- pipelines ---------------------------------------------------------------------------
@dataclass
class Pipeline:
    """A vocabulary, steps applied in order to each cell, and one output.

    Pass it as ``cellfeed.Loader(..., inputs=pipeline)``; each batch then carries the
    output's tensors in ``batch.inputs``. The presets (:func:`aido_cell_rda`, ...) build
    the pipelines of known models.

    Parameters
    ----------
    vocab : str, Vocabulary, sequence of str or path, default "scfoundation"
        The gene space the model reads (as :func:`cellfeed.map_genes` takes it).
    steps : sequence, default ()
        :class:`Thin`, :class:`RdaDownsample`, :class:`NormalizeTotal`, :class:`Log1p`,
        :class:`Clip`, in order.
    output : Dense, RankTokens or ValueBins, default Dense()
        The tensors made.
    var_column : str, optional
        Take each file's gene identifiers from this var column.
    translate : bool, default True
        Translate between symbols and Ensembl IDs through GENCODE where needed.
    name : str, default "custom"
        What reports call it.

    Examples
    --------
    >>> import cellfeed
    >>> from cellfeed.inputs import Pipeline, NormalizeTotal, Log1p, Dense
    >>> p = Pipeline("scfoundation", (NormalizeTotal(1e4), Log1p()), Dense())
    >>> col = cellfeed.open("data/pbmc68k/10x_pbmc68k_reduced.zarr.zip", layer="counts")
    >>> out = p.run(col, [0, 1])
    >>> out["values"].shape, int(out["attention_mask"][0].sum())   # genes the file has
    ((2, 19264), 691)
    """

    vocab: object = "scfoundation"
    steps: tuple = ()
    output: object = field(default_factory=Dense)
    var_column: str | None = None
    translate: bool = True
    name: str = "custom"

    def __post_init__(self):
        self.vocab = _as_vocab(self.vocab)
        self.steps = tuple(self.steps)
        self._built: dict = {}

    def __getstate__(self):  # the C++ objects are rebuilt in each process
        state = self.__dict__.copy()
        state["_built"] = {}
        return state

    def mapping(self, collection):
        """The collection mapped onto this pipeline's vocabulary.

        Parameters
        ----------
        collection : Collection
            The files.

        Returns
        -------
        cellfeed.vocab.GeneMapping
        """
        return map_genes(collection, self.vocab, self.var_column, self.translate)

    def build(self, collection):
        """The engine pipeline for a collection (cached per collection and process).

        Parameters
        ----------
        collection : Collection
            The files it will read.

        Returns
        -------
        object
            The engine's pipeline (used by :class:`cellfeed.Loader`).
        """
        engine = collection._c if hasattr(collection, "_c") else collection
        key = (os.getpid(), id(engine))
        hit = self._built.get(key)
        if hit is None or hit[0] is not engine:
            m = self.mapping(collection)
            p = _cellfeed.Pipeline.make(m._map, [s._dict() for s in self.steps],
                                        self.output._dict(self.vocab))
            hit = (engine, p, m)
            self._built[key] = hit
        return hit[1]

    def run(self, collection, rows, seed: int = 0, epoch: int = 0) -> dict:
        """The inputs of some cells, without a Loader.

        Parameters
        ----------
        collection : Collection
            The files.
        rows : sequence of int
            Global row ids.
        seed : int, default 0
            Seed of the random draws (as ``Loader(seed=)``).
        epoch : int, default 0
            Epoch of the random draws.

        Returns
        -------
        dict
            The output's arrays by name (numpy), one row per cell.
        """
        rows = np.ascontiguousarray(np.asarray(rows, dtype=np.int64))
        X = collection.read(rows)
        p = self.build(collection)
        return p.run(X.data.astype(np.float32, copy=False), X.indices.astype(np.int32, copy=False),
                     X.indptr.astype(np.int64), collection.n_vars, rows, int(seed), int(epoch))

    def convert(self, arrays: dict) -> dict:
        """The engine's arrays of one batch as torch tensors (numpy without torch).

        Parameters
        ----------
        arrays : dict
            Arrays by name, as :meth:`run` returns them.

        Returns
        -------
        dict
            The same names, zero-copy tensors.
        """
        return convert_arrays(arrays, *self.convert_spec())

    def convert_spec(self) -> tuple:
        """What :meth:`convert` needs, small enough to travel with every batch of a worker.

        Returns
        -------
        tuple
            The dtype of ``values``.
        """
        return (getattr(self.output, "dtype", "float32"),)


def convert_arrays(arrays: dict, dtype: str) -> dict:
    # pad="batch" rows are already sized by the engine to the batch's longest row.
    out = {}
    for k, a in arrays.items():
        if torch is not None:
            if k == "values" and dtype == "bfloat16":
                t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
            else:
                t = torch.from_numpy(a)
            out[k] = t
        else:
            out[k] = a
    return out


def aido_cell_rda(mask_nonzero: float = 0.30, mask_zero: float = 0.03, mask_value: float = -1.0,
                  probability: float = 0.5, dtype: str = "float32", var_column=None) -> Pipeline:
    """AIDO.Cell read-depth-aware pretraining inputs.

    RDA downsampling, normalize to 1e4, log1p, clamp at 20, the 19,264-gene panel + (T, S)
    depth tokens (AIDO variant), value masking. Needs counts.

    Parameters
    ----------
    mask_nonzero : float, default 0.30
        Probability that a nonzero position is masked.
    mask_zero : float, default 0.03
        Probability that a zero position of a gene the file has is masked.
    mask_value : float, default -1.0
        The value of masked positions.
    probability : float, default 0.5
        Share of cells downsampled.
    dtype : {"float32", "bfloat16"}, default "float32"
        dtype of ``values``.
    var_column : str, optional
        Take each file's gene identifiers from this var column.

    Returns
    -------
    Pipeline

    Examples
    --------
    >>> import cellfeed
    >>> loader = cellfeed.Loader("data/pbmc68k/10x_pbmc68k_reduced.zarr.zip", layer="counts",
    ...                          batch_size=32, inputs=cellfeed.inputs.aido_cell_rda())
    >>> batch = next(iter(loader))
    >>> tuple(batch.inputs["values"].shape), tuple(batch.inputs["target"].shape)
    ((32, 19266), (32, 19264))
    """
    return Pipeline("scfoundation",
                    (RdaDownsample(probability), NormalizeTotal(1e4), Log1p(), Clip(max=20.0)),
                    Dense("aido", dtype=dtype, mask=True, mask_nonzero=mask_nonzero,
                          mask_zero=mask_zero, mask_value=mask_value),
                    var_column=var_column, name="aido_cell_rda")


def scfoundation_rda(mask_nonzero: float = 0.30, mask_zero: float = 0.03,
                     mask_value: float = 102.0, probability: float = 0.5, dtype: str = "float32",
                     var_column=None) -> Pipeline:
    """scFoundation RDA pretraining inputs.

    RDA downsampling, normalize to 1e4, log1p, the 19,264-gene panel + T = log10(raw
    total), S = log10(downsampled total), value masking (mask value 102, as scFoundation's
    literal mask id). Needs counts.

    Parameters
    ----------
    mask_nonzero : float, default 0.30
        Probability that a nonzero position is masked.
    mask_zero : float, default 0.03
        Probability that a zero position of a gene the file has is masked.
    mask_value : float, default 102.0
        The value of masked positions.
    probability : float, default 0.5
        Share of cells downsampled.
    dtype : {"float32", "bfloat16"}, default "float32"
        dtype of ``values``.
    var_column : str, optional
        Take each file's gene identifiers from this var column.

    Returns
    -------
    Pipeline
    """
    return Pipeline("scfoundation", (RdaDownsample(probability), NormalizeTotal(1e4), Log1p()),
                    Dense("scfoundation", t_mode="raw_total", dtype=dtype, mask=True,
                          mask_nonzero=mask_nonzero, mask_zero=mask_zero, mask_value=mask_value),
                    var_column=var_column, name="scfoundation_rda")


def geneformer_mlm(version: int = 2, n_counts: str = "all", mlm_probability: float = 0.15,
                   pad: str = "fixed", var_column=None) -> Pipeline:
    """Geneformer masked-token pretraining inputs (rank-value tokens, MLM labels).

    Parameters
    ----------
    version : {1, 2}, default 2
        1: 2,048 tokens; 2: <cls> + 4,094 + <eos> (4,096).
    n_counts : {"all", "mapped"}, default "all"
        The total that normalizes a cell: all genes of the row, or the mapped ones.
    mlm_probability : float, default 0.15
        Share of gene tokens selected for the MLM loss.
    pad : {"fixed", "batch"}, default "fixed"
        Pad rows to the fixed length, or to the batch's longest row.
    var_column : str, optional
        Take each file's gene identifiers from this var column.

    Returns
    -------
    Pipeline

    Examples
    --------
    >>> import cellfeed
    >>> col = cellfeed.open("data/pbmc68k/10x_pbmc68k_reduced.zarr.zip", layer="counts")
    >>> out = cellfeed.inputs.geneformer_mlm().run(col, [0, 1])
    >>> out["input_ids"].shape, out["input_ids"][:, 0].tolist()    # <cls> = 2 first
    ((2, 4096), [2, 2])
    """
    return Pipeline("geneformer", (), RankTokens(version, n_counts=n_counts,
                                                 mlm_probability=mlm_probability, pad=pad),
                    var_column=var_column, name=f"geneformer_v{version}_mlm")


def scgpt_masked_value(genes="scfoundation", max_length: int = 1200, mask_ratio: float = 0.4,
                       n_bins: int = 51, pad: str = "fixed", var_column=None) -> Pipeline:
    """scGPT masked-value pretraining inputs.

    Normalize to 1e4, log1p, 51 bins, <cls>, sampled to ``max_length``, padded (pad value
    -2), masked (mask value -1).

    Parameters
    ----------
    genes : str, Vocabulary, sequence of str or path, default "scfoundation"
        The vocabulary; gene ids are positions in it (pass scGPT's vocab.json genes in id
        order to match a checkpoint).
    max_length : int, default 1200
        Tokens per row, <cls> included.
    mask_ratio : float, default 0.4
        Share of gene positions masked.
    n_bins : int, default 51
        Value bins, 0 included.
    pad : {"fixed", "batch"}, default "fixed"
        Pad rows to ``max_length``, or to the batch's longest row.
    var_column : str, optional
        Take each file's gene identifiers from this var column.

    Returns
    -------
    Pipeline
    """
    return Pipeline(genes, (NormalizeTotal(1e4), Log1p()),
                    ValueBins(n_bins, max_length, mask_ratio=mask_ratio, pad=pad),
                    var_column=var_column, name="scgpt_masked_value")


__all__ = ["Thin", "RdaDownsample", "NormalizeTotal", "Log1p", "Clip", "Dense", "RankTokens",
           "ValueBins", "Pipeline", "aido_cell_rda", "scfoundation_rda", "geneformer_mlm",
           "scgpt_masked_value", "Vocabulary", "map_genes"]
