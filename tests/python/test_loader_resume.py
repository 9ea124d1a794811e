"""Loader.state_dict / load_state_dict: a new process continues the exact sequence."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cellfeed
from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import HERE, fingerprint

# n = 131, fetches of 8 * 3 = 24 cells: 17 batches, 6 fetches.
KW = dict(batch_size=8, block_size=4, fetch_factor=3, seed=77,
          obs=["cell_type", "n_counts", "score"])
# 0: start; 3, 6, 15: fetch boundaries; 4, 8, 16: inside a fetch; 17: the end.
KS = [0, 3, 4, 6, 8, 15, 16, 17]
EPOCH = 3


def _states_and_batches(paths, **kw):
    """Iterate one epoch, taking state_dict() after k batches for every k in KS."""
    loader = cellfeed.Loader(paths, **kw)
    loader.set_epoch(EPOCH)
    states, batches = {}, []
    if 0 in KS:
        states[0] = loader.state_dict()
    for batch in loader:
        batches.append(fingerprint(batch))
        if len(batches) in KS:
            states[len(batches)] = json.loads(json.dumps(loader.state_dict()))
    return states, batches


@pytest.mark.parametrize("output", ["scipy", "torch-dense"])
def test_resume_in_a_fresh_process(loader_files, tmp_path, output):
    if output.startswith("torch"):
        pytest.importorskip("torch")
    paths = [str(p) for p in loader_files.same]
    kw = dict(KW, output=output)
    states, batches = _states_and_batches(paths, **kw)
    assert len(batches) == 17 and sorted(states) == KS
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"paths": paths, "kwargs": kw,
                                "states": [states[k] for k in KS]}))
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(HERE / "loader_helpers.py"), "resume",
                           str(spec), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for k, resumed in zip(KS, result["results"]):
        assert resumed == batches[k:], f"resume after {k} batches"
    assert result["mismatch"] == "ValueError"


def test_resume_in_process_and_state_contents(loader_files):
    states, batches = _states_and_batches(loader_files.same, **KW)
    st = states[4]
    assert st["epoch"] == EPOCH and st["batches_yielded"] == 4 and st["seed"] == 77
    # the state carries the seed: a loader made with another seed continues the same way
    fresh = cellfeed.Loader(loader_files.same, **dict(KW, seed=1))
    fresh.load_state_dict(st)
    assert [fingerprint(b) for b in fresh] == batches[4:]
    # after the resumed epoch, a new iteration of the same epoch starts from batch 0
    assert [fingerprint(b) for b in fresh] == batches
    assert fresh.epoch == EPOCH
    # state after the resumed pass is at the end of the epoch
    assert fresh.state_dict()["batches_yielded"] == 17


def test_resume_after_break(loader_files):
    """The usual training-loop case: break out, save, resume in a new loader."""
    loader = cellfeed.Loader(loader_files.same, **KW)
    loader.set_epoch(EPOCH)
    ref = cellfeed.Loader(loader_files.same, **KW)
    ref.set_epoch(EPOCH)
    full = [fingerprint(b) for b in ref]
    for i, _ in enumerate(loader):
        if i == 4:
            break
    state = loader.state_dict()
    assert state["batches_yielded"] == 5
    other = cellfeed.Loader(loader_files.same, **KW)
    other.load_state_dict(state)
    assert [fingerprint(b) for b in other] == full[5:]


@pytest.mark.parametrize("change", [
    dict(block_size=2), dict(shuffle=False), dict(drop_last=True),
    dict(remainder="drop", world_size=2, rank=0), "files",
])
def test_mismatched_configuration_is_refused(loader_files, change):
    states, _ = _states_and_batches(loader_files.same, **KW)
    if change == "files":
        other = cellfeed.Loader(loader_files.same[:3], **KW)
    else:
        other = cellfeed.Loader(loader_files.same, **dict(KW, **change))
    with pytest.raises(ValueError):
        other.load_state_dict(states[4])


@pytest.mark.parametrize("change", [dict(batch_size=16), dict(fetch_factor=4),
                                    dict(rank=1, world_size=2)])
def test_world_size_and_batch_size_may_change(loader_files, change):
    """Another world size, batch size or fetch factor resumes the epoch elastically: the
    cells not consumed before the state, once (test_elastic_resume.py covers it fully)."""
    states, batches = _states_and_batches(loader_files.same, **KW)
    other = cellfeed.Loader(loader_files.same, **dict(KW, **change))
    other.load_state_dict(states[4])
    consumed = [r for b in batches[:4] for r in b["rows"]]
    rest = [r for b in other for r in b.rows.tolist()]
    if "world_size" in change:  # this rank's share only: disjoint from the consumed cells
        assert not set(rest) & set(consumed) and len(rest) == (131 - 32 + 1) // 2
    else:
        assert sorted(consumed + rest) == list(range(131))
    assert len(other) == -(-len(rest) // other.batch_size)
