"""Model-ready inputs: transforms that run in C++ on the loader's threads.

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
    """Binomial thinning: x -> Binomial(x, p), p = fraction, or min(1, target_total / total)
    when target_total is given. Needs integer counts."""
    fraction: float = 1.0
    target_total: float = 0.0

    def _dict(self):
        return {"kind": "thin", "fraction": float(self.fraction),
                "target_total": float(self.target_total or 0.0)}


@dataclass(frozen=True)
class RdaDownsample:
    """Read-depth-aware downsampling: u ~ Bernoulli(probability); if u, b ~ Beta(a, b)
    and x -> Binomial(x, b); the raw cell becomes the "target". Needs integer counts."""
    probability: float = 0.5
    beta_a: int = 2
    beta_b: int = 2

    def _dict(self):
        return {"kind": "rda", "probability": float(self.probability),
                "beta_a": int(self.beta_a), "beta_b": int(self.beta_b)}


@dataclass(frozen=True)
class NormalizeTotal:
    """x * target / sum(x) (float64 sum over the cell's vocabulary genes; empty cell -> 0)."""
    target: float = 1e4

    def _dict(self):
        return {"kind": "normalize_total", "target": float(self.target)}


@dataclass(frozen=True)
class Log1p:
    def _dict(self):
        return {"kind": "log1p"}


@dataclass(frozen=True)
class Clip:
    min: float = -math.inf
    max: float = math.inf

    def _dict(self):
        return {"kind": "clip", "min": float(self.min), "max": float(self.max)}


# -- outputs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Dense:
    """The dense panel: values [B, V(+2)], attention_mask, optional mask/target.
    depth_tokens: "none", "scfoundation" (S = log10(total); T by t_mode) or "aido"
    (T = max(log10(raw total), 5), S = max(log10(total), 5), clamped at 20).
    t_mode: "constant" (T = t_value), "raw_total" (log10 raw total), "s_plus" (S + t_value)."""
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
    """Geneformer rank-value tokens (ids = vocabulary positions). version 1: 2,048 tokens;
    2: <cls> + 4,094 + <eos>. n_counts: "all" genes of the row or "mapped" genes only."""
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
    """scGPT: per-cell quantile bins (1..n_bins-1, zeros 0) of the cell's genes, <cls>
    first, at most max_length tokens (sampled or truncated), padded, masked values.
    cls_id / pad_id default to vocab_size / vocab_size + 1."""
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
    """vocab + steps + output; pass it as cellfeed.Loader(..., inputs=pipeline)."""

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
        return map_genes(collection, self.vocab, self.var_column, self.translate)

    def build(self, collection):
        """The engine pipeline for `collection` (cached per collection and process)."""
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
        """The inputs of the given rows of `collection`, without a Loader (numpy)."""
        rows = np.ascontiguousarray(np.asarray(rows, dtype=np.int64))
        X = collection.read(rows)
        p = self.build(collection)
        return p.run(X.data.astype(np.float32, copy=False), X.indices.astype(np.int32, copy=False),
                     X.indptr.astype(np.int64), collection.n_vars, rows, int(seed), int(epoch))

    def convert(self, arrays: dict) -> dict:
        """The engine's arrays of one batch as torch tensors (numpy without torch)."""
        return convert_arrays(arrays, *self.convert_spec())

    def convert_spec(self) -> tuple:
        """What convert() needs, small enough to travel with every batch of a worker."""
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
    """AIDO.Cell read-depth-aware pretraining: RDA downsampling, normalize to 1e4, log1p,
    clamp at 20, the 19,264 panel + (T, S) tokens (AIDO variant), value masking."""
    return Pipeline("scfoundation",
                    (RdaDownsample(probability), NormalizeTotal(1e4), Log1p(), Clip(max=20.0)),
                    Dense("aido", dtype=dtype, mask=True, mask_nonzero=mask_nonzero,
                          mask_zero=mask_zero, mask_value=mask_value),
                    var_column=var_column, name="aido_cell_rda")


def scfoundation_rda(mask_nonzero: float = 0.30, mask_zero: float = 0.03,
                     mask_value: float = 102.0, probability: float = 0.5, dtype: str = "float32",
                     var_column=None) -> Pipeline:
    """scFoundation RDA pretraining: RDA downsampling, normalize to 1e4, log1p, the panel
    + T = log10(raw total), S = log10(downsampled total), value masking (mask value 102,
    as scFoundation's literal mask id)."""
    return Pipeline("scfoundation", (RdaDownsample(probability), NormalizeTotal(1e4), Log1p()),
                    Dense("scfoundation", t_mode="raw_total", dtype=dtype, mask=True,
                          mask_nonzero=mask_nonzero, mask_zero=mask_zero, mask_value=mask_value),
                    var_column=var_column, name="scfoundation_rda")


def geneformer_mlm(version: int = 2, n_counts: str = "all", mlm_probability: float = 0.15,
                   pad: str = "fixed", var_column=None) -> Pipeline:
    """Geneformer masked-token pretraining (V1: 2,048 tokens; V2: <cls> ... <eos>, 4,096)."""
    return Pipeline("geneformer", (), RankTokens(version, n_counts=n_counts,
                                                 mlm_probability=mlm_probability, pad=pad),
                    var_column=var_column, name=f"geneformer_v{version}_mlm")


def scgpt_masked_value(genes="scfoundation", max_length: int = 1200, mask_ratio: float = 0.4,
                       n_bins: int = 51, pad: str = "fixed", var_column=None) -> Pipeline:
    """scGPT masked-value pretraining: normalize to 1e4, log1p, 51 bins, <cls>, sampled to
    max_length, padded (pad value -2), masked (mask value -1). Gene ids are positions in
    `genes` (pass scGPT's vocab.json genes in id order to match a checkpoint)."""
    return Pipeline(genes, (NormalizeTotal(1e4), Log1p()),
                    ValueBins(n_bins, max_length, mask_ratio=mask_ratio, pad=pad),
                    var_column=var_column, name="scgpt_masked_value")


__all__ = ["Thin", "RdaDownsample", "NormalizeTotal", "Log1p", "Clip", "Dense", "RankTokens",
           "ValueBins", "Pipeline", "aido_cell_rda", "scfoundation_rda", "geneformer_mlm",
           "scgpt_masked_value", "Vocabulary", "map_genes"]
