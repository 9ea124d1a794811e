"""cellfeed.lightning.CellfeedDataModule under a real lightning.Trainer on CPU: one
process, and two processes with the DDP strategy (gloo); each run is a fresh process
(tests/python/lightning_run.py). The reference for what each step must see is the
cellfeed.Loader iterated directly with the same rank and epoch (itself checked against
anndata in test_loader.py), and full coverage of the cells."""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import numpy as np
import pytest

import cellfeed
from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import HERE, expected_obs, read_anndata

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

KW = dict(batch_size=8, block_size=2, fetch_factor=2, seed=3, output="torch")


def _fit(tmp_path, name, loader_files, stopped=False, **spec):
    spec = dict(dict(paths=[str(p) for p in loader_files.same], loader=KW, max_epochs=2,
                     out=str(tmp_path / name)), **spec)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(HERE / "lightning_run.py"), str(path)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    if not stopped:
        assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = spec.get("devices", 1)
    return [json.loads((tmp_path / f"{name}.rank{r}.json").read_text()) for r in range(ranks)]


def _direct(paths, epoch, **kw):
    loader = cellfeed.Loader(paths, **dict(KW, **kw))
    loader.set_epoch(epoch)
    return [[epoch, int(b.index), [int(r) for r in b.rows]] for b in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_one_process_epochs_and_exact_resume(loader_files, tmp_path, num_workers):
    (full,) = _fit(tmp_path, "full", loader_files, num_workers=num_workers)
    n_batches = full["len"]
    expected = _direct(loader_files.same, 0) + _direct(loader_files.same, 1)
    if num_workers:  # the workers' batches interleave: the same batches per epoch
        assert sorted(full["steps"]) == sorted(expected)
    else:
        assert full["steps"] == expected
    assert len(full["steps"]) == 2 * n_batches
    for e in (0, 1):  # every cell once per epoch
        rows = sorted(r for s in full["steps"] if s[0] == e for r in s[2])
        assert rows == list(range(loader_files.n_same))
    for k in (5, n_batches + 3):  # stop inside epoch 0, and inside epoch 1
        # the run saves a checkpoint after step k and goes on (then "crashes")
        (head,) = _fit(tmp_path, f"head{k}", loader_files, num_workers=num_workers,
                       max_steps=k + 2, ckpt_every=k, ckpt_dir=str(tmp_path / f"c{k}"))
        assert head["steps"] == full["steps"][:k + 2]
        ckpt = str(tmp_path / f"c{k}" / f"step={k}.ckpt")
        (rest,) = _fit(tmp_path, f"rest{k}", loader_files, num_workers=num_workers,
                       ckpt_in=ckpt)
        if num_workers == 0:
            assert rest["steps"] == full["steps"][k:]
        else:  # exactly the batches not consumed; the workers' first round may reorder
            assert collections.Counter(map(repr, rest["steps"])) == \
                collections.Counter(map(repr, full["steps"][k:]))


def test_ddp_two_processes(loader_files, tmp_path):
    runs = _fit(tmp_path, "ddp", loader_files, devices=2, strategy="ddp")
    assert [r["rank"] for r in runs] == [0, 1]
    assert all(r["world_size"] == 2 and r["loader_world_size"] == 2 for r in runs)
    assert [r["loader_rank"] for r in runs] == [0, 1]
    assert runs[0]["len"] == runs[1]["len"]
    assert len(runs[0]["steps"]) == len(runs[1]["steps"]) == 2 * runs[0]["len"]
    for r in runs:
        expected = []
        for e in (0, 1):
            expected += _direct(loader_files.same, e, rank=r["rank"], world_size=2)
        assert r["steps"] == expected
    for e in (0, 1):  # the ranks together cover every cell (padding may repeat a few)
        rows = [x for r in runs for s in r["steps"] if s[0] == e for x in s[2]]
        assert set(rows) == set(range(loader_files.n_same))
        assert len(rows) - loader_files.n_same < 2 * KW["batch_size"]


def test_corpus_splits_feed_train_and_val(loader_files, tmp_path):
    adatas = read_anndata(loader_files.same)
    cell_type = expected_obs(adatas, "cell_type")
    held = sorted({str(v) for v in cell_type if v is not None})[:1]
    corpus = {"sources": [{"name": "all", "files": [str(p) for p in loader_files.same]}],
              "split": {"by": "cell_type", "val": held}}
    (run,) = _fit(tmp_path, "corpus", loader_files, corpus=corpus, max_epochs=1)
    train_rows = {x for s in run["steps"] for x in s[2]}
    val_rows = set(run["val_rows"])
    is_val = np.array([v is not None and str(v) in held for v in cell_type])
    assert val_rows == set(np.flatnonzero(is_val).tolist())
    assert train_rows == set(np.flatnonzero(~is_val).tolist())


def test_sigterm_checkpoint_and_resume(loader_files, tmp_path):
    """A real SIGTERM during training: Lightning stops at the next batch boundary and
    OnExceptionCheckpoint saves; fit(ckpt_path=...) then delivers exactly the batches the
    stopped run did not train on."""
    (full,) = _fit(tmp_path, "full", loader_files)
    (head,) = _fit(tmp_path, "head", loader_files, stopped=True, sigterm_at=5,
                   ckpt_dir=str(tmp_path / "c"))
    k = len(head["steps"])
    assert 5 <= k < full["len"] and head["steps"] == full["steps"][:k]
    (rest,) = _fit(tmp_path, "rest", loader_files, ckpt_in=str(tmp_path / "c" / "on_exception.ckpt"))
    assert rest["steps"] == full["steps"][k:]


def test_ddp_checkpoint_resumes_on_one_process(loader_files, tmp_path):
    """A mid-epoch checkpoint of 2 DDP processes resumed by 1 process (elastic): the rest of
    that epoch is every cell the 2 ranks had not trained on, once; the next epoch is a
    1-process epoch."""
    (head, head1) = _fit(tmp_path, "head", loader_files, devices=2, strategy="ddp",
                         max_steps=5, ckpt_every=3, ckpt_dir=str(tmp_path / "c"))
    (rest,) = _fit(tmp_path, "rest", loader_files, ckpt_in=str(tmp_path / "c" / "step=3.ckpt"))
    before = [x for h in (head, head1) for s in h["steps"][:3] for x in s[2]]
    after = [x for s in rest["steps"] if s[0] == 0 for x in s[2]]
    assert not set(before) & set(after)
    assert sorted(before + after) == list(range(loader_files.n_same))
    assert [s for s in rest["steps"] if s[0] == 1] == _direct(loader_files.same, 1)
