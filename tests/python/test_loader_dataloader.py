"""Loader as a torch IterableDataset under torch.utils.data.DataLoader."""

from __future__ import annotations

import collections
import ctypes

import numpy as np
import pytest

import cellfeed
from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import expected_dense, fingerprint, read_anndata, x_to_dense

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

KW = dict(batch_size=8, block_size=4, fetch_factor=2, seed=21, obs=["cell_type", "n_counts"])
TIMEOUT = 60  # seconds a worker may take for one batch


def direct(loader):
    return [fingerprint(b) for b in loader]


@pytest.mark.parametrize("output", ["scipy", "numpy", "torch", "torch-dense"])
def test_dataloader_without_workers_is_direct_iteration(loader_files, output):
    loader = cellfeed.Loader(loader_files.same, output=output, **KW)
    loader.set_epoch(1)
    expected = direct(loader)
    got = [fingerprint(b) for b in DataLoader(loader, batch_size=None, num_workers=0)]
    assert got == expected
    assert len(DataLoader(loader, batch_size=None)) == len(loader) == len(expected)


def _through_workers(loader, **kw):
    dl = DataLoader(loader, batch_size=None, num_workers=2, timeout=TIMEOUT, **kw)
    return [fingerprint(b) for b in dl]


def _check_once(loader_files, got, expected):
    n = loader_files.n_same
    assert len(got) == len(expected)
    mult = collections.Counter(r for b in got for r in b["rows"])
    assert sorted(mult) == list(range(n)) and max(mult.values()) == 1
    # the same batches as direct iteration, only interleaved across the workers
    key = lambda b: b["index"]  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)


@pytest.mark.parametrize("output", ["scipy", "torch-dense"])
def test_two_workers_every_cell_once(loader_files, output):
    loader = cellfeed.Loader(loader_files.same, output=output, **KW)
    expected = direct(loader)
    got = _through_workers(loader)
    _check_once(loader_files, got, expected)
    # X values and types survive the trip
    first = next(iter(DataLoader(loader, batch_size=None, num_workers=2, timeout=TIMEOUT)))
    if output == "torch-dense":
        assert isinstance(first.X, torch.Tensor) and first.X.dtype == torch.float32
    assert np.asarray(first.rows).dtype == np.int64


# Every warning is an error, but the one deliberate note on machines of <= 4 CPUs
# (test_workers_on_a_small_machine_are_told_once; the upper mark takes precedence).
@pytest.mark.filterwarnings("ignore:cellfeed.Loader in a DataLoader:RuntimeWarning")
@pytest.mark.filterwarnings("error")
def test_two_workers_torch_sparse_csr(loader_files):
    """output="torch": sparse CSR tensors cross the worker -> main process queue, with no
    warning (torch's sparse invariant checks, its beta-feature note)."""
    loader = cellfeed.Loader(loader_files.same, output="torch", **KW)
    expected = direct(loader)
    got = _through_workers(loader)
    _check_once(loader_files, got, expected)


@pytest.mark.parametrize("persistent", [False, True])
def test_workers_follow_set_epoch(loader_files, persistent):
    """set_epoch in the main process reaches the workers, persistent or not."""
    loader = cellfeed.Loader(loader_files.same, output="scipy", **KW)
    dl = DataLoader(loader, batch_size=None, num_workers=2, timeout=TIMEOUT,
                    persistent_workers=persistent)
    for epoch in range(3):
        loader.set_epoch(epoch)
        got = [fingerprint(b) for b in dl]
        ref = cellfeed.Loader(loader_files.same, output="scipy", **KW)
        ref.set_epoch(epoch)
        _check_once(loader_files, got, direct(ref))


def test_spawned_persistent_workers_follow_set_epoch(loader_files):
    """Workers started by spawn get the loader pickled; set_epoch still reaches them."""
    loader = cellfeed.Loader(loader_files.same, output="scipy", **KW)
    dl = DataLoader(loader, batch_size=None, num_workers=2, timeout=TIMEOUT,
                    persistent_workers=True, multiprocessing_context="spawn")
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        got = [fingerprint(b) for b in dl]
        ref = cellfeed.Loader(loader_files.same, output="scipy", **KW)
        ref.set_epoch(epoch)
        _check_once(loader_files, got, direct(ref))


