"""Loader under real torch.distributed: two ranks started by torchrun (gloo, CPU)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import HERE

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

WORLD = 2
CONFIGS = {
    "drop": dict(batch_size=8, block_size=4, fetch_factor=3, seed=3, remainder="drop"),
    "pad": dict(batch_size=8, block_size=4, fetch_factor=3, seed=3, remainder="pad"),
    "pad_noshuffle": dict(batch_size=5, block_size=2, fetch_factor=2, shuffle=False,
                          remainder="pad"),
    "drop_last": dict(batch_size=8, block_size=1, fetch_factor=2, seed=1, drop_last=True,
                      remainder="drop"),
}


@pytest.fixture(scope="module")
def dist_results(loader_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    spec = out / "spec.json"
    spec.write_text(json.dumps({"paths": [str(p) for p in loader_files.same],
                                "configs": CONFIGS}))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
           "--standalone", str(HERE / "dist_worker.py"), str(out), str(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {}
    for name in CONFIGS:
        results[name] = [json.loads(Path(out, f"{name}.rank{r}.json").read_text())
                         for r in range(WORLD)]
    return results


@pytest.mark.parametrize("name", list(CONFIGS))
def test_ranks_from_torch_distributed(dist_results, loader_files, name):
    recs = dist_results[name]
    n = loader_files.n_same
    cfg = CONFIGS[name]
    bs = cfg["batch_size"]
    # rank and world size came from torch.distributed
    assert [r["loader_rank"] for r in recs] == list(range(WORLD))
    assert all(r["loader_world_size"] == WORLD for r in recs)
    # equal batch counts, equal to len(loader)
    counts = [len(r["batches"]) for r in recs]
    assert counts[0] == counts[1] == recs[0]["len"] == recs[1]["len"]
    per_rank = [[c for b in r["batches"] for c in b] for r in recs]
    slice_len = (n + WORLD - 1) // WORLD if cfg["remainder"] == "pad" else n // WORLD
    if cfg.get("drop_last"):
        assert counts[0] == slice_len // bs
        assert all(len(b) == bs for r in recs for b in r["batches"])
    else:
        assert counts[0] == -(-slice_len // bs)
        assert all(len(c) == slice_len for c in per_rank)
    allcells = per_rank[0] + per_rank[1]
    mult = collections.Counter(allcells)
    assert all(0 <= c < n for c in mult)
    if cfg["remainder"] == "drop":
        assert max(mult.values()) == 1  # disjoint, no repeats
        if not cfg.get("drop_last"):
            assert n - len(mult) < WORLD
    else:
        assert set(mult) == set(range(n))  # every cell
        dups = sum(v - 1 for v in mult.values())
        assert dups < WORLD
        assert dups == WORLD * slice_len - n
    if not cfg.get("shuffle", True):
        # streaming: rank 0 takes the start of the file-order sequence
        assert per_rank[0] == list(range(slice_len))
