"""cellfeed.Loader: block-shuffled, batched-fetch minibatches for PyTorch.

The epoch's order is a pure function of (seed, epoch, rank, world_size, configuration),
computed by the C++ plan; decoding runs on the engine's threads with the GIL released.
Works directly as an iterable, and as a torch IterableDataset under
torch.utils.data.DataLoader(loader, batch_size=None, num_workers=k): worker i of k takes
the fetches i, i+k, ... of this rank, so no cell is repeated or lost.

Epochs change only through set_epoch(e), as with torch's DistributedSampler: the order
is then the same in the main process and in DataLoader workers, persistent or not.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _cellfeed, _shm
from .collection import Collection, open as open_collection
from .corpus import Corpus

try:  # torch is optional: without it the Loader is a plain iterable
    import torch
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover
    torch = None
    _Base = object

OUTPUTS = ("scipy", "numpy", "torch", "torch-dense")

# Engines inherited through fork() hold threads that do not exist in the child: they are
# never destroyed there (destroying would join those threads), just kept and ignored.
_INHERITED: list[Any] = []


@dataclass
class Batch:
    """One minibatch: X (rows = cells), obs columns, and the cells' global row ids.

    Made by :class:`Loader`; ``len(batch)`` is its number of cells.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix, numpy.ndarray or torch.Tensor
        The cells' values, float32, as the loader's ``output`` says: ``"scipy"`` a CSR
        matrix, ``"numpy"`` a dense array, ``"torch"`` a sparse CSR tensor,
        ``"torch-dense"`` a dense tensor.
    obs : dict
        The requested obs columns by name: numeric columns as they are stored,
        categorical columns as int32 category codes.
    rows : numpy.ndarray
        int64 global row ids of the cells (into the loader's collection), in batch order.
    index : int
        Position of this batch in the rank's epoch.
    source : numpy.ndarray, optional
        With a corpus: each cell's source, as an index into ``Loader.source_names``.
    inputs : dict, optional
        With ``Loader(inputs=...)``: the model tensors by name (docs/MODEL_INPUTS.md).

    Examples
    --------
    >>> import cellfeed
    >>> loader = cellfeed.Loader("data/real/pbmc68k_reduced_scanpy1.h5ad", batch_size=64,
    ...                          obs=["bulk_labels"], seed=0)
    >>> batch = next(iter(loader))
    >>> len(batch), batch.X.shape, batch.index
    (64, (64, 765), 0)
    >>> batch.rows[:3].tolist(), batch.obs["bulk_labels"].dtype
    ([531, 157, 279], dtype('int32'))
    """

    X: Any
    obs: dict
    rows: np.ndarray
    index: int  # position of this batch in the rank's epoch
    # With a corpus: the index of each cell's declared source (loader.source_names).
    source: Any = None
    inputs: dict | None = None  # Loader(inputs=...): the model tensors (cellfeed.inputs)
    # In a DataLoader worker: how this batch crosses to the training process (_shm).
    _wire: Any = field(default=None, repr=False, compare=False)
    # (epoch, worker_id, num_workers) it was made in: what Loader.state_dict(after=) needs.
    _origin: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __reduce__(self):
        wire = self._wire
        if wire is None:
            return (Batch, (self.X, self.obs, self.rows, self.index, self.source, self.inputs,
                            None, self._origin))
        ticket, tree, spec = wire
        if ticket is not None:
            self._wire = (None, tree, spec)  # a ticket is good for one trip only
            tree = None
        # The engine's arrays (a slab ticket, or inline): rebuilt and converted on arrival,
        # so torch's sparse-tensor pickling (and its invariant-check warning) is not used.
        return (_arrive, (ticket, tree, spec, self.index, self._origin))


def _arrive(ticket, tree, spec, index, origin=None):
    if ticket is not None:
        tree = _shm.unpack(ticket)
    batch = _to_batch(spec, index, *tree)
    batch._origin = origin
    return batch


def _to_batch(spec, index, X, rows, obs, sources, inputs):
    output, inputs_spec = spec
    if inputs is not None:
        from .inputs import convert_arrays
        inputs = convert_arrays(inputs, *inputs_spec)
    return Batch(_convert(output, X), _convert_obs(output, obs), rows, index, sources, inputs)


def _scipy_template():
    """The attributes scipy's csr_matrix constructor sets beyond the arrays and shape, or
    None if this scipy sets others (then the constructor is used)."""
    m = sp.csr_matrix((np.zeros(1, np.float32), np.zeros(1, np.int32),
                       np.array([0, 1], np.int32)), shape=(1, 1), copy=False)
    d = dict(m.__dict__)
    if set(d) != {"_shape", "maxprint", "indices", "indptr", "data"}:
        return None
    return {"maxprint": d["maxprint"]}


_SCIPY_TEMPLATE = _scipy_template()
_TORCH_CSR_WARNED: list = []  # torch's beta warning is filtered once (torch warns once)


def _csr(data, indices, indptr, shape):
    # The constructor spends ~15 us per batch on checks (dtypes, shape, indptr length,
    # prune) that the engine already guarantees: int32 (or matching int64) indices and
    # indptr, indptr[0] == 0, indptr[-1] == len(data) == len(indices).
    if _SCIPY_TEMPLATE is None:
        return sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    m = object.__new__(sp.csr_matrix)
    d = m.__dict__
    d.update(_SCIPY_TEMPLATE)
    d["data"], d["indices"], d["indptr"], d["_shape"] = data, indices, indptr, tuple(shape)
    return m


def _convert(output, X):
    if output == "numpy":
        return X
    if output == "torch-dense":
        return torch.from_numpy(X)
    data, indices, indptr, shape = X
    if output == "scipy":
        return _csr(data, indices, indptr, shape)
    indptr = torch.from_numpy(indptr)
    # A batch beyond 2**31 nonzeros has an int64 indptr; torch wants both alike.
    indices = torch.from_numpy(indices)
    if indices.dtype != indptr.dtype:
        indices = indices.to(indptr.dtype)
    # The engine has checked indptr and indices, so torch's own checks are skipped.
    if _TORCH_CSR_WARNED:
        return torch.sparse_csr_tensor(indptr, indices, torch.from_numpy(data), size=shape,
                                       check_invariants=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        t = torch.sparse_csr_tensor(indptr, indices, torch.from_numpy(data), size=shape,
                                    check_invariants=False)
    _TORCH_CSR_WARNED.append(True)
    return t


def _convert_obs(output, obs: dict) -> dict:
    if output in ("torch", "torch-dense"):
        return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in obs.items()}
    return obs


_RING: list = []  # this DataLoader worker process's slabs (_shm.Ring), made on first use


def _worker_ring():
    if not _RING or _RING[0].pid != os.getpid():
        _RING[:] = [_shm.Ring()]
    return _RING[0]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def worker_threads(num_workers: int) -> int:
    """Engine threads of each of ``num_workers`` DataLoader workers when ``threads=`` is not given.

    The cores this process may run on (``os.sched_getaffinity``) shared out, at least one,
    so that workers x threads never oversubscribes the machine.

    Parameters
    ----------
    num_workers : int
        DataLoader workers (0 counts as 1).

    Returns
    -------
    int
        ``max(1, cores // num_workers)``.

    Examples
    --------
    >>> import os, cellfeed
    >>> cellfeed.worker_threads(2) == max(1, len(os.sched_getaffinity(0)) // 2)
    True
    """
    return max(1, _cores() // max(1, int(num_workers)))


class _EpochCell:
    """The epoch, in memory shared with the DataLoader workers started from this process
    (forked or spawned), so that set_epoch in the main process reaches persistent workers
    too. Pickled outside of a process start, it becomes a fresh cell with the same value.
    Two more counters ride along: worker processes started, and which of the Loader's
    notes about workers were given (bits: so each is given once, not once per worker)."""

    def __init__(self, value: int = 0, raw=None):
        self._raw = raw if raw is not None else multiprocessing.RawArray("q", _CELL_SIZE)
        if raw is None:
            self._raw[0] = int(value)

    @property
    def value(self) -> int:
        return int(self._raw[0])

    @value.setter
    def value(self, v: int) -> None:
        self._raw[0] = int(v)

    def worker_started(self, worker_id: int, num_workers: int) -> bool:
        """Counts a worker process's first iteration; True (once) when more processes
        have started than num_workers: the DataLoader restarts its workers every epoch."""
        self._raw[1] += 1  # racy between workers; a count off by one only delays the warning
        return self._raw[1] > num_workers and self.first_note(worker_id, _NOTE_RESTART)

    def first_note(self, worker_id: int, bit: int) -> bool:
        """True once, in worker 0: one process reads and writes the bits, so two workers
        starting together cannot both see a note as not given yet."""
        if worker_id != 0 or self._raw[2] & bit:
            return False
        self._raw[2] |= bit
        return True

    # -- a resume point, for the next pass of every worker (and of direct iteration) ------
    def set_resume(self, seed: int, prefix: int, nexts, passes=()) -> None:
        nexts = [] if nexts is None else list(nexts)
        if len(nexts) > _MAX_WORKERS:
            raise ValueError(f"a state of {len(nexts)} DataLoader workers: at most {_MAX_WORKERS}")
        flat = _flatten_passes(passes)
        if len(flat) > _PASS_AREA:
            raise ValueError(f"a resume state whose interrupted passes take {len(flat)} numbers "
                             f"cannot reach DataLoader workers (at most {_PASS_AREA}); iterate the "
                             "Loader directly, or gather states of ranks in lockstep "
                             "(cellfeed.elastic.gather_state_dict), which stores them once")
        r = self._raw
        r[4] = 0  # inactive while being written
        r[5], r[6], r[7] = int(seed), int(prefix), len(nexts)
        for i, n in enumerate(nexts):
            r[_NEXT + i] = int(n)
        r[_PASSES:_PASSES + len(flat)] = flat
        for i in range(_MAX_WORKERS):
            r[_APPLIED + i] = 0
        r[3] += 1  # seed generation: workers rebuild their engines on a change
        r[4] = 1

    def clear_resume(self) -> None:
        self._raw[4] = 0

    @property
    def seed_generation(self) -> int:
        return int(self._raw[3])

    @property
    def seed(self) -> int:
        return int(self._raw[5])

    def take_resume(self, worker_id: int):
        """(prefix, nexts) once per worker id after set_resume, else None."""
        r = self._raw
        if not r[4] or worker_id >= _MAX_WORKERS or r[_APPLIED + worker_id]:
            return None
        r[_APPLIED + worker_id] = 1
        return (int(r[6]), [int(r[_NEXT + i]) for i in range(int(r[7]))],
                _unflatten_passes(r, _PASSES))

    def __reduce__(self):
        if multiprocessing.context.get_spawning_popen() is not None:
            return (_EpochCell, (0, self._raw))  # shared with the child being started
        return (_EpochCell._copy, (list(self._raw),))

    @staticmethod
    def _copy(values):
        raw = multiprocessing.RawArray("q", _CELL_SIZE)
        raw[:] = values
        return _EpochCell(0, raw)


_NOTE_RESTART, _NOTE_SMALL_MACHINE = 1, 2  # the _EpochCell's notes-given bits

# _EpochCell layout: epoch, worker starts, notes given, seed generation, resume active, seed,
# resume prefix, resume workers, applied flag per worker id, next batch per old worker.
# Then the resume's interrupted passes (elastic resume), flattened.
_MAX_WORKERS = 256
_APPLIED = 8
_NEXT = _APPLIED + _MAX_WORKERS
_PASSES = _NEXT + _MAX_WORKERS
_PASS_AREA = 4096
_CELL_SIZE = _PASSES + _PASS_AREA


def _flatten_passes(passes) -> list[int]:
    """[count, then per pass: world_size, batch_size, fetch_factor, lists, (length, entries)...]"""
    flat = [len(passes)]
    for p in passes:
        flat += [int(p["world_size"]), int(p["batch_size"]), int(p["fetch_factor"]), len(p["next"])]
        for lst in p["next"]:
            flat += [len(lst)] + [int(v) for v in lst]
    return flat


def _unflatten_passes(r, at: int) -> list[dict]:
    passes = []
    count, at = int(r[at]), at + 1
    for _ in range(count):
        w, bs, ff, lists = (int(v) for v in r[at:at + 4])
        at += 4
        nxt = []
        for _ in range(lists):
            n = int(r[at])
            nxt.append([int(v) for v in r[at + 1:at + 1 + n]])
            at += 1 + n
        passes.append({"world_size": w, "batch_size": bs, "fetch_factor": ff, "next": nxt})
    return passes


def _engine_passes(passes):
    return [_cellfeed.InterruptedPass(p["world_size"], p["batch_size"], p["fetch_factor"],
                                      [list(map(int, lst)) for lst in p["next"]]) for p in passes]


# Configuration keys that may differ between a state and the Loader it is loaded into
# (elastic resume): the rest must match.
_ELASTIC_KEYS = ("rank", "world_size", "batch_size", "fetch_factor")


def _fetch_worker(index: int, fetch_factor: int, num_workers: int) -> int:
    """The DataLoader worker that yields batch `index` (worker i takes fetches i, i+k, ...;
    a fetch is fetch_factor batches, the plan's FetchOfBatch)."""
    return (index // fetch_factor) % num_workers


def _nth_of_worker(w: int, j: int, fetch_factor: int, num_workers: int) -> int:
    """The index of worker w's j-th batch (0-based) of an epoch (may be past the end)."""
    return (w + (j // fetch_factor) * num_workers) * fetch_factor + j % fetch_factor


_RESTART_WARNING = (
    "cellfeed.Loader: new DataLoader worker processes started to iterate this Loader again "
    "(a DataLoader with persistent_workers=False restarts them every epoch; a new DataLoader "
    "does too): each new worker re-opens the files and refills its pipeline{spawn} before "
    "its first batch. Pass persistent_workers=True to DataLoader and keep it, to keep the "
    "workers (set_epoch and load_state_dict still reach them).")


# Where the engine alone fills every core, workers cannot add decoding capacity; they
# only add the per-batch hand-over between processes (bench/dataloader_bench.py: about
# 1 CPU ms more per batch of 256 uncompressed cells, where direct iteration spends 1 ms).
# Measured on 2 CPUs only; from 5 up the Loader says nothing, since nothing was measured.
_SMALL_MACHINE_CPUS = 4
_SMALL_MACHINE_WARNING = (
    "cellfeed.Loader in a DataLoader with {workers} worker(s) on a machine with {cpus} CPU(s): "
    "the Loader already decodes on all of them outside the GIL, so workers add no decoding; "
    "each batch now also crosses between processes (a copy into shared memory and two "
    "messages). On 2 CPUs that delivered 0.4-0.6x of iterating the Loader directly at "
    "the engine's high rates (docs/PYTORCH.md). Iterate the Loader directly (num_workers=0) "
    "unless the training step holds the GIL for long. Silence with "
    "PYTHONWARNINGS='ignore:cellfeed.Loader in a DataLoader'.")


def _shield_worker_signals() -> None:
    """In a DataLoader worker: leave the training process's process group. torchrun and
    SLURM signal a rank's whole group on preemption (SIGTERM, SIGUSR1), and torch's
    workers die of SIGTERM, which kills the training process's DataLoader before it can
    stop at a batch boundary and save (cellfeed.elastic.Preemption). The training process
    decides; its workers exit with it (the DataLoader stops them, terminating them if it
    must, or their watchdog sees it gone)."""
    try:
        os.setpgid(0, 0)
    except OSError:  # pragma: no cover  (a session leader, or not permitted)
        pass


def _distributed_defaults(rank, world_size):
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        r = torch.distributed.get_rank() if rank is None else rank
        w = torch.distributed.get_world_size() if world_size is None else world_size
        return int(r), int(w)
    return (0 if rank is None else int(rank)), (1 if world_size is None else int(world_size))


def _check_inputs(inputs):
    from .inputs import Pipeline
    if inputs is not None and not isinstance(inputs, Pipeline):
        raise TypeError("inputs must be a cellfeed.inputs.Pipeline (e.g. cellfeed.inputs.aido_cell_rda())")
    return inputs


class Loader(_Base):
    """Block-shuffled, batched-fetch minibatches of files, a collection or a corpus.

    Iterate it directly (it is already parallel: the engine decodes on its threads with
    the GIL released), or wrap it as a ``torch.utils.data.IterableDataset`` in
    ``DataLoader(loader, batch_size=None, num_workers=k)``: worker i of k takes the fetches
    i, i+k, ... of this rank, so no cell is repeated or lost (docs/PYTORCH.md). The epoch's
    order is a pure function of (seed, epoch, rank, world_size, configuration) and changes
    only through :meth:`set_epoch`, as with torch's ``DistributedSampler``
    (docs/SAMPLING.md). ``len(loader)`` is the number of batches per epoch of this rank,
    the same on every rank.

    Parameters
    ----------
    paths_or_collection : str, os.PathLike, sequence of them, Collection or Corpus
        Files (opened as by :func:`cellfeed.open`), an open collection, or a declared
        corpus (then ``split`` picks the cells).
    batch_size : int, default 64
        Cells per batch.
    block_size : int or "chunk", default 4
        Consecutive cells sampled together (1: fully random). ``"chunk"`` makes each
        block the cells of one storage chunk, so gzip chunks are decoded once and used
        whole; pair it with a large ``fetch_factor`` (e.g. 256) for diverse batches.
    fetch_factor : int, default 16
        Batches read together in one fetch, whose cells are shuffled in memory before
        they are dealt into batches.
    shuffle : bool, default True
        Shuffle blocks and fetches; False streams the cells in file order.
    seed : int, default 0
        Seed of every random draw of the plan.
    obs : str or sequence of str, default ()
        obs columns to deliver with each batch (``batch.obs``).
    drop_last : bool, default False
        Drop the last, short batch of each rank.
    rank, world_size : int, optional
        This process's shard; by default from ``torch.distributed`` when it is
        initialized, else 0 and 1.
    threads : int, optional
        Engine threads (default: one per core; in a DataLoader worker
        :func:`worker_threads`).
    layer : str, optional
        The matrix to read, as in :func:`cellfeed.open` (files only).
    join : {"inner", "outer"}, list of str or path, default "inner"
        The gene space, as in :func:`cellfeed.open` (files only).
    output : {"scipy", "numpy", "torch", "torch-dense"}, default "scipy"
        The type of ``batch.X`` (see :class:`Batch`); with torch outputs the obs columns
        are tensors too.
    remainder : {"pad", "drop"}, default "pad"
        How the epoch is evened out over ranks: ``"pad"`` repeats fewer than
        ``world_size`` cells, ``"drop"`` skips them.
    prefetch : int, default 2
        Fetches the engine prepares ahead of the consumer.
    transform : callable, optional
        ``Batch -> anything``, applied to each batch before it is yielded (in the
        DataLoader worker, under workers).
    values : {"finite", "counts", "any"}, default "finite"
        Checks of the values read, as in :func:`cellfeed.open` (files only).
    split : {"train", "val", "test"}, default "train"
        With a corpus: the split to stream.
    inputs : cellfeed.inputs.Pipeline, optional
        Model-ready inputs computed on the engine's threads (``batch.inputs``), e.g.
        ``cellfeed.inputs.aido_cell_rda()``.
    worker_transport : {"shm", "pickle"}, default "shm"
        How batches cross from DataLoader workers: shared-memory slabs, or torch's
        pickling (e.g. where /proc of a child process cannot be opened).
    device : str or torch.device, optional
        A CUDA device that batches are moved to asynchronously (torch outputs only;
        direct iteration only).
    pin_memory : bool, default True
        With ``device``: copy through pinned host memory.
    isolate : bool, optional
        Open the files through probe processes, as in :func:`cellfeed.open` (files only).
    open_timeout : float, optional
        Seconds each probe may take, as in :func:`cellfeed.open` (files only).

    Raises
    ------
    ValueError
        An unknown ``output``, ``block_size``, ``worker_transport``; ``split`` without a
        corpus; ``device`` without a torch output or not a CUDA device; ``isolate`` or
        ``open_timeout`` with an already open collection or corpus; a configuration the
        plan rejects.
    TypeError
        ``transform`` not callable, or ``inputs`` not a :class:`cellfeed.inputs.Pipeline`.

    See Also
    --------
    cellfeed.open, cellfeed.Corpus, cellfeed.lightning.CellfeedDataModule

    Examples
    --------
    >>> import cellfeed
    >>> loader = cellfeed.Loader("data/real/pbmc68k_reduced_scanpy1.h5ad", batch_size=64,
    ...                          obs=["bulk_labels"], seed=0)
    >>> len(loader)                       # batches per epoch: ceil(700 / 64)
    11
    >>> for epoch in range(2):
    ...     loader.set_epoch(epoch)       # the order changes only here
    ...     cells = sum(len(batch) for batch in loader)
    >>> cells
    700
    >>> it = iter(loader)
    >>> first, second = next(it), next(it)
    >>> state = loader.state_dict()       # two batches consumed
    >>> resumed = cellfeed.Loader("data/real/pbmc68k_reduced_scanpy1.h5ad", batch_size=64,
    ...                           obs=["bulk_labels"], seed=0)
    >>> resumed.load_state_dict(state)
    >>> next(iter(resumed)).rows.tolist() == next(it).rows.tolist()
    True
    """

    def __init__(self, paths_or_collection, batch_size: int = 64, block_size: int | str = 4,
                 fetch_factor: int = 16, shuffle: bool = True, seed: int = 0, obs=(),
                 drop_last: bool = False, rank: int | None = None, world_size: int | None = None,
                 threads: int | None = None, layer: str | None = None, join="inner",
                 output: str = "scipy", remainder: str = "pad", prefetch: int = 2,
                 transform=None, values: str = "finite", split: str = "train", inputs=None,
                 worker_transport: str = "shm", device=None, pin_memory: bool = True,
                 isolate: bool | None = None, open_timeout: float | None = None):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if worker_transport not in ("shm", "pickle"):
            raise ValueError(f"worker_transport must be 'shm' or 'pickle', got {worker_transport!r}")
        self.worker_transport = worker_transport
        # device: batches moved there asynchronously (cellfeed/_device.py); torch outputs only.
        self.device, self.pin_memory = device, bool(pin_memory)
        if device is not None:
            if torch is None or output not in ("torch", "torch-dense"):
                raise ValueError(f"device= needs output='torch' or 'torch-dense' (got {output!r})")
            if torch.device(device).type != "cuda":
                raise ValueError(f"device= takes a CUDA device (got {device!r}); CPU batches "
                                 "need no hand-off")
        self.corpus = None
        self.split = split
        if (isolate is not None or open_timeout is not None) and isinstance(paths_or_collection, (Corpus, Collection)):
            raise ValueError("Loader(isolate=, open_timeout=) apply when the Loader opens the files "
                             "itself; a Collection or Corpus keeps the settings it was opened with "
                             "(cellfeed.open(..., isolate=...))")
        if isinstance(paths_or_collection, Corpus):
            # A declared corpus: its collection (every file of every source) and its lanes.
            self.corpus = paths_or_collection.build()
            self._collection = self.corpus.collection
            self._open_args = None
        elif split != "train":
            raise ValueError("split= needs a cellfeed.Corpus (the splits are declared there)")
        elif isinstance(paths_or_collection, Collection):
            self._collection = paths_or_collection
            self._open_args = paths_or_collection._open_args
        else:
            # open()'s positional order: DataLoader workers reopen with the same settings
            self._open_args = (paths_or_collection, layer, threads, join, values, False, isolate,
                               open_timeout)
            self._collection = open_collection(*self._open_args)
        self.batch_size = int(batch_size)
        if isinstance(block_size, str) and block_size != "chunk":
            raise ValueError(f"block_size must be a positive integer or 'chunk', got {block_size!r}")
        self.block_size = block_size if block_size == "chunk" else int(block_size)
        self.fetch_factor = int(fetch_factor)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.obs_columns = [obs] if isinstance(obs, str) else list(obs)
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = _distributed_defaults(rank, world_size)
        self.output = output
        self.remainder = remainder
        self.prefetch = int(prefetch)
        if transform is not None and not callable(transform):
            raise TypeError("transform must be callable (Batch -> anything)")
        self.transform = transform
        self.inputs = _check_inputs(inputs)
        self._epoch_cell = _EpochCell(0)
        self._counted_worker = False  # this process's first worker iteration was counted
        self._forked = False
        self._resume = None  # (prefix, nexts) for this process's next pass
        self._yielded = 0
        self._old_nexts = None  # with a resumed multi-worker state: its per-worker points
        # Elastic resume: the interrupted passes over this epoch that the current (or
        # pending) pass continues, and that pass's batch count (None: a whole epoch).
        self._passes: list = []
        self._pass_len = None
        self._seed_generation = 0
        self._pid = os.getpid()
        self._engines: dict[tuple[int, int], Any] = {}
        self._active: list[Any] = []  # engines of the iterations now running
        self._delivered = None
        self._num_batches = self._engine(0, 1).num_batches  # validates the configuration

    # -- configuration and state -------------------------------------------------------
    @property
    def collection(self) -> Collection:
        """The collection the loader reads (a corpus's: every file of every source)."""
        self._ensure_open()
        return self._collection

    @property
    def var_names(self):
        """Gene names of ``batch.X``'s columns."""
        return self.collection.var_names

    @property
    def epoch(self) -> int:
        """The epoch set by :meth:`set_epoch` (0 at first)."""
        return self._epoch

    @property
    def _epoch(self) -> int:
        return self._epoch_cell.value

    @_epoch.setter
    def _epoch(self, epoch: int) -> None:
        self._epoch_cell.value = epoch

    def __len__(self) -> int:
        """Batches per epoch for this rank (the same on every rank); after loading a state
        taken at another world size or batch size, those of the resumed pass."""
        return self._num_batches if self._pass_len is None else self._pass_len

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose order the next iteration yields.

        As with torch's ``DistributedSampler``, call it before each epoch: the order is
        then the same in the main process and in DataLoader workers, persistent or not.

        Parameters
        ----------
        epoch : int
            The epoch.
        """
        self._epoch = int(epoch)
        self._resume = None
        self._epoch_cell.clear_resume()
        self._yielded = 0
        self._old_nexts = None
        self._passes, self._pass_len = [], None

    def _config(self) -> dict:
        return {"batch_size": self.batch_size, "block_size": self.block_size,
                "fetch_factor": self.fetch_factor, "shuffle": self.shuffle,
                "drop_last": self.drop_last, "rank": self.rank, "world_size": self.world_size,
                "remainder": self.remainder, "n_obs": self.collection.n_obs,
                "file_offsets": self.collection.file_offsets.tolist(),
                "corpus": None if self.corpus is None else self.corpus.fingerprint,
                "split": self.split}

    def state_dict(self, after: Batch | None = None) -> dict:
        """Where this loader stands: a new loader given this state continues exactly.

        Parameters
        ----------
        after : Batch, optional
            The last batch the training loop consumed. Under a DataLoader with workers the
            Loader in the training process does not see the batches its workers yield, so
            its own count says nothing; ``state_dict(after=batch)`` instead says which
            batches were consumed when that batch was, from the batch's index and worker
            and the DataLoader's in-order round-robin over its workers (the default,
            ``in_order=True``). Load it into a Loader wrapped by a DataLoader of any worker
            count, or iterated directly, at any world size and batch size (docs/PYTORCH.md,
            elastic resume).

        Returns
        -------
        dict
            ``epoch``, ``batches_yielded``, ``seed`` and the ``config`` it is valid for (and
            ``workers``: per-worker positions, after workers; ``passes``: earlier passes
            over this epoch interrupted at other shapes); plain data, for ``torch.save``.

        Raises
        ------
        ValueError
            ``after`` is a batch that did not come from the worker it says it came from.
        """
        state = {"epoch": self._epoch, "batches_yielded": self._yielded, "seed": self.seed,
                 "config": self._config(), "passes": list(self._passes)}
        if after is not None:
            origin = after._origin if after._origin is not None else (self._epoch, 0, 1, None)
            epoch, w, k = origin[:3]
            passes = origin[3] if len(origin) > 3 and origin[3] is not None else self._passes
            F, g = self.fetch_factor, int(after.index)
            if _fetch_worker(g, F, k) != w:
                raise ValueError(f"batch {g} did not come from DataLoader worker {w} of {k}")
            p = (g // F) // k * F + g % F  # its position in worker w's sequence
            nb = self._pass_batches(int(epoch), passes)
            nexts = [min(nb, _nth_of_worker(v, p + 1 if v <= w else p, F, k)) for v in range(k)]
            state.update(epoch=int(epoch), batches_yielded=min(nexts), workers=nexts,
                         passes=list(passes))
        elif self._old_nexts is not None and max(self._old_nexts) > self._yielded:
            state["workers"] = list(self._old_nexts)
        return state

    def _pass_batches(self, epoch: int, passes) -> int:
        if not passes:
            return self._num_batches
        return self._engine(0, 1).pass_batches(epoch, _engine_passes(passes))

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` (or one gathered from every rank by
        :func:`cellfeed.elastic.gather_state_dict`): the next iteration yields the batches
        after it.

        The files, corpus and sampling must be those of the state; the world size, batch
        size and fetch factor may differ: the rest of the interrupted epoch is then every
        cell not yet consumed, once, shared out evenly across this loader's ranks
        (docs/PYTORCH.md, elastic resume).

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned.

        Raises
        ------
        ValueError
            The state was taken with other files, another corpus declaration (fingerprint)
            or other sampling settings (block size, shuffle, drop_last, remainder), which
            cannot resume this one's epoch.
        """
        theirs = state["config"].get("corpus")
        if theirs != (None if self.corpus is None else self.corpus.fingerprint):
            raise ValueError("state_dict was taken with another corpus declaration (fingerprint "
                             f"{theirs} != {None if self.corpus is None else self.corpus.fingerprint}); "
                             "a changed corpus cannot resume the old one's epoch")
        mine = self._config()
        fixed = {k: v for k, v in state["config"].items() if k not in _ELASTIC_KEYS}
        if fixed != {k: v for k, v in mine.items() if k not in _ELASTIC_KEYS}:
            raise ValueError("state_dict was taken with another configuration: "
                             f"{state['config']} != {mine}")
        if int(state["seed"]) != self.seed:
            self.seed = int(state["seed"])
            self._engines.clear()
        self._epoch = int(state["epoch"])
        cfg = state["config"]
        ranks = state.get("ranks")
        if ranks is not None and len(ranks) != int(cfg["world_size"]):
            raise ValueError(f"state_dict's 'ranks' lists {len(ranks)} ranks for world_size "
                             f"{cfg['world_size']}")
        passes = [dict(p) for p in state.get("passes", [])]
        shape = tuple(int(cfg[k]) for k in ("world_size", "batch_size", "fetch_factor"))
        if shape == (self.world_size, self.batch_size, self.fetch_factor):
            # The same pass continues: this rank's own point (all ranks alike unless the
            # state was gathered from every rank).
            if ranks is not None:
                mark = [int(v) for v in ranks[self.rank]]
                prefix, nexts = min(mark), (mark if len(mark) > 1 else None)
            else:
                prefix, nexts = int(state["batches_yielded"]), state.get("workers")
        else:
            # Another shape: that pass ends here; a new one takes the cells it left.
            if ranks is None:
                ranks = [list(state.get("workers") or [int(state["batches_yielded"])])]
            passes.append({"world_size": shape[0], "batch_size": shape[1],
                           "fetch_factor": shape[2], "next": [list(map(int, m)) for m in ranks]})
            if not any(v for p in passes for m in p["next"] for v in m):
                passes = []  # nothing consumed yet: a plain epoch at this shape
            prefix, nexts = 0, None
        self._passes = passes
        self._pass_len = self._pass_batches(self._epoch, passes) if passes else None
        self._yielded = prefix
        info = torch.utils.data.get_worker_info() if torch is not None else None
        if info is not None:
            # Inside a worker (torchdata's StatefulDataLoader hands each worker its own
            # state): for this process only.
            self._resume = (prefix, nexts, passes)
        else:
            # In the training process: through shared memory to every worker, persistent
            # ones included, and to direct iteration; each applies it to its next pass.
            self._resume = None
            self._epoch_cell.set_resume(self.seed, prefix, nexts, passes)
            self._seed_generation = self._epoch_cell.seed_generation

    # -- engines: one per (process, DataLoader worker) ---------------------------------
    def _engine(self, worker_id: int, num_workers: int):
        self._ensure_open()
        key = (worker_id, num_workers)
        if key not in self._engines:
            self._engines[key] = self._new_engine(worker_id, num_workers)
        return self._engines[key]

    def _new_engine(self, worker_id: int, num_workers: int):
        return _cellfeed.Loader.make(
            self._collection._c, self.batch_size,
            1 if self.block_size == "chunk" else self.block_size, self.fetch_factor,
            self.shuffle, self.seed, self.drop_last, self.rank, self.world_size,
            self.remainder, self.obs_columns, self.prefetch, worker_id, num_workers,
            chunk_blocks=self.block_size == "chunk",
            corpus=None if self.corpus is None else self.corpus._engine, split=self.split,
            inputs=self._inputs_engine())

    def _inputs_engine(self):
        return None if self.inputs is None else self.inputs.build(self._collection)

    def _ensure_open(self) -> None:
        """Opens the files in this process if they are not (a forked or spawned DataLoader
        worker): with threads= unset, a worker's engine gets worker_threads(num_workers)."""
        if os.getpid() == self._pid and self._collection is not None:
            return
        self._forked = self._collection is not None
        if self._forked:  # forked: the parent's engines hold dead threads
            _INHERITED.append((self._collection, self._engines, self.corpus))
        self._engines = {}
        self._active = []
        info = torch.utils.data.get_worker_info() if torch is not None else None
        self._reopen(None if info is None else worker_threads(info.num_workers))
        self._pid = os.getpid()

    def _reopen(self, threads: int | None = None) -> None:
        """Opens the files again in this process (a DataLoader worker, an unpickled copy);
        `threads` applies where the user left threads= unset."""
        if self.corpus is not None and self.corpus._built is not None and self._forked:
            self.corpus._reopen_forked(threads)
            self._collection = self.corpus.collection
        elif self.corpus is not None:
            self.corpus._built = None
            saved = self.corpus.threads
            if saved is None:
                self.corpus.threads = threads
            try:
                self._collection = self.corpus.build().collection
            finally:
                self.corpus.threads = saved
        else:
            args = list(self._open_args)
            if args[2] is None:
                args[2] = threads
            self._collection = open_collection(*args)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_collection"] = None
        state["_engines"] = {}
        state["_active"] = []
        state["_counted_worker"] = False
        state["_feed"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if getattr(multiprocessing.process.current_process(), "_inheriting", False):
            return  # a spawned DataLoader worker starting: opened on first use, sized to it
        self._reopen()
        self._pid = os.getpid()

    # -- iteration ---------------------------------------------------------------------
    def __iter__(self):
        if self.device is not None:
            if torch.utils.data.get_worker_info() is not None:
                raise ValueError("Loader(device=...) moves batches in the training process: "
                                 "do not wrap it in a DataLoader with workers")
            from ._device import DeviceFeed
            if getattr(self, "_feed", None) is None:
                self._feed = DeviceFeed(self.device, self.pin_memory)
            return self._feed(self._iterate())
        return self._iterate()

    def _iterate(self):
        info = torch.utils.data.get_worker_info() if torch is not None else None
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if self._epoch_cell.seed_generation != self._seed_generation:
            # load_state_dict in the training process changed the seed: workers follow.
            self._seed_generation = self._epoch_cell.seed_generation
            if self._epoch_cell.seed != self.seed:
                self.seed = self._epoch_cell.seed
                self._engines.clear()
        engine = self._engine(worker_id, num_workers)
        if any(e is engine for e in self._active):
            # Another iteration of this loader is running on the cached engine: this one
            # gets an engine of its own, so that neither restarts nor stops the other.
            engine = self._new_engine(worker_id, num_workers)
        self._active.append(engine)
        spec = (self.output, None if self.inputs is None else self.inputs.convert_spec())
        ring = None
        if info is not None:
            if not self._counted_worker:
                _shield_worker_signals()
            if not self._counted_worker and self._epoch_cell.worker_started(worker_id, num_workers):
                spawn = not self._forked
                warnings.warn(_RESTART_WARNING.format(
                    spawn=" (and, not forked, starts Python and imports torch)" if spawn else ""),
                    RuntimeWarning, stacklevel=2)
            if (not self._counted_worker and _cores() <= _SMALL_MACHINE_CPUS
                    and self._epoch_cell.first_note(worker_id, _NOTE_SMALL_MACHINE)):
                warnings.warn(_SMALL_MACHINE_WARNING.format(workers=num_workers, cpus=_cores()),
                              RuntimeWarning, stacklevel=2)
            self._counted_worker = True
            if self.transform is None and self.worker_transport == "shm":
                ring = _worker_ring()
        resume, self._resume = self._resume, None
        if resume is None:
            resume = self._epoch_cell.take_resume(worker_id)
        prefix, nexts, passes = resume if resume is not None else (0, None, [])
        F = self.fetch_factor
        start = prefix if not nexts else max(prefix, min(nexts))
        self._old_nexts = nexts or None
        self._passes = passes
        if not passes:
            self._pass_len = None
        origin = (self._epoch, worker_id, num_workers, passes)
        try:
            engine.start(self._epoch, start, _engine_passes(passes))
            self._yielded = start
            while True:
                item = engine.next(self.output)
                if item is None:
                    return
                index, X, rows, obs, sources, inputs = item
                if nexts and index < nexts[_fetch_worker(index, F, len(nexts))]:
                    continue  # consumed before the state was taken (another worker layout)
                tree, ticket = (X, rows, obs, sources, inputs), None
                if ring is not None:
                    tree, ticket = ring.pack(tree)
                batch = _to_batch(spec, index, *tree)
                batch._origin = origin
                if info is not None and self.transform is None:
                    batch._wire = (ticket, tree, spec)
                if sources is not None:
                    self._count_delivered(index, sources)
                if self.transform is not None:
                    # Raises out of this generator: `finally` stops and joins the engine.
                    batch = self.transform(batch)
                self._yielded = index + 1
                yield batch
        finally:
            engine.stop()
            self._active = [e for e in self._active if e is not engine]

    # -- corpus: what was delivered ------------------------------------------------------
    @property
    def source_names(self) -> list[str]:
        """The corpus's source names (``batch.source`` indexes them); empty without a corpus."""
        return [] if self.corpus is None else self.corpus.source_names

    def _count_delivered(self, index: int, sources: np.ndarray) -> None:
        if self._delivered is None or index == 0 or self._delivered[0] != self._epoch:
            self._delivered = (self._epoch, np.zeros(len(self.source_names), np.int64))
        self._delivered[1][:] += np.bincount(sources, minlength=len(self.source_names))

    def delivered(self) -> pd.Series:
        """Cells of each source this loader yielded in its current (or last) epoch.

        Counted from the batches themselves when iterated directly (DataLoader workers
        count their own).

        Returns
        -------
        pandas.Series
            int64 per source name, named ``delivered``.
        """
        counts = np.zeros(len(self.source_names), np.int64) if self._delivered is None else self._delivered[1]
        return pd.Series(counts, index=self.source_names, name="delivered")

    def report(self, columns=(), max_batches: int = 2000):
        """The corpus report for this loader's split, batch and rank configuration.

        Parameters
        ----------
        columns : sequence of str, default ()
            obs columns to count per label.
        max_batches : int, default 2000
            At most this many batches are planned to measure batch proportions.

        Returns
        -------
        CorpusReport
            As :meth:`cellfeed.Corpus.report` gives it.

        Raises
        ------
        ValueError
            The loader was not built from a :class:`cellfeed.Corpus`.
        """
        if self.corpus is None:
            raise ValueError("report() needs a Loader built from a cellfeed.Corpus")
        return self.corpus.report(columns=columns, split=self.split, epoch=self._epoch,
                                  world_size=self.world_size, batch_size=self.batch_size,
                                  block_size=self.block_size, fetch_factor=self.fetch_factor,
                                  drop_last=self.drop_last, remainder=self.remainder,
                                  max_batches=max_batches)