def test_pickled_loader_is_independent(loader_files):
    import copy
    import pickle

    loader = cellfeed.Loader(loader_files.same, output="scipy", **KW)
    loader.set_epoch(4)
    clone = pickle.loads(pickle.dumps(loader))
    deep = copy.deepcopy(loader)
    assert clone.epoch == deep.epoch == 4
    assert direct(clone) == direct(loader) == direct(deep)
    clone.set_epoch(5)
    assert loader.epoch == 4 and deep.epoch == 4


# -- batches through shared memory (cellfeed/_shm.py) --------------------------------------
def _root_base(a):
    a = a.numpy() if isinstance(a, torch.Tensor) else a
    while isinstance(getattr(a, "base", None), np.ndarray):
        a = a.base
    return a.base


def _x_data(X):
    if isinstance(X, torch.Tensor):
        return X.values() if X.layout == torch.sparse_csr else X
    return X.data if hasattr(X, "data") and not isinstance(X, np.ndarray) else X


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. torch's sparse invariant checks
@pytest.mark.parametrize("ctx,persistent", [("fork", False), ("fork", True), ("spawn", True)])
@pytest.mark.parametrize("output", ["scipy", "numpy", "torch", "torch-dense"])
def test_workers_deliver_through_shared_memory(loader_files, output, ctx, persistent):
    """Every output kind arrives as views on a worker's slab, equal to anndata's X."""
    full = expected_dense(read_anndata(loader_files.same),
                          cellfeed.Loader(loader_files.same).var_names)
    loader = cellfeed.Loader(loader_files.same, output=output, **KW)
    dl = DataLoader(loader, batch_size=None, num_workers=2, timeout=TIMEOUT,
                    persistent_workers=persistent, multiprocessing_context=ctx)
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        seen = []
        for b in dl:
            lease = _root_base(b.rows)
            assert type(lease).__name__ == "SlabLease"
            # X lies in the same slab as rows (torch tensors hide their numpy base)
            x = _x_data(b.X)
            ptr = x.data_ptr() if isinstance(x, torch.Tensor) else x.ctypes.data
            assert ctypes.addressof(lease) <= ptr < ctypes.addressof(lease) + ctypes.sizeof(lease)
            rows = np.asarray(b.rows)
            np.testing.assert_array_equal(x_to_dense(b.X), full[rows])
            if output.startswith("torch"):
                assert isinstance(b.obs["n_counts"], torch.Tensor)
            seen.extend(rows.tolist())
        assert sorted(seen) == list(range(loader_files.n_same))


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_held_batches_are_never_overwritten(loader_files, ctx):
    """Epoch 0: the consumer keeps every other batch and drops the rest, so the dropped
    batches' slabs are reused while the kept ones must stay intact. Epoch 1: it keeps
    them all, more per worker than a worker has slabs (_shm.SLOTS): the ring runs out and
    the rest travel inline. Every kept batch, read only at the end, equals anndata's X."""
    from cellfeed import _shm

    full = expected_dense(read_anndata(loader_files.same),
                          cellfeed.Loader(loader_files.same).var_names)
    loader = cellfeed.Loader(loader_files.same, output="scipy",
                             **dict(KW, batch_size=1, fetch_factor=8))
    assert len(loader) > 2 * _shm.SLOTS
    dl = DataLoader(loader, batch_size=None, num_workers=2, timeout=TIMEOUT,
                    persistent_workers=True, multiprocessing_context=ctx)
    for epoch, keep_every in ((0, 2), (1, 1)):
        loader.set_epoch(epoch)
        kept, n, inline = [], 0, 0
        for i, b in enumerate(dl):
            n += 1
            if type(_root_base(b.X.data)).__name__ != "SlabLease":
                inline += 1
            if b.index % keep_every == 0:  # half of each worker's batches
                kept.append(b)
            del b
        assert n == len(loader)
        assert (inline > 0) == (keep_every == 1)
        for b in kept:  # read only now: every later batch had its chance to overwrite
            np.testing.assert_array_equal(b.X.toarray(), full[np.asarray(b.rows)])
        rows = [int(r) for b in kept for r in b.rows]
        assert len(rows) == len(set(rows)) == (len(loader) + keep_every - 1) // keep_every
        del kept


