"""Declaring a corpus over a 100M-cell collection: time and memory of the selection and
the plan.

    python bench/corpus_scale_bench.py [--cells 100000000] [--data-dir /tmp/cellfeed_bench]

The collection is 14 Tahoe-like plates with one stored value per cell (bench/run_all.py's
100M collection: tahoe_like.write_tiny_plate), with the drug and pcnt_mito obs columns to
filter on. Each step runs in a fresh process so its peak RSS is its own:
- open: the collection alone (the baseline);
- filter: a corpus keeping half the drugs and pcnt_mito < 10 (~48% of the cells);
- mixture: three sources (plates 1-5, 6-10, 11-14) with exact counts of 20/15/10% of the cells;
- plan: the mixture's Loader (batch 64, block 16, fetch factor 64), its epoch-0 plan and
  first batch;
- workers: the filter's Loader in a torch DataLoader with 2 forked workers: the seconds
  from iter() to the first batch (each worker opens the files again; it keeps the
  evaluated corpus rather than evaluating the filter again, which "filter" times);
- spawn: the same with 2 spawned workers, which get the Loader by pickle: the evaluation
  comes with it (Corpus.__getstate__), so they open the files but do not evaluate;
- spawn_reevaluate: the same, with the evaluation left out of the pickle (as before
  2026-12-03): each spawned worker evaluates the filter again.
Prints JSON: seconds and peak RSS (MB) per step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

STEP = r"""
import json, resource, sys, time
import cellfeed
files, step = json.loads(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
col = cellfeed.open(files)
t_open = time.perf_counter() - t0
n = col.n_obs
out = {"cells": n, "open_seconds": t_open}
t0 = time.perf_counter()
if step in ("filter", "workers", "spawn", "spawn_reevaluate"):
    drugs = [f"drug_{i:03d}" for i in range(0, 380, 2)]
    c = cellfeed.Corpus([cellfeed.Source("half", files, where=f"drug in {drugs!r} and pcnt_mito < 10")]).build()
    out["selected"] = int(c.counts()["train"].sum())
elif step in ("mixture", "plan"):
    c = cellfeed.Corpus([cellfeed.Source("a", files[:5], cells=n // 5),
                         cellfeed.Source("b", files[5:10], cells=n * 3 // 20),
                         cellfeed.Source("c", files[10:], cells=n // 10)], seed=1).build()
    out["selected"] = int(c.counts()["requested"].sum())
out["build_seconds"] = time.perf_counter() - t0
if step == "spawn_reevaluate":
    state = cellfeed.Corpus.__getstate__
    cellfeed.Corpus.__getstate__ = lambda self: dict(state(self), _saved=None)
if step in ("workers", "spawn", "spawn_reevaluate"):
    import torch
    loader = cellfeed.Loader(c, batch_size=64, block_size=16, fetch_factor=64)
    dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2,
                                     multiprocessing_context="fork" if step == "workers" else "spawn")
    t0 = time.perf_counter()
    it = iter(dl)
    next(it)
    out["first_batch_seconds"] = time.perf_counter() - t0
    del it
if step == "plan":
    t0 = time.perf_counter()
    loader = cellfeed.Loader(c, batch_size=64, block_size=16, fetch_factor=64)
    out["loader_seconds"] = time.perf_counter() - t0
    out["batches"] = len(loader)
    t0 = time.perf_counter()
    first = next(iter(loader))
    out["first_batch_seconds"] = time.perf_counter() - t0
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=100_000_000)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/cellfeed_bench"))
    ap.add_argument("--steps", default="open,filter,mixture,plan,workers,spawn,spawn_reevaluate")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import h5py
    import tahoe_like

    d = args.data_dir / f"tiny_{args.cells}"
    paths = sorted(d.glob("plate*.h5ad"))
    fresh = len(paths) == 14
    if fresh:
        with h5py.File(paths[0], "r") as f:
            fresh = "drug" in f["obs"]  # written before the filter columns existed
    if not fresh:
        d.mkdir(parents=True, exist_ok=True)
        print(f"writing a {args.cells:,}-cell collection to {d}", file=sys.stderr, flush=True)
        paths = []
        for p, n in enumerate(tahoe_like.plate_sizes(args.cells)):
            path = d / f"plate{p + 1:02d}.h5ad"
            tahoe_like.write_tiny_plate(path, p, n)
            paths.append(path)
    files = json.dumps([str(p) for p in paths])
    result = {"cells": args.cells}
    for step in args.steps.split(","):
        r = subprocess.run([sys.executable, "-c", STEP, files, step], capture_output=True, text=True, check=True)
        result[step] = json.loads(r.stdout.strip().splitlines()[-1])
        print(step, result[step], file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
