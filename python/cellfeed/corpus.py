"""cellfeed.Corpus: a training corpus declared over existing files.

A corpus is a list of named sources. Each source is some files (paths or globs), an
optional filter over obs columns (`where=`), and a quota: an exact number of cells
(`cells=`), a weight (a share of `epoch_cells`), or every cell. Sources may be held out
whole (`split="test"`), or cells are split into train/val/test by a group column
(`Split`). The declaration is evaluated once, in C++ (filters, splits, targets), and every
declaration that cannot be met is an error before any batch is read. `Loader(corpus,
split="train")` then streams exactly the declared cells, interleaving the sources in
proportion over the whole epoch. docs/CORPUS.md has the rules and the TOML format.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import _cellfeed
from ._toml import read_toml
from .collection import Collection, open as open_collection
from .qc import QC_COLUMNS, qc_columns_for

# Evaluated corpora a fork inherited from its parent (see Corpus._reopen_forked).
_FORKED_AWAY: list[Any] = []

SPLITS = ("train", "val", "test")


@dataclass
class Source:
    """One source of a :class:`Corpus`: some files, a filter and a quota.

    Parameters
    ----------
    name : str
        The source's name (in reports, ``batch.source`` and ``Loader.source_names``).
    files : str, os.PathLike or list of them
        A path, a glob, or a list of them (globs sorted; paths relative to the TOML file
        when declared there).
    where : str, optional
        A filter over obs columns (docs/CORPUS.md), e.g.
        ``"tissue == 'blood' and pct_counts_mt < 10"``. The QC columns ``total_counts``,
        ``n_genes_by_counts`` and ``pct_counts_mt`` are computed where obs lacks them.
    cells : int, optional
        An exact number of train cells per epoch.
    weight : float, optional
        A share of the corpus's ``epoch_cells`` (not with ``cells``; with neither, every
        cell that passes the filter).
    upsample : bool, default False
        Allow a quota above the cells available (every cell then comes k or k+1 times).
    split : {"val", "test"}, optional
        Hold the whole source out.
    balance_by : str, optional
        An obs column whose classes share the quota, as ``balance`` says.
    balance : {"equal", "scaled"}, optional
        ``"equal"``: equal shares per class; ``"scaled"``: shares proportional to
        ``n * s / (n + s)`` with ``s = balance_scale``.
    balance_scale : float, optional
        The ``s`` of ``balance="scaled"``.
    weight_column : str, optional
        A numeric obs column of per-cell sampling weights (a weighted draw without
        replacement of the quota).
    layer : str, optional
        Where this source's files keep the matrix to read (``"counts"`` for
        layers/counts, ``"raw"`` for raw/X); default: the corpus's layer (X when none).

    Examples
    --------
    >>> import cellfeed
    >>> cellfeed.Source("g1", "data/real/pbmc68k_reduced_scanpy1.h5ad",
    ...                 where="phase == 'G1'", cells=300)   # doctest: +ELLIPSIS
    Source(name='g1', files='data/real/pbmc68k_reduced_scanpy1.h5ad', where="phase == 'G1'", cells=300, ...)
    """

    name: str
    files: Any
    where: str | None = None
    cells: int | None = None
    weight: float | None = None
    upsample: bool = False
    split: str | None = None
    balance_by: str | None = None
    balance: str | None = None
    balance_scale: float | None = None
    weight_column: str | None = None
    layer: str | None = None


@dataclass
class Split:
    """Held-out splits by the value of a group column (donor_id, dataset, cell_type, ...).

    Either list the held-out groups (``val=[...]``, ``test=[...]``; every other group is
    train), or give ``fractions``: each group then goes to one split by a seeded hash of its
    value, so a group never spans two splits. Cells whose group is missing go to train.

    Parameters
    ----------
    by : str
        The group column. ``"obs_names"`` makes every cell its own group (hashed from its
        file's name and obs name; fractions only): a random cell-level validation split
        that stays put when files are added or reordered.
    val : sequence of str, default ()
        Groups held out for validation.
    test : sequence of str, default ()
        Groups held out for test.
    fractions : dict, optional
        E.g. ``{"train": 0.8, "val": 0.1, "test": 0.1}``, instead of listing groups.
    seed : int, optional
        Seed of the group hash (default: the corpus's seed).
    leakage_columns : sequence of str, default ()
        Columns whose values are checked for appearing in more than one split (reported
        by :meth:`Corpus.leaks`, not an error).

    Examples
    --------
    >>> import cellfeed
    >>> cellfeed.Split(by="louvain", val=["3"])
    Split(by='louvain', val=['3'], test=(), fractions=None, seed=None, leakage_columns=())
    >>> cellfeed.Split(by="obs_names", fractions={"train": 0.9, "val": 0.1}).by
    'obs_names'
    """

    by: str
    val: Sequence[str] = ()
    test: Sequence[str] = ()
    fractions: dict | None = None
    seed: int | None = None
    leakage_columns: Sequence[str] = ()


def _expand(files, base_dir: str | None) -> list[str]:
    items = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    out = []
    for item in items:
        p = os.fspath(item)
        if base_dir is not None and not os.path.isabs(p):
            p = os.path.join(base_dir, p)
        if any(ch in p for ch in "*?["):
            hits = sorted(_glob.glob(p))
            if not hits:
                raise FileNotFoundError(f"corpus: the pattern {p!r} matches no file")
            out.extend(hits)
        else:
            if not os.path.exists(p):
                raise FileNotFoundError(f"corpus: no such file: {p!r}")
            out.append(p)
    if not out:
        raise ValueError("corpus: a source has no files")
    return [os.path.abspath(p) for p in out]


def file_identity(path: str) -> dict:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Corpus:
    """A declared training corpus: named sources over existing files, and splits.

    The declaration is evaluated once, in C++ (filters, splits, quotas), on first use; every
    declaration that cannot be met is an error then, before any batch is read.
    ``Loader(corpus, split="train")`` streams exactly the declared cells, interleaving the
    sources in proportion over the whole epoch. The rules and the TOML format:
    docs/CORPUS.md.

    Parameters
    ----------
    sources : sequence of Source or dict
        The sources (a dict is passed to :class:`Source`).
    split : Split or dict, optional
        Held-out splits by a group column; without one every cell of a source that is
        not held out whole is train.
    epoch_cells : int, optional
        Train cells per epoch shared out by the sources' ``weight`` (default: the
        weighted sources' cells).
    temperature : float, optional
        With ``temperature=T``, weighted sources get shares proportional to
        ``weight * n ** (1 / T)`` (n: the source's train cells after its filter) instead
        of ``weight``.
    subsample : {"fixed", "epoch"}, default "fixed"
        Whether a source's quota draws the same cells every epoch or new ones each epoch.
    seed : int, default 0
        Seed of every draw of the declaration (subsamples, split hashes).
    layer : str, optional
        The matrix read from every file (a source's ``layer`` overrides it); X when None.
    join : {"inner", "outer"}, list of str or path, default "inner"
        The gene space of the files, as in :func:`cellfeed.open`.
    values : {"finite", "counts", "any"}, default "finite"
        Checks of the values read, as in :func:`cellfeed.open`.
    threads : int, optional
        Engine threads (default: one per core).
    qc_flag_prefix : str, default "MT-"
        Gene-name prefix of the ``pct_counts_mt`` QC column when it is computed.
    base_dir : str, optional
        Directory that relative paths and globs are resolved against (the TOML file's
        directory for :meth:`from_toml`).

    Raises
    ------
    ValueError
        No sources, a source with both ``cells`` and ``weight``, an unknown split or
        subsample mode.
    FileNotFoundError
        A path that does not exist or a glob that matches no file.

    See Also
    --------
    Source, Split, cellfeed.Loader

    Examples
    --------
    >>> import cellfeed
    >>> corpus = cellfeed.Corpus([
    ...     cellfeed.Source("g1", "data/real/pbmc68k_reduced_scanpy1.h5ad",
    ...                     where="phase == 'G1'", cells=300),
    ...     cellfeed.Source("zarr", "data/pbmc68k/10x_pbmc68k_reduced.zarr.zip",
    ...                     layer="counts", split="test")],
    ...     split=cellfeed.Split(by="louvain", val=["3"]))
    >>> corpus.counts()[["in_files", "passing", "train", "val", "test", "requested"]]
            in_files  passing  train  val  test  requested
    source                                                
    g1           700      501    470   31     0        300
    zarr         700      700      0    0   700          0
    >>> loader = cellfeed.Loader(corpus, split="train", batch_size=64, seed=0)
    >>> sum(len(batch) for batch in loader)
    300
    >>> loader.delivered().to_dict()
    {'g1': 300, 'zarr': 0}
    """

    def __init__(self, sources: Sequence[Source], split: Split | None = None,
                 epoch_cells: int | None = None, temperature: float | None = None,
                 subsample: str = "fixed", seed: int = 0, layer: str | None = None,
                 join="inner", values: str = "finite", threads: int | None = None,
                 qc_flag_prefix: str = "MT-", base_dir: str | None = None):
        if not sources:
            raise ValueError("corpus: no sources declared")
        self.sources = [s if isinstance(s, Source) else Source(**s) for s in sources]
        for s in self.sources:
            if s.cells is not None and s.weight is not None:
                raise ValueError(f"corpus: source {s.name!r} gives both cells and weight; give one")
            if s.split is not None and s.split not in SPLITS:
                raise ValueError(f"corpus: source {s.name!r}: split must be one of {SPLITS}, got {s.split!r}")
        self.split = split if (split is None or isinstance(split, Split)) else Split(**split)
        self.epoch_cells = None if epoch_cells is None else int(epoch_cells)
        self.temperature = None if temperature is None else float(temperature)
        if subsample not in ("fixed", "epoch"):
            raise ValueError(f"corpus: subsample must be 'fixed' or 'epoch', got {subsample!r}")
        self.subsample = subsample
        self.seed = int(seed)
        self.layer = layer
        self.join = join
        self.values = values
        self.threads = threads
        self.qc_flag_prefix = qc_flag_prefix
        self.base_dir = base_dir
        self._files = [_expand(s.files, base_dir) for s in self.sources]
        self._built = None  # (collection, engine corpus), made on first use
        self._saved = None  # (fingerprint, evaluated state as bytes), from a pickle

    # -- declaration ---------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path) -> "Corpus":
        """Load a declaration from a TOML file (format: docs/CORPUS.md).

        Parameters
        ----------
        path : str or os.PathLike
            The TOML file; its relative paths and globs are resolved against its directory.

        Returns
        -------
        Corpus
            The declaration, not yet evaluated.

        Raises
        ------
        ValueError
            Not valid TOML, or unknown keys (the message names the file and the keys).

        Examples
        --------
        >>> import os, tempfile, cellfeed
        >>> pbmc = os.path.abspath("data/real/pbmc68k_reduced_scanpy1.h5ad")
        >>> path = os.path.join(tempfile.mkdtemp(), "corpus.toml")
        >>> with open(path, "w") as f:
        ...     _ = f.write(f'''
        ... [[source]]
        ... name = "pbmc"
        ... files = ["{pbmc}"]
        ... where = "n_genes > 1200"
        ... ''')
        >>> corpus = cellfeed.Corpus.from_toml(path)
        >>> corpus
        Corpus(1 sources: pbmc)
        >>> int(corpus.counts().loc["pbmc", "passing"])
        229
        """
        path = os.fspath(path)
        spec = read_toml(path)
        return cls.from_dict(spec, base_dir=os.path.dirname(os.path.abspath(path)), where=path)

    @classmethod
    def from_dict(cls, spec: dict, base_dir: str | None = None, where: str = "corpus") -> "Corpus":
        """A declaration from a dict shaped like the TOML format (docs/CORPUS.md).

        Parameters
        ----------
        spec : dict
            Corpus options, ``source`` (a list of dicts) and optionally ``split`` (a dict).
        base_dir : str, optional
            Directory that relative paths and globs are resolved against.
        where : str, default "corpus"
            What error messages call the declaration (the TOML file's path).

        Returns
        -------
        Corpus

        Raises
        ------
        ValueError
            No sources, a source without name or files, or unknown keys.
        """
        spec = dict(spec)
        spec.pop("perturbation", None)  # a cell-set declaration beside it (cellfeed.Perturbation)
        known = {"source", "split", "epoch_cells", "temperature", "subsample", "seed", "layer",
                 "join", "values", "threads", "qc_flag_prefix"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")
        raw_sources = spec.pop("source", None)
        if not raw_sources:
            raise ValueError(f"{where}: no [[source]] tables")
        source_keys = set(Source.__dataclass_fields__)
        sources = []
        for i, s in enumerate(raw_sources):
            bad = sorted(set(s) - source_keys)
            if bad:
                raise ValueError(f"{where}: source {s.get('name', i)!r}: unknown keys {bad}; "
                                 f"expected some of {sorted(source_keys)}")
            if "name" not in s or "files" not in s:
                raise ValueError(f"{where}: source {i} needs a name and files")
            sources.append(Source(**s))
        split = spec.pop("split", None)
        if split is not None:
            bad = sorted(set(split) - set(Split.__dataclass_fields__))
            if bad:
                raise ValueError(f"{where}: [split]: unknown keys {bad}")
            split = Split(**split)
        return cls(sources, split=split, base_dir=base_dir, **spec)

    def to_dict(self) -> dict:
        """The declaration, with files resolved to absolute paths (what the fingerprint covers).

        Returns
        -------
        dict
            Shaped like the TOML format: :meth:`from_dict` reads it back.
        """
        d = {"seed": self.seed, "subsample": self.subsample, "layer": self.layer,
             "join": self.join if isinstance(self.join, str) else list(self.join),
             "values": self.values, "qc_flag_prefix": self.qc_flag_prefix,
             "epoch_cells": self.epoch_cells, "temperature": self.temperature,
             "split": None if self.split is None else {k: (list(v) if isinstance(v, (list, tuple)) else v)
                                                       for k, v in asdict(self.split).items()},
             "source": []}
        for s, files in zip(self.sources, self._files):
            e = {k: v for k, v in asdict(s).items() if v is not None and v is not False}
            e["files"] = files
            d["source"].append(e)
        return d

    @property
    def source_names(self) -> list[str]:
        """The sources' names, in declaration order."""
        return [s.name for s in self.sources]

    @property
    def files(self) -> list[str]:
        """Every file of the corpus once, in declaration order: the collection's files."""
        seen, out = set(), []
        for files in self._files:
            for f in files:
                if f not in seen:
                    seen.add(f)
                    out.append(f)
        return out

    @property
    def file_layers(self) -> list:
        """The layer read from each file of `files` (the source's, else the corpus's)."""
        layer_of: dict = {}
        for s, files in zip(self.sources, self._files):
            want = s.layer if s.layer is not None else self.layer
            for f in files:
                if layer_of.setdefault(f, want) != want:
                    raise ValueError(f"corpus: {f} is read as layer {layer_of[f]!r} by one source and "
                                     f"{want!r} by source {s.name!r}; a file has one matrix per corpus")
        return [layer_of[f] for f in self.files]

    @property
    def fingerprint(self) -> str:
        """A hash of the declaration and of the files' identities (path, size, mtime)."""
        payload = {"declaration": self.to_dict(), "files": [file_identity(f) for f in self.files]}
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- evaluation ------------------------------------------------------------------------
    def build(self) -> "Corpus":
        """Evaluate the declaration (done on first use).

        Returns
        -------
        Corpus
            This corpus, evaluated.

        Raises
        ------
        ValueError
            Any declaration that cannot be met (a filter over a missing column, a quota
            above the cells available without ``upsample``, ...), naming the source.
        """
        if self._built is not None:
            return self
        fingerprint = self.fingerprint  # of the files as they are before they are read
        collection = self._open_files(self.threads)
        if self._saved is not None and self._saved[0] == fingerprint:
            # Pickled after evaluation (a spawned DataLoader worker, an unpickled Loader),
            # and the files are unchanged: the evaluation comes with it.
            sources, options = self._engine_declaration(None)
            engine = _cellfeed.Corpus.restore(collection._c, sources, options, self._saved[1])
        else:
            extra = qc_columns_for(self, collection, self.files)
            sources, options = self._engine_declaration(collection)
            engine = _cellfeed.Corpus.make(collection._c, sources, options, extra)
        self._built = (collection, engine)
        self._built_fingerprint = fingerprint
        return self

    def _engine_declaration(self, collection):
        """(sources, options) as the engine takes them; each source's files opened on their
        own for its evaluation, unless `collection` is None (restoring an evaluation)."""
        files = self.files
        index = {f: i for i, f in enumerate(files)}
        layers = self.file_layers
        sources = []
        for s, sfiles in zip(self.sources, self._files):
            d = {k: v for k, v in asdict(s).items() if k != "files"}
            d["files"] = [index[f] for f in sfiles]
            d["files_collection"] = None if collection is None else open_collection(
                sfiles, layer=[layers[index[f]] for f in sfiles], threads=self.threads,
                values=self.values)._c
            sources.append(d)
        options = {"epoch_cells": self.epoch_cells, "temperature": self.temperature,
                   "subsample": self.subsample, "seed": self.seed}
        if self.split is not None:
            options["split"] = {"by": self.split.by, "val": [str(v) for v in self.split.val],
                                "test": [str(v) for v in self.split.test],
                                "fractions": self.split.fractions,
                                "seed": self.seed if self.split.seed is None else self.split.seed,
                                "leakage_columns": list(self.split.leakage_columns)}
        return sources, options

    def _open_files(self, threads: int | None) -> Collection:
        return open_collection(self.files, layer=self.file_layers, threads=threads, join=self.join,
                               values=self.values)

    def _reopen_forked(self, threads: int | None) -> None:
        """In a forked process (a DataLoader worker): the files are opened again, for handles
        and threads of its own, and the evaluated corpus is kept: filters, QC columns and
        subsamples are not evaluated again (at 100M cells that took 36 s per worker)."""
        engine = self._built[1]
        # The parent's objects own threads that do not exist in this process: they are
        # kept, never destroyed here.
        _FORKED_AWAY.append(self._built)
        fresh = self._open_files(self.threads if self.threads is not None else threads)
        self._built = (fresh, engine.with_collection(fresh._c))

    @property
    def collection(self) -> Collection:
        """Every file of the corpus opened as one collection (global row ids index it)."""
        return self.build()._built[0]

    @property
    def _engine(self):
        return self.build()._built[1]

    def counts(self) -> pd.DataFrame:
        """Cells per source: in the files, passing the filter, per split, requested.

        Returns
        -------
        pandas.DataFrame
            Indexed by source: ``in_files``, ``passing``, ``train``, ``val``, ``test``,
            ``requested``, ``full_copies`` and ``extra_cells`` (an upsampled quota is whole
            copies of the source plus extra cells).
        """
        return pd.DataFrame(self._engine.counts()).set_index("source")

    def leaks(self) -> pd.DataFrame:
        """Values of the split's leakage columns that appear in more than one split.

        Returns
        -------
        pandas.DataFrame
            Columns ``column``, ``value`` and ``splits`` (comma-separated); empty when
            nothing leaks.
        """
        rows = [{"column": c, "value": v, "splits": ",".join(s)} for c, v, s in self._engine.leaks()]
        return pd.DataFrame(rows, columns=["column", "value", "splits"])

    def rows(self, split: str = "test", source: str | None = None) -> np.ndarray:
        """Global row ids (into ``corpus.collection``) of a split's cells, e.g. to evaluate on.

        Parameters
        ----------
        split : {"train", "val", "test"}, default "test"
            The split.
        source : str, optional
            One source's cells only; all sources when None.

        Returns
        -------
        numpy.ndarray
            int64, sorted, unique.
        """
        names = self.source_names
        picks = range(len(names)) if source is None else [names.index(source)]
        parts = [self._engine.split_rows(i, split) for i in picks]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def epoch_rows(self, split: str = "train", epoch: int = 0) -> list[tuple[str, int, np.ndarray]]:
        """What one epoch of a split delivers: ``(source, copy, rows)`` per lane.

        Parameters
        ----------
        split : {"train", "val", "test"}, default "train"
            The split.
        epoch : int, default 0
            The epoch (subsamples drawn per epoch differ between epochs).

        Returns
        -------
        list of tuple
            Per lane: the source's name, the copy number (upsampled sources have several)
            and the global row ids it delivers.
        """
        names = self.source_names
        return [(names[s], c, r) for s, c, r in self._engine.epoch_lanes(split, epoch)]

    def report(self, columns: Sequence[str] = (), split: str = "train", epoch: int = 0,
               world_size: int = 1, batch_size: int = 64, block_size: int | str = 4,
               fetch_factor: int = 16, drop_last: bool = False, remainder: str = "pad",
               max_batches: int = 2000):
        """What the corpus holds and what an epoch delivers (``cellfeed corpus`` prints it).

        Parameters
        ----------
        columns : sequence of str, default ()
            obs columns to count per label (available, delivered, target).
        split : {"train", "val", "test"}, default "train"
            The split whose epoch is reported.
        epoch : int, default 0
            The epoch reported.
        world_size : int, default 1
            Ranks to report per-rank counts for.
        batch_size, block_size, fetch_factor, drop_last, remainder
            The loader configuration whose batches are reported (as in
            :class:`cellfeed.Loader`).
        max_batches : int, default 2000
            At most this many batches are planned to measure batch proportions.

        Returns
        -------
        CorpusReport
            ``str()`` gives Markdown; ``to_dict()``, ``to_json()`` and ``plot(path)`` the rest.
        """
        from .corpus_report import build_report

        return build_report(self, columns=list(columns), split=split, epoch=epoch,
                            world_size=world_size, batch_size=batch_size, block_size=block_size,
                            fetch_factor=fetch_factor, drop_last=drop_last, remainder=remainder,
                            max_batches=max_batches)

    # -- pickling: the declaration, and its evaluation once there is one -------------------
    def __getstate__(self):
        """A spawned DataLoader worker (or any unpickling process) opens the files again;
        an evaluated corpus also carries its evaluation (row selections as bitmaps: ~12 MB
        per selection at 100M cells), used there when the declaration's fingerprint (its
        files' paths, sizes and mtimes) still matches, else evaluated again."""
        if self._built is not None and (self._saved is None or self._saved[0] != self._built_fingerprint):
            # Saved once per evaluation: every spawned worker start pickles the corpus again.
            self._saved = (self._built_fingerprint, self._built[1].save())
        state = self.__dict__.copy()
        state["_built"] = None
        return state

    def __repr__(self) -> str:
        return f"Corpus({len(self.sources)} sources: {', '.join(self.source_names)})"
