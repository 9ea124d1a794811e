"""Resume with DataLoader workers, each run in a fresh process (tests/python/resume_workers.py).

torchdata's StatefulDataLoader with 2 persistent workers, stopped after 100 batches and
resumed in a new process, yields exactly the rest of the uninterrupted run. With torch's
plain DataLoader, Loader.state_dict(after=batch) taken from the last consumed batch and
Loader.load_state_dict in the new process (reaching its persistent workers) yield exactly
the batches not consumed, with 2 workers, 1 worker or none. The reference for "the rest"
is the uninterrupted run, checked itself against direct iteration and full coverage.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import pytest

import cellfeed
from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import HERE

torch = pytest.importorskip("torch")

# n = 131 cells, batch 1: 131 batches, fetches of 4 batches shared by the workers.
KW = dict(batch_size=1, block_size=2, fetch_factor=4, seed=5, obs=["n_counts"])
EPOCH = 2
STOP = 100


def _run(tmp_path, name, loader_files, **spec):
    spec = dict(dict(paths=[str(p) for p in loader_files.same], kwargs=KW, epoch=EPOCH,
                     dataloader="plain", num_workers=2, context="fork", stop=None,
                     state_in=None, state_out=str(tmp_path / f"{name}.state")), **spec)
    spec_path, out = tmp_path / f"{name}.json", tmp_path / f"{name}.out.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(HERE / "resume_workers.py"), str(spec_path),
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [tuple(b) for b in json.loads(out.read_text())["batches"]], spec["state_out"]


def _direct(loader_files):
    loader = cellfeed.Loader(loader_files.same, **KW)
    loader.set_epoch(EPOCH)
    return {int(b.index): (int(b.index),) + tuple(int(r) for r in b.rows) for b in loader}


def _check_full(full, direct, n):
    assert len(full) == len(direct) > STOP
    assert sorted(full) == sorted(direct.values())  # the same batches, interleaved
    assert sorted(r for b in full for r in b[1:]) == list(range(n))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_stateful_dataloader_resumes_exactly(loader_files, tmp_path, context):
    pytest.importorskip("torchdata")
    common = dict(dataloader="stateful", context=context)
    full, _ = _run(tmp_path, "full", loader_files, **common)
    _check_full(full, _direct(loader_files), loader_files.n_same)
    head, state = _run(tmp_path, "head", loader_files, stop=STOP, **common)
    assert head == full[:STOP]
    rest, _ = _run(tmp_path, "rest", loader_files, state_in=state, **common)
    assert rest == full[STOP:]


@pytest.mark.parametrize("context,resume_workers", [("fork", 2), ("fork", 0), ("spawn", 2)])
def test_plain_dataloader_resumes_from_the_last_batch(loader_files, tmp_path, context,
                                                      resume_workers):
    full, _ = _run(tmp_path, "full", loader_files, context=context)
    _check_full(full, _direct(loader_files), loader_files.n_same)
    for stop in (STOP, 7):  # the last consumed batch from worker 1, and from worker 0
        head, state = _run(tmp_path, f"head{stop}", loader_files, stop=stop, context=context)
        assert head == full[:stop]
        rest, _ = _run(tmp_path, f"rest{stop}", loader_files, state_in=state,
                       num_workers=resume_workers, context=context,
                       dataloader="plain" if resume_workers else "none")
        # exactly the batches not consumed (the order of workers' first round may differ)
        assert collections.Counter(rest) == collections.Counter(full[stop:])
        if resume_workers == 0:
            assert rest == sorted(full[stop:])  # direct iteration: in index order


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_load_state_dict_reaches_persistent_workers(loader_files, context):
    """Persistent workers already running when load_state_dict is called in the training
    process: their next pass starts where the state says, and the one after from 0."""
    loader = cellfeed.Loader(loader_files.same, **KW)
    loader.set_epoch(EPOCH)
    dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2, timeout=120,
                                     persistent_workers=True, multiprocessing_context=context)
    full = [(int(b.index),) + tuple(int(r) for r in b.rows) for b in dl]  # workers started
    consumed = []
    for b in dl:
        consumed.append((int(b.index),) + tuple(int(r) for r in b.rows))
        if len(consumed) == 30:
            state = loader.state_dict(after=b)
            break
    assert consumed == full[:30]
    other = cellfeed.Loader(loader_files.same, **dict(KW, seed=99))  # the state carries the seed
    dl2 = torch.utils.data.DataLoader(other, batch_size=None, num_workers=2, timeout=120,
                                      persistent_workers=True, multiprocessing_context=context)
    assert sum(1 for _ in dl2) == len(full)  # workers running, with seed 99
    other.load_state_dict(state)
    rest = [(int(b.index),) + tuple(int(r) for r in b.rows) for b in dl2]
    assert collections.Counter(rest) == collections.Counter(full[30:])
    assert [(int(b.index),) + tuple(int(r) for r in b.rows) for b in dl2] == full


def test_state_after_a_batch_of_another_loader_layout_is_refused(loader_files):
    loader = cellfeed.Loader(loader_files.same, **KW)
    b = next(iter(loader))
    b._origin = (EPOCH, 1, 2)  # batch 0 is worker 0's
    with pytest.raises(ValueError, match="did not come from DataLoader worker 1 of 2"):
        loader.state_dict(after=b)
