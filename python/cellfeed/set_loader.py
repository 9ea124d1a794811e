"""cellfeed.SetLoader: batches of cell sets with matched controls.

The plan of every batch (which sets, which cells, which controls) comes from the C++
SetEpochPlan, random access and keyed by (seed, epoch, group, set); this module reads a
batch's rows in one collection read, places them into [B, S, G] arrays and converts
types. Under a torch DataLoader, worker w of k yields batches w, w+k, ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._set_index import _Index
from .collection import Collection, open as open_collection
from .corpus import Corpus
from .perturb import SPLITS, Perturbation, save_vocabulary

try:  # torch is optional
    import torch
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover
    torch = None
    _Base = object

# Engines inherited through fork() hold threads that do not exist in the child.
_INHERITED: list[Any] = []


# -- batches ------------------------------------------------------------------------------------
@dataclass
class SetBatch:
    """One batch of cell sets: B sets of S perturbed cells and S matched control cells.

    Made by :class:`SetLoader`; the fields are:

    Parameters
    ----------
    pert_X, ctrl_X : array [B, S, G]
        Dense float32 features of the perturbed and control cells: expression (X or the
        layer opened), or the rows of ``obsm[key]`` with ``SetLoader(obsm=key)``.
    pert_ids : array [B, max_combo]
        Perturbation vocabulary ids of each set's condition (-1 pads combinations; an id
        equal to the vocabulary's length = unseen in training).
    doses : array [B, max_combo]
        Doses (1.0 where none is declared, 0 in padding).
    context : array [B]
        Context vocabulary ids.
    set_batch : array [B]
        Batch ids of the sets (group_by_batch), else -1.
    batch : array [B, S]
        Batch id of each perturbed cell (-1 without batch columns).
    pert_repeat, ctrl_repeat : array [B, S] bool
        True where the cell is a padding draw or already earlier in the set.
    pert_rows, ctrl_rows : array [B, S] int64
        Global rows (into the collection) of every cell.
    ctrl_level : array [B, S] int8
        The control matching level each control came from.
    pert_names, context_names, batch_names : list of str
        Names of each set's condition, context and batch (None without one).
    index : int
        Position of the batch in the rank's epoch.
    pert_counts, ctrl_counts : array [B, S, G] or None
        With ``SetLoader(obsm=key, counts=True)``: dense float32 expression (X or the layer
        opened) of the same perturbed and control cells, beside their obsm features.

    Examples
    --------
    B = 2 sets of S = 8 cells of 30 genes; cell-load's field names flatten the sets to
    B * S rows:

    >>> import tempfile, numpy as np, pandas as pd, anndata as ad, cellfeed
    >>> obs = pd.DataFrame({"line": np.repeat(["A", "B"], 40),
    ...                     "drug": np.tile(np.repeat(["DMSO", "drugA"], 20), 2)},
    ...                    index=[f"c{i}" for i in range(80)])
    >>> path = tempfile.mkdtemp() + "/screen.h5ad"
    >>> ad.AnnData(np.ones((80, 30), np.float32), obs=obs).write_h5ad(path)
    >>> p = cellfeed.Perturbation("drug", control=["DMSO"], context="line")
    >>> batch = next(iter(cellfeed.SetLoader(path, p, set_size=8, sets_per_batch=2,
    ...                                      output="numpy")))
    >>> batch.pert_X.shape, batch.as_cell_load()["pert_cell_emb"].shape
    ((2, 8, 30), (16, 30))
    """

    pert_X: Any
    ctrl_X: Any
    pert_ids: Any
    doses: Any
    context: Any
    set_batch: Any
    batch: Any
    pert_repeat: Any
    ctrl_repeat: Any
    pert_rows: np.ndarray
    ctrl_rows: np.ndarray
    ctrl_level: Any
    pert_names: list
    context_names: list
    batch_names: list
    index: int
    pert_counts: Any = None
    ctrl_counts: Any = None
    _sizes: tuple = field(default=(0, 0, 0), repr=False)  # vocabulary sizes (pert, ctx, batch)
    _cell_batch_names: list = field(default_factory=list, repr=False)  # per perturbed cell

    def __len__(self) -> int:
        return len(self.pert_names)

    def as_cell_load(self) -> dict:
        """The batch with cell-load's field names, flattened to [B*S, ...].

        Returns
        -------
        dict
            ``pert_cell_emb``, ``ctrl_cell_emb`` [B*S, G] (the features: X or an obsm
            entry); ``pert_cell_counts``, ``ctrl_cell_counts`` [B*S, genes] when the loader
            has ``counts=True``; ``pert_emb`` [B*S, P+1]
            (multi-hot over the perturbation vocabulary, last column = unseen);
            ``cell_type_onehot`` [B*S, C+1]; ``batch`` [B*S, K+1] one-hot; ``pert_name``,
            ``cell_type``, ``batch_name`` lists of B*S names.
        """
        B, S = self.pert_rows.shape
        n_pert, n_ctx, n_batch = self._sizes
        is_torch = torch is not None and isinstance(self.pert_X, torch.Tensor)
        ids = np.asarray(self.pert_ids.cpu() if is_torch else self.pert_ids)
        ctx = np.asarray(self.context.cpu() if is_torch else self.context)
        bat = np.asarray(self.batch.cpu() if is_torch else self.batch)
        pert_emb = np.zeros((B, n_pert + 1), np.float32)
        for b in range(B):
            for i in ids[b]:
                if i >= 0:
                    pert_emb[b, i] = 1.0
        ctx_oh = np.zeros((B, n_ctx + 1), np.float32)
        ctx_oh[np.arange(B), ctx] = 1.0
        batch_oh = np.zeros((B * S, n_batch + 1), np.float32)
        flat = bat.reshape(-1)
        ok = flat >= 0
        batch_oh[np.nonzero(ok)[0], flat[ok]] = 1.0
        out = {"pert_emb": np.repeat(pert_emb, S, axis=0), "cell_type_onehot": np.repeat(ctx_oh, S, axis=0),
               "batch": batch_oh}
        if is_torch:
            out = {k: torch.from_numpy(v) for k, v in out.items()}
        out["pert_cell_emb"] = self.pert_X.reshape(B * S, -1)
        out["ctrl_cell_emb"] = self.ctrl_X.reshape(B * S, -1)
        if self.pert_counts is not None:
            out["pert_cell_counts"] = self.pert_counts.reshape(B * S, -1)
            out["ctrl_cell_counts"] = self.ctrl_counts.reshape(B * S, -1)
        out["pert_name"] = [n for n in self.pert_names for _ in range(S)]
        out["cell_type"] = [n for n in self.context_names for _ in range(S)]
        out["batch_name"] = list(self._cell_batch_names)
        return out


def _placed(m, inverse: np.ndarray, n_pert: int, shape: tuple) -> tuple:
    """Rows read once per distinct cell (csr or dense) placed into [B, S, width] float32
    arrays of the perturbed cells and of their controls."""
    dense = m.toarray() if hasattr(m, "toarray") else np.asarray(m)
    X = dense.astype(np.float32, copy=False)[inverse]
    width = X.shape[1]
    return X[:n_pert].reshape(shape + (width,)), X[n_pert:].reshape(shape + (width,))


class SetLoader(_Base):
    """Batches of cell sets with matched controls, for perturbation-response models.

    Parameters
    ----------
    source : str, list of str, Collection or Corpus
        The files (paths or an opened :class:`cellfeed.Collection`), or a declared
        :class:`cellfeed.Corpus`: its filters, sources and splits decide which cells are
        eligible (quotas do not apply to sets and are refused).
    perturbation : Perturbation
        The declaration (columns, controls, matching, held-out splits).
    set_size : int
        Cells per set (S).
    sets_per_batch : int
        Sets per batch (B).
    split : {"train", "val", "test"}
        Which split's sets to deliver.
    seed : int
        Seed of every random choice (set cells, set order, padding, controls).
    genes : sequence of str, optional
        Deliver only these genes (of the collection's var_names), in this order (the
        expression: the features, or the counts with ``obsm=``).
    obsm : str, optional
        Features from ``obsm[obsm]`` (an embedding, PCA, a dense HVG matrix; dense or CSR,
        as every file stores it, see :attr:`Collection.obsm_keys`) instead of X: ``pert_X``
        and ``ctrl_X`` are its rows, as float32.
    counts : bool
        With ``obsm``: also deliver the expression (X, or the ``layer`` opened, e.g. raw
        counts) of the same perturbed and control cells as ``pert_counts`` / ``ctrl_counts``
        (cell-load's ``pert_cell_counts`` / ``ctrl_cell_counts``).
    drop_last : bool
        Drop each rank's last batch when it has fewer than sets_per_batch sets.
    rank, world_size : int, optional
        Distributed position (default: torch.distributed's, else 0 of 1).
    output : {"torch", "numpy"}
        Array type of the batches.
    vocab : dict or path, optional
        Vocabularies to use instead of building them from the training split.
    threads, layer, join : optional
        As :func:`cellfeed.open`, when the loader opens the files.
    prefetch : int
        Batches read ahead by a background thread while the caller works (0: read each
        batch when asked).

    Examples
    --------
    A small screen written by anndata: two cell lines, DMSO controls and two drugs on two
    plates; drugB is held out as test.

    >>> import tempfile, numpy as np, pandas as pd, anndata as ad, cellfeed
    >>> obs = pd.DataFrame({"cell_line": np.repeat(["A549", "MCF7"], 60),
    ...                     "drug": np.tile(np.repeat(["DMSO", "drugA", "drugB"], 20), 2),
    ...                     "plate": np.tile(np.repeat(["p1", "p2"], 10), 6)},
    ...                    index=[f"c{i}" for i in range(120)])
    >>> x = np.random.default_rng(0).poisson(1.0, (120, 30)).astype(np.float32)
    >>> path = tempfile.mkdtemp() + "/screen.h5ad"
    >>> ad.AnnData(x, obs=obs).write_h5ad(path)
    >>> p = cellfeed.Perturbation("drug", control=["DMSO"], context="cell_line",
    ...                           batch="plate", match=[["plate"], []],
    ...                           unseen={"test": ["drugB"]}, controls_from_lower_splits=True)
    >>> loader = cellfeed.SetLoader(path, p, set_size=8, sets_per_batch=2, seed=0,
    ...                             output="numpy")
    >>> batch = next(iter(loader))
    >>> batch.pert_X.shape, batch.ctrl_X.shape
    ((2, 8, 30), (2, 8, 30))
    >>> test = cellfeed.SetLoader(path, p, set_size=8, sets_per_batch=2, split="test",
    ...                           output="numpy")
    >>> sorted(set(next(iter(test)).pert_names))
    ['drugB']

    Features from an obsm entry, with the counts of the same cells beside them:

    >>> a = ad.read_h5ad(path)
    >>> a.obsm["X_pca"] = np.random.default_rng(1).standard_normal((120, 5))
    >>> path_pca = path.replace("screen", "screen_pca")
    >>> a.write_h5ad(path_pca)
    >>> pca = cellfeed.SetLoader(path_pca, p, set_size=8, sets_per_batch=2, obsm="X_pca",
    ...                          counts=True, output="numpy")
    >>> b = next(iter(pca))
    >>> b.pert_X.shape, b.pert_counts.shape
    ((2, 8, 5), (2, 8, 30))
    >>> bool((b.pert_X[0, 0] == a.obsm["X_pca"][b.pert_rows[0, 0]].astype(np.float32)).all())
    True
    """

    def __init__(self, source, perturbation: Perturbation, set_size: int = 64, sets_per_batch: int = 16,
                 split: str = "train", seed: int = 0, genes=None, drop_last: bool = False,
                 rank: int | None = None, world_size: int | None = None, output: str = "torch",
                 vocab=None, threads: int | None = None, layer: str | None = None, join="inner",
                 prefetch: int = 2, obsm: str | None = None, counts: bool = False):
        from .loader import _distributed_defaults, _EpochCell

        if not isinstance(perturbation, Perturbation):
            raise TypeError("perturbation must be a cellfeed.Perturbation")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if output not in ("torch", "numpy"):
            raise ValueError(f"output must be 'torch' or 'numpy', got {output!r}")
        if output == "torch" and torch is None:
            raise ValueError("output='torch' needs torch installed")
        if int(set_size) < 1 or int(sets_per_batch) < 1:
            raise ValueError(f"set_size and sets_per_batch must be >= 1, got {set_size}, {sets_per_batch}")
        if int(prefetch) < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.prefetch = int(prefetch)
        if obsm is not None and not isinstance(obsm, str):
            raise TypeError(f"obsm must be the name of an obsm entry (a str), got {obsm!r}")
        if counts and obsm is None:
            raise ValueError("SetLoader: counts=True delivers X (or the layer) beside obsm features; "
                             "without obsm= the features are that matrix already")
        if obsm is not None and genes is not None and not counts:
            raise ValueError("SetLoader: genes= selects columns of X (or the layer); with obsm= the "
                             "features are obsm's columns, so genes= needs counts=True")
        self.obsm, self.counts = obsm, bool(counts)
        self.perturbation = perturbation
        self.set_size, self.sets_per_batch = int(set_size), int(sets_per_batch)
        self.split, self.seed, self.drop_last, self.output = split, int(seed), bool(drop_last), output
        self.rank, self.world_size = _distributed_defaults(rank, world_size)
        self.corpus = None
        self._open_args = None
        if isinstance(source, Corpus):
            self.corpus = source
            for s in source.sources:
                if s.cells is not None or s.weight is not None or s.balance_by or s.weight_column:
                    raise ValueError(f"SetLoader: corpus source {s.name!r} declares a quota "
                                     "(cells/weight/balance_by/weight_column); quotas do not apply "
                                     "to cell sets (use Perturbation(sets_per_group=...) to balance)")
        elif isinstance(source, Collection):
            self._open_args = source._open_args
        else:
            self._open_args = (source, layer, threads, join)
        self._source = source if isinstance(source, Collection) else None
        self._vocab_arg = vocab
        self._genes_arg = None if genes is None else [str(g) for g in genes]
        self._epoch_cell = _EpochCell(0)
        self._yielded = 0
        self._pid = os.getpid()
        self._build()

    # -- building ----------------------------------------------------------------------------
    def _open(self) -> Collection:
        if self.corpus is not None:
            return self.corpus.build().collection
        if self._source is not None and os.getpid() == self._pid:
            return self._source
        src, layer, threads, join = self._open_args[:4]
        return open_collection(src, layer=layer, threads=threads, join=join)

    def _build(self) -> None:
        col = self._open()
        self._collection = col
        if self.corpus is not None:
            split_of = np.full(col.n_obs, -1, np.int8)  # O(n): no sort of 100M rows
            for i, s in enumerate(SPLITS):
                r = self.corpus.rows(s)
                if (split_of[r] >= 0).any():
                    raise ValueError("SetLoader: a cell is in two splits of the corpus")
                split_of[r] = i
            rows = np.flatnonzero(split_of >= 0).astype(np.int64)
            split_codes = split_of[rows]
        else:
            rows = np.arange(col.n_obs, dtype=np.int64)
            split_codes = None
        self._index = _Index(col, self.perturbation, np.ascontiguousarray(rows, np.int64),
                             None if split_codes is None else np.ascontiguousarray(split_codes),
                             self.set_size, self.sets_per_batch, self.seed, self.drop_last, self._vocab_arg)
        self._row_index = self._index.rows  # datasets= may leave rows out
        if self.obsm is not None:  # every file holds it with one width, before any batch
            col.read_obsm(self.obsm, np.empty(0, np.int64))
        if self._genes_arg is not None:
            var = {g: i for i, g in enumerate(col.var_names)}
            missing = [g for g in self._genes_arg if g not in var]
            if missing:
                raise ValueError(f"SetLoader: {len(missing)} genes are not in the files' var_names "
                                 f"(first: {missing[:5]})")
            self._gene_cols = np.array([var[g] for g in self._genes_arg], np.int64)
        else:
            self._gene_cols = None
        self._plans = {}
        plan = self._plan(0)
        if plan.num_sets == 0:
            raise ValueError(f"SetLoader: the {self.split} split has no sets (no group of at least "
                             f"min_cells={self.perturbation.min_cells} cells; held-out splits come from "
                             "zeroshot / fewshot / unseen or the corpus's split)")
        self._num_batches = plan.num_batches

    def _plan(self, epoch: int):
        key = (epoch, self.seed)
        if key not in self._plans:
            self._plans = {key: self._index.engine.plan(SPLITS.index(self.split), epoch, self.rank,
                                                        self.world_size)}
        return self._plans[key]

    # -- properties ---------------------------------------------------------------------------
    @property
    def collection(self) -> Collection:
        """The opened files.

        Returns
        -------
        Collection
        """
        self._ensure_open()
        return self._collection

    @property
    def vocab(self) -> dict:
        """Vocabularies in use: ``{"perturbation": [...], "context": [...], "batch": [...]}``.

        Returns
        -------
        dict
        """
        return self._index.vocab

    @property
    def groups(self) -> pd.DataFrame:
        """Every group: split, context, condition, control, batch, cells, sets per epoch.

        Returns
        -------
        pandas.DataFrame
        """
        return self._index.groups.copy()

    @property
    def epoch(self) -> int:
        """The current epoch (changed by :meth:`set_epoch`).

        Returns
        -------
        int
        """
        return self._epoch_cell.value

    def __len__(self) -> int:
        """Batches per epoch for this rank (the same on every rank)."""
        return self._num_batches

    def save_vocabulary(self, path) -> None:
        """Write the vocabularies in use to a JSON file (see :func:`save_vocabulary`).

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file.
        """
        save_vocabulary(self.vocab, path)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch; sets and controls are drawn anew for each epoch.

        Parameters
        ----------
        epoch : int
            The epoch number.
        """
        self._epoch_cell.value = int(epoch)
        self._epoch_cell.clear_resume()
        self._yielded = 0

    def _config(self) -> dict:
        p = self.perturbation
        return {"set_size": self.set_size, "sets_per_batch": self.sets_per_batch, "split": self.split,
                "drop_last": self.drop_last, "obsm": self.obsm, "counts": self.counts,
                "rank": self.rank, "world_size": self.world_size,
                "perturbation": repr(p), "n_obs": int(self.collection.n_obs),
                "corpus": None if self.corpus is None else self.corpus.fingerprint}

    def state_dict(self, after: SetBatch | None = None) -> dict:
        """Where this loader stands; a new SetLoader given it continues exactly.

        Parameters
        ----------
        after : SetBatch, optional
            The last batch the training loop consumed (needed under a DataLoader with
            workers, whose batches the loader in the training process does not see).

        Returns
        -------
        dict
        """
        yielded = self._yielded if after is None else int(after.index) + 1
        return {"epoch": self.epoch, "batches_yielded": yielded, "seed": self.seed, "config": self._config()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`.

        Parameters
        ----------
        state : dict
            As returned by :meth:`state_dict` with the same declaration and configuration.
        """
        if state["config"] != self._config():
            raise ValueError(f"state_dict was taken with another configuration: {state['config']} != "
                             f"{self._config()}")
        if int(state["seed"]) != self.seed:
            raise ValueError("state_dict was taken with another seed")
        self._epoch_cell.value = int(state["epoch"])
        self._yielded = int(state["batches_yielded"])
        self._epoch_cell.set_resume(self.seed, self._yielded, None)

    # -- reports -------------------------------------------------------------------------------
    def report(self) -> dict:
        """What the declaration holds and what this epoch's split delivers.

        Returns
        -------
        dict
            ``groups`` (a DataFrame: cells and sets per split, perturbed / control),
            ``control_levels`` (a DataFrame: per level, its columns, perturbed cells
            matched there per split, and this epoch's sets whose coarsest control came
            from it), ``skipped`` (groups below min_cells and cells without controls, per
            split), ``uncontrolled`` (a DataFrame: the perturbed cells left without controls
            at any level, per split and context; empty unless ``skip_uncontrolled``),
            ``held_out_controls`` (the rule, in words), ``vocab_sizes``.
        """
        ix = self._index
        g = ix.groups
        groups = g.groupby(["split", "control"]).agg(groups=("cells", "size"), cells=("cells", "sum"),
                                                     sets=("sets", "sum")).reset_index()
        counts = ix.engine.counts()
        per_set = self._plan(self.epoch).sets_per_level()
        levels = pd.DataFrame({
            "level": range(len(self.perturbation.match)),
            "columns": [", ".join(["context", *lv]) for lv in self.perturbation.match],
            **{f"{s}_cells": [c[i] for c in counts["cells_per_level"]] for i, s in enumerate(SPLITS)},
            f"{self.split}_sets_epoch_{self.epoch}": per_set})
        skipped = pd.DataFrame({"split": SPLITS, "small_groups": counts["small_groups"],
                                "small_group_cells": counts["small_group_cells"],
                                "uncontrolled_cells": counts["uncontrolled_cells"]})
        per_ctx = counts["uncontrolled_per_context"]
        uncontrolled = pd.DataFrame(
            [{"split": s, "context": ix.context_names[c], "cells": int(n[i])}
             for c, n in enumerate(per_ctx) for i, s in enumerate(SPLITS) if n[i] > 0],
            columns=["split", "context", "cells"])
        p = self.perturbation
        rule = ("controls of held-out contexts are held out with their context"
                if p.held_out_controls == "with_context" else
                "controls of held-out contexts stay in train (shared)")
        rule += ("; held-out sets draw controls of their context from their own split or a lower one "
                 "(val from train; test from val and train)" if p.controls_from_lower_splits else
                 "; every set draws controls of its context from its own split only")
        rule += "; training sets never draw held-out controls"
        return {"groups": groups, "control_levels": levels, "skipped": skipped,
                "uncontrolled": uncontrolled, "held_out_controls": rule,
                "vocab_sizes": {k: len(v) for k, v in self.vocab.items()}}

    # -- iteration -----------------------------------------------------------------------------
    def _ensure_open(self) -> None:
        if os.getpid() == self._pid and getattr(self, "_collection", None) is not None:
            return
        # A forked DataLoader worker: the parent's engines hold threads that are not here.
        _INHERITED.append(getattr(self, "_collection", None))
        if self.corpus is not None and self.corpus._built is not None:
            self.corpus._reopen_forked(None)
            self._collection = self.corpus.collection
        elif self.corpus is not None:
            self._collection = self.corpus.build().collection
        else:
            src, layer, threads, join = self._open_args[:4]
            self._collection = open_collection(src, layer=layer, threads=threads, join=join)
        self._pid = os.getpid()

    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("_collection", "_index", "_plans", "_source"):
            state[k] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.corpus is not None:
            self.corpus._built = None
        self._pid = os.getpid()
        self._build()

    def batch(self, index: int, epoch: int | None = None) -> SetBatch:
        """Batch `index` of this rank's epoch (random access; iteration uses it too).

        Parameters
        ----------
        index : int
            0 <= index < len(self).
        epoch : int, optional
            Default: the current epoch.

        Returns
        -------
        SetBatch
        """
        self._ensure_open()
        ix = self._index
        plan = self._plan(self.epoch if epoch is None else int(epoch))
        n_sets, groups, _sets, pr, prep, cr, crep, clev = plan.get_batch(int(index))
        S = self.set_size
        shape = (int(n_sets), S)
        both = np.concatenate([pr, cr])
        uniq, inverse = np.unique(both, return_inverse=True)
        inverse = inverse.reshape(-1)
        expr = None
        if self.obsm is None or self.counts:
            m = self._collection.read(uniq)
            if self._gene_cols is not None:
                m = m[:, self._gene_cols]
            expr = _placed(m, inverse, len(pr), shape)
        if self.obsm is None:
            (pert_X, ctrl_X), counts = expr, (None, None)
        else:
            pert_X, ctrl_X = _placed(self._collection.read_obsm(self.obsm, uniq), inverse, len(pr), shape)
            counts = expr if self.counts else (None, None)
        cond = ix._group_condition[groups]
        ctx = ix._group_context[groups]
        gb = ix._group_batch[groups]
        pert_ids = ix.cond_ids[cond]
        doses = ix.cond_doses[cond]
        context = ix.ctx_ids[ctx]
        set_batch = np.where(gb >= 0, ix.batch_ids[np.maximum(gb, 0)] if len(ix.batch_ids) else -1, -1)
        if ix._batch is not None:
            pos = np.searchsorted(self._row_index, pr)
            cell_b = ix._batch[pos]
            batch = ix.batch_ids[cell_b].reshape(shape)
            cell_batch_names = [ix.batch_names[b] for b in cell_b]
        else:
            batch = np.full(shape, -1, np.int64)
            cell_batch_names = [None] * len(pr)
        out = SetBatch(
            pert_X=pert_X, ctrl_X=ctrl_X, pert_ids=pert_ids, doses=doses, context=context,
            set_batch=set_batch.astype(np.int64), batch=batch, pert_repeat=prep.astype(bool).reshape(shape),
            ctrl_repeat=crep.astype(bool).reshape(shape), pert_rows=pr.reshape(shape),
            ctrl_rows=cr.reshape(shape), ctrl_level=clev.reshape(shape),
            pert_names=[ix.condition_names[c] for c in cond],
            context_names=[ix.context_names[c] for c in ctx],
            batch_names=[ix.batch_names[b] if b >= 0 else None for b in gb],
            index=int(index), pert_counts=counts[0], ctrl_counts=counts[1],
            _sizes=(len(ix.vocab["perturbation"]), len(ix.vocab["context"]), len(ix.vocab["batch"])),
            _cell_batch_names=cell_batch_names)
        if self.output == "torch":
            for name in ("pert_X", "ctrl_X", "pert_ids", "doses", "context", "set_batch", "batch",
                         "pert_repeat", "ctrl_repeat", "ctrl_level", "pert_counts", "ctrl_counts"):
                if getattr(out, name) is None:
                    continue
                setattr(out, name, torch.from_numpy(np.ascontiguousarray(getattr(out, name))))
        return out

    def __iter__(self):
        self._ensure_open()
        info = torch.utils.data.get_worker_info() if torch is not None else None
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # Worker w of k takes batches start + w, start + w + k, ...: a DataLoader's in-order
        # round robin over its workers then yields them in index order.
        taken = self._epoch_cell.take_resume(worker)
        start = 0 if taken is None else int(taken[0])
        epoch = self.epoch
        order = iter(range(start + worker, self._num_batches, workers))
        if self.prefetch == 0:
            for b in order:
                out = self.batch(b, epoch)
                self._yielded = b + 1
                yield out
            return
        # One reader thread keeps `prefetch` batches in flight (the engine reads with the
        # GIL released, so reading overlaps the training step); batches stay in order.
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="cellfeed-sets") as pool:
            ahead: deque = deque()
            for b in order:
                ahead.append((b, pool.submit(self.batch, b, epoch)))
                if len(ahead) > self.prefetch:
                    b0, fut = ahead.popleft()
                    out = fut.result()
                    self._yielded = b0 + 1
                    yield out
            while ahead:
                b0, fut = ahead.popleft()
                out = fut.result()
                self._yielded = b0 + 1
                yield out