def _worker_threads_seen(batch):
    info = torch.utils.data.get_worker_info()
    return int(batch.index), info.dataset.collection.threads


@pytest.mark.parametrize("num_workers", [1, 2, 3])
def test_worker_engines_share_the_cores(loader_files, num_workers):
    import os

    cores = len(os.sched_getaffinity(0))
    loader = cellfeed.Loader(loader_files.same, transform=_worker_threads_seen, **KW)
    dl = DataLoader(loader, batch_size=None, num_workers=num_workers, timeout=TIMEOUT)
    seen = {threads for _, threads in dl}
    assert seen == {max(1, cores // num_workers)}
    assert cellfeed.worker_threads(num_workers) == max(1, cores // num_workers)
    # threads= given by the user is kept in the workers
    loader = cellfeed.Loader(loader_files.same, transform=_worker_threads_seen, threads=3, **KW)
    dl = DataLoader(loader, batch_size=None, num_workers=num_workers, timeout=TIMEOUT)
    assert {threads for _, threads in dl} == {3}


def test_restarted_workers_warn_once(loader_files, tmp_path):
    """persistent_workers=False restarts the workers every epoch: said once, on stderr of
    the worker that notices it (a fresh process, to read its whole stderr)."""
    import subprocess
    import sys

    code = f"""
import warnings, cellfeed, cellfeed.loader
from torch.utils.data import DataLoader
cellfeed.loader._SMALL_MACHINE_CPUS = 0  # only the restart note here (forked workers)
loader = cellfeed.Loader({[str(p) for p in loader_files.same]!r}, **{KW!r})
for persistent in (True, False):
    dl = DataLoader(loader, batch_size=None, num_workers=2, persistent_workers=persistent)
    for epoch in range(3):
        loader.set_epoch(epoch)
        print(persistent, epoch, sum(len(b) for b in dl), flush=True)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = loader_files.n_same
    assert proc.stdout.split() == [w for p in ("True", "False") for e in range(3)
                                   for w in (p, str(e), str(n))]
    assert proc.stderr.count("persistent_workers=True") == 1, proc.stderr
    assert proc.stderr.count("Warning") == 1, proc.stderr


@pytest.mark.parametrize("small,ctx", [(True, "fork"), (True, "spawn"), (False, "fork")])
def test_workers_on_a_small_machine_are_told_once(loader_files, small, ctx):
    """Where the engine alone fills every CPU (at most _SMALL_MACHINE_CPUS), the first
    worker says once that workers cannot add decoding there; nothing from 5 CPUs up.
    The CPU count is what os.sched_getaffinity gives, so taskset pins it in the test."""
    import os
    import subprocess
    import sys

    cpus = 1 if small else 5
    if not small and len(os.sched_getaffinity(0)) < cpus:
        # the threshold itself is moved below this machine's CPUs instead
        cpus = None
    code = f"""
import cellfeed, cellfeed.loader
from torch.utils.data import DataLoader
if {cpus is None}:
    cellfeed.loader._SMALL_MACHINE_CPUS = 0
loader = cellfeed.Loader({[str(p) for p in loader_files.same]!r}, **{KW!r})
dl = DataLoader(loader, batch_size=None, num_workers=2, persistent_workers=True,
                multiprocessing_context={ctx!r})
for epoch in range(3):
    loader.set_epoch(epoch)
    print(sum(len(b) for b in dl), flush=True)
"""
    cmd = [sys.executable, "-c", code]
    if cpus is not None:
        cmd = ["taskset", "-c", ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:cpus])] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(loader_files.n_same)] * 3
    note = "cellfeed.Loader in a DataLoader with 2 worker(s) on a machine with"
    assert proc.stderr.count(note) == (1 if small else 0), proc.stderr
    if small:
        assert f"with 2 worker(s) on a machine with {cpus} CPU(s)" in proc.stderr
