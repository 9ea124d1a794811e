"""Loader as a torch IterableDataset under torch.utils.data.DataLoader."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import cellfeed
from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import fingerprint

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


@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")
def test_two_workers_torch_sparse_csr(loader_files):
    """output="torch": sparse CSR tensors cross the worker -> main process queue."""
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
