"""Elastic resume under real torchrun processes (gloo, CPU; tests/python/elastic_worker.py).

A 2-rank job is stopped mid-epoch by a real signal sent to torchrun (SIGTERM, or SIGUSR1
forwarded as SLURM's requeue signal would be; or SIGKILL of the whole job after a periodic
checkpoint), then resumed with 1, 2 or 3 ranks, with DataLoader workers on one side only,
and preempted twice. Counted over every process's logged batches, the interrupted epoch
delivers each of its cells exactly once (plus the padding of the last pass), every rank of
a pass gets the same number of batches, and the next epoch is what a job started at the new
world size delivers. The references: the files' cell count (anndata), the corpus's declared
lanes, the uninterrupted run's batches and each cell's model inputs in it.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cellfeed
from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import HERE

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

KW = dict(batch_size=4, block_size=2, fetch_factor=2, seed=9)
EPOCH = 1


def _torchrun(tmp, name, world, *, sig=None, kill_after_checkpoint=False, **spec):
    """Runs the worker under torchrun; with `sig`, sends it to torchrun once rank 0 has
    taken `marker_after` steps. Returns each rank's logged records."""
    out = tmp / name
    out.mkdir()
    spec = dict(dict(epoch=EPOCH, epochs=2, resume=None, checkpoint=str(out / "ckpt.pt"),
                     every=0, num_workers=0, out=str(out)), **spec)
    if sig is not None or kill_after_checkpoint:
        spec.update(marker=str(out / "marker"), step_sleep=0.3)
        spec.setdefault("marker_after", 3)
    (out / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE)] + [p for p in os.environ.get(
                   "PYTHONPATH", "").split(os.pathsep) if p]))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world}",
           "--standalone", "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1", str(HERE / "elastic_worker.py"), str(out / "spec.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        if sig is not None or kill_after_checkpoint:
            deadline = time.monotonic() + 240
            wait_for = out / "marker" if sig is not None else out / "ckpt.pt"
            while not wait_for.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert wait_for.exists(), proc.communicate()[0][-3000:]
            if sig is not None:
                proc.send_signal(sig)
            else:  # the whole job at once, as a scheduler's kill (torchrun starts each
                # rank in a process group of its own, with its DataLoader workers)
                groups = [proc.pid] + [os.getpgid(int((out / f"pid{r}").read_text()))
                                       for r in range(world)]
                for g in groups:
                    os.killpg(g, signal.SIGKILL)
        text = proc.communicate(timeout=240)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if sig is None and not kill_after_checkpoint:
        assert proc.returncode == 0, text[-3000:]
    logs = []
    for r in range(world):
        lines = (out / f"rank{r}.jsonl").read_text().splitlines()
        logs.append([json.loads(x) for x in lines if x.endswith("}")])
    if sig is not None:
        for r, log in enumerate(logs):
            assert "preempted" in log[-1], (r, log[-1], text[-3000:])
            assert log[-1]["signal"] == sig
    return logs, out / "ckpt.pt"


def _batches(logs, epoch):
    """Per rank: the batches of `epoch`."""
    return [[rec for rec in log if rec.get("epoch") == epoch] for log in logs]


def _lens(logs, epoch):
    return [next(r["len"] for r in log if r.get("start") == epoch) for log in logs]


def _check_epoch(parts, want: collections.Counter, world_last: int):
    """parts: per pass, per rank, the batches it delivered of the interrupted epoch. Every
    cell owed exactly once: the passes before the last never repeat a cell of another pass;
    the last adds fewer than world_last repeats (its padding) and nothing else."""
    seen = collections.Counter()
    for per_rank in parts:
        rows = collections.Counter(r for rank in per_rank for b in rank for r in b["rows"])
        assert not set(rows) & set(seen), "a cell delivered before a resume came again"
        seen += rows
    assert set(seen) == set(want), "cells lost or foreign"
    extra = sum(seen.values()) - sum(want.values())
    assert 0 <= extra < sum(len(pr) for pr in parts[:-1]) + world_last
    counts = [len(rank) for rank in parts[-1]]
    assert len(set(counts)) == 1, f"ranks of the resumed pass got {counts} batches"
    return seen


def _direct(paths_or_corpus, epoch, world, **kw):
    """What a job started at `world` delivers in `epoch`: per rank, the rows of each batch."""
    out = []
    for r in range(world):
        loader = cellfeed.Loader(paths_or_corpus, rank=r, world_size=world, **kw)
        loader.set_epoch(epoch)
        out.append([[int(x) for x in b.rows] for b in loader])
    return out


def _rows_of(per_rank):
    """Per rank, the rows of each batch in batch order (DataLoader workers interleave)."""
    return [[b["rows"] for b in sorted(rank, key=lambda b: b["index"])] for rank in per_rank]


@pytest.fixture(scope="module")
def plain(loader_files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("elastic_plain")
    paths = [str(p) for p in loader_files.same]
    first, ckpt = _torchrun(tmp, "first", 2, sig=signal.SIGTERM, paths=paths, kwargs=KW)
    return dict(tmp=tmp, paths=paths, first=first, ckpt=ckpt, n=loader_files.n_same)


@pytest.mark.parametrize("world,workers", [(1, 2), (3, 0)])
def test_plain_collection_resumes_on_another_world_size(plain, world, workers):
    ref = collections.Counter(range(plain["n"]))
    logs, _ = _torchrun(plain["tmp"], f"resume{world}", world, paths=plain["paths"], kwargs=KW,
                        resume=str(plain["ckpt"]), num_workers=workers)
    before = _batches(plain["first"], EPOCH)
    assert 0 < sum(map(len, before)) < 2 * len(cellfeed.Loader(plain["paths"], world_size=2, rank=0, **KW))
    after = _batches(logs, EPOCH)
    _check_epoch([before, after], ref, world)
    assert _lens(logs, EPOCH) == [len(a) for a in after]
    # The next epoch is a plain one at the new world size.
    assert _rows_of(_batches(logs, EPOCH + 1)) == _direct(plain["paths"], EPOCH + 1, world, **KW)


def test_plain_collection_same_world_size_continues_the_run(plain):
    logs, _ = _torchrun(plain["tmp"], "resume2", 2, paths=plain["paths"], kwargs=KW,
                        resume=str(plain["ckpt"]))
    full = _direct(plain["paths"], EPOCH, 2, **KW)
    before = _rows_of(_batches(plain["first"], EPOCH))
    after = _rows_of(_batches(logs, EPOCH))
    for r in range(2):
        assert before[r] + after[r] == full[r]  # exactly the uninterrupted run
    assert _rows_of(_batches(logs, EPOCH + 1)) == _direct(plain["paths"], EPOCH + 1, 2, **KW)


def test_preempted_twice_with_workers_on_one_side(plain):
    # The 3-rank resume (DataLoader workers) is itself preempted, then finished on 1 rank.
    mid, ckpt = _torchrun(plain["tmp"], "mid3", 3, sig=signal.SIGTERM, paths=plain["paths"],
                          kwargs=KW, resume=str(plain["ckpt"]), num_workers=2, marker_after=1)
    state = torch.load(ckpt, weights_only=False)["loader"]
    assert len(state["passes"]) == 1 and state["config"]["world_size"] == 3
    last, _ = _torchrun(plain["tmp"], "last1", 1, paths=plain["paths"], kwargs=KW,
                        resume=str(ckpt))
    parts = [_batches(plain["first"], EPOCH), _batches(mid, EPOCH), _batches(last, EPOCH)]
    _check_epoch(parts, collections.Counter(range(plain["n"])), 1)


def test_sigkill_after_a_checkpoint_and_another_batch_size(plain):
    """The job dies without warning (SIGKILL of every process) after a periodic
    checkpoint; the batches after that checkpoint are delivered again by the resumed job
    (their training was lost too), with 3 ranks and batch size 6."""
    tmp = plain["tmp"]
    died, ckpt = _torchrun(tmp, "killed", 2, kill_after_checkpoint=True, paths=plain["paths"],
                           kwargs=KW, every=3, marker_after=1)
    steps = torch.load(ckpt, weights_only=False)["steps"]
    kw3 = dict(KW, batch_size=6)
    logs, _ = _torchrun(tmp, "after_kill", 3, paths=plain["paths"], kwargs=kw3, resume=str(ckpt))
    before = [b[:steps] for b in _batches(died, EPOCH)]
    assert steps % 3 == 0 and all(len(b) == steps for b in before)
    parts = [before, _batches(logs, EPOCH)]
    _check_epoch(parts, collections.Counter(range(plain["n"])), 3)
    assert all(len(r) == 6 for rank in _rows_of(parts[1]) for r in rank[:-1])
    assert _rows_of(_batches(logs, EPOCH + 1)) == _direct(plain["paths"], EPOCH + 1, 3, **kw3)


def _corpus_toml(root: Path, files) -> Path:
    """Two sources with exact counts, one filtered (written as tests/python/test_corpus.py
    writes them): 60 of the 'score > 0' cells of two files, 40 cells of another."""
    path = root / "elastic.toml"
    path.write_text(f"""
seed = 2
subsample = "fixed"

[[source]]
name = "a"
files = ["{files[0]}", "{files[2]}"]
where = "score > 0"
cells = 30

[[source]]
name = "b"
files = ["{files[3]}"]
cells = 25
""")
    return path


def test_corpus_counts_stay_exact(loader_files, tmp_path):
    """SIGUSR1 (SLURM's requeue signal, forwarded by torchrun) stops a 2-rank corpus job;
    3 ranks finish the epoch: the declared per-source counts, each lane cell once."""
    toml = _corpus_toml(tmp_path, [str(p) for p in loader_files.same])
    corpus = cellfeed.Corpus.from_toml(toml)
    want = collections.Counter(int(x) for _, _, rr in corpus.epoch_rows(epoch=EPOCH) for x in rr)
    assert sum(want.values()) == 55
    first, ckpt = _torchrun(tmp_path, "first", 2, sig=signal.SIGUSR1, corpus_toml=str(toml),
                            kwargs=KW, marker_after=2)
    logs, _ = _torchrun(tmp_path, "resume3", 3, corpus_toml=str(toml), kwargs=KW,
                        resume=str(ckpt))
    parts = [_batches(first, EPOCH), _batches(logs, EPOCH)]
    seen = _check_epoch(parts, want, 3)
    sources = collections.Counter(s for p in parts for rank in p for b in rank for s in b["sources"])
    extra = sum(seen.values()) - 55
    assert sources[0] + sources[1] == 55 + extra
    assert sources[0] >= 30 and sources[1] >= 25 and extra < 3
    assert _rows_of(_batches(logs, EPOCH + 1)) == _direct(corpus, EPOCH + 1, 3, **KW)


def test_model_inputs_are_the_same_per_cell(loader_files, tmp_path):
    """With model inputs, every cell's tensors after a resume on 3 ranks are bitwise those
    of the uninterrupted 2-rank run (randomness keyed by cell, not by position)."""
    paths = [str(p) for p in loader_files.same]
    genes = [str(g) for g in cellfeed.open(paths).var_names][:30]
    full, _ = _torchrun(tmp_path, "full", 2, paths=paths, kwargs=KW, inputs=genes, epochs=1)
    first, ckpt = _torchrun(tmp_path, "first", 2, sig=signal.SIGTERM, paths=paths, kwargs=KW,
                            inputs=genes, epochs=1)
    logs, _ = _torchrun(tmp_path, "resume3", 3, paths=paths, kwargs=KW, inputs=genes,
                        resume=str(ckpt), epochs=1)
    ref = {}
    for rank in _batches(full, EPOCH):
        for b in rank:
            for row, d in zip(b["rows"], b["inputs"]):
                ref[row] = d
    assert len(ref) == loader_files.n_same
    parts = [_batches(first, EPOCH), _batches(logs, EPOCH)]
    _check_epoch(parts, collections.Counter(range(loader_files.n_same)), 3)
    compared = 0
    for p in parts:
        for rank in p:
            for b in rank:
                assert len(b["inputs"]) == len(b["rows"])
                for row, d in zip(b["rows"], b["inputs"]):
                    assert d == ref[row], f"cell {row}'s inputs changed"
                    compared += 1
    assert compared >= loader_files.n_same


def test_ranks_that_got_differently_far(loader_files):
    """A gathered state whose ranks consumed different batches (no DDP lockstep: "ranks",
    as cellfeed.elastic.gather_state_dict records it) resumes rank by rank: at the same
    world size each rank continues from its own point; at another, the cells none of
    them consumed are shared out once."""
    paths = [str(p) for p in loader_files.same]
    olds = [cellfeed.Loader(paths, rank=r, world_size=2, **KW) for r in range(2)]
    took = {0: 4, 1: 7}
    consumed, states = [], []
    for r, ld in enumerate(olds):
        ld.set_epoch(EPOCH)
        for i, b in enumerate(ld):
            consumed += b.rows.tolist()
            if i + 1 == took[r]:
                break
        states.append(ld.state_dict())
    assert [s["batches_yielded"] for s in states] == [4, 7]
    merged = dict(states[0], ranks=[[4], [7]])  # what gather_state_dict returns here
    same = cellfeed.Loader(paths, rank=1, world_size=2, **KW)
    same.load_state_dict(merged)
    ref = cellfeed.Loader(paths, rank=1, world_size=2, **KW)
    ref.set_epoch(EPOCH)
    assert [b.rows.tolist() for b in same] == [b.rows.tolist() for b in ref][7:]
    rest = []
    for r in range(3):
        ld = cellfeed.Loader(paths, rank=r, world_size=3, **KW)
        ld.load_state_dict(merged)
        rest += [x for b in ld for x in b.rows.tolist()]
    assert not set(rest) & set(consumed)
    assert set(rest) | set(consumed) == set(range(loader_files.n_same))
    assert len(rest) - len(set(rest)) < 3


def test_refused_states(loader_files):
    """Other files, block size or remainder policy: refused, naming both configurations."""
    paths = [str(p) for p in loader_files.same]
    ld = cellfeed.Loader(paths, rank=0, world_size=2, **KW)
    ld.set_epoch(EPOCH)
    next(iter(ld))
    state = ld.state_dict()
    for other in (cellfeed.Loader(paths[:3], world_size=3, rank=0, **KW),
                  cellfeed.Loader(paths, world_size=3, rank=0, **dict(KW, block_size=4)),
                  cellfeed.Loader(paths, world_size=3, rank=0, remainder="drop", **KW)):
        with pytest.raises(ValueError, match="another configuration"):
            other.load_state_dict(state)
