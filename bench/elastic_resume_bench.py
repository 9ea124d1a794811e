"""The cost of an elastic resume at 100M cells: seconds from load_state_dict to the first
batch, against a plain start of the same epoch in the same run.

    python bench/elastic_resume_bench.py [--cells 100000000] [--data-dir /tmp/cellfeed_bench]

The collection is bench/corpus_scale_bench.py's (14 Tahoe-like plates, one stored value
per cell; written once). The Loader is batch 64, block 16, fetch factor 64 (4,096-cell
fetches). Each case runs in a fresh process (files opened first, not timed), as rank 0 of
the new job, and is repeated `--repeat` times, alternating cases:
- start: set_epoch(3), the first batch (the baseline);
- same: a state of rank 0 of 256 ranks halfway through epoch 3, loaded at 256 ranks;
- elastic: the same state loaded at 192 ranks (every cell the 256 ranks left, planned anew);
- elastic_workers: a state taken with 8 DataLoader workers per rank (per-worker points),
  loaded at 128 ranks;
- twice: the 192-rank resume preempted in turn halfway, loaded at 64 ranks.
Prints JSON: per case the median seconds to the first batch (load_state_dict included), the
ratio to `start`, and the state's size in bytes (JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CASE = r"""
import json, sys, time
import cellfeed
files, case = json.loads(sys.argv[1]), sys.argv[2]
KW = dict(batch_size=64, block_size=16, fetch_factor=64)
col = cellfeed.open(files)

def loader(world, rank=0):
    return cellfeed.Loader(col, rank=rank, world_size=world, **KW)

def half_state(world, workers=None, passes=()):
    # rank 0's state halfway through epoch 3 (ranks in lockstep)
    ld = loader(world)
    ld.set_epoch(3)
    ld._passes = list(passes)
    nb = ld._pass_batches(3, ld._passes)
    st = ld.state_dict()
    st["batches_yielded"] = nb // 2
    if workers:
        F = KW["fetch_factor"]
        # the DataLoader's round-robin over `workers` after nb // 2 batches
        from cellfeed.loader import _nth_of_worker
        k = nb // 2
        st["workers"] = [min(nb, _nth_of_worker(v, k // workers + (1 if v < k % workers else 0), F, workers))
                         for v in range(workers)]
        st["batches_yielded"] = min(st["workers"])
    return st

state, world = None, 256
if case == "same":
    state = half_state(256)
elif case == "elastic":
    state, world = half_state(256), 192
elif case == "elastic_workers":
    state, world = half_state(256, workers=8), 128
elif case == "twice":
    first = half_state(256)
    mid = loader(192)
    mid.load_state_dict(first)
    state = half_state(192, passes=mid._passes)
    world = 64
ld = loader(world)
t0 = time.perf_counter()
if state is None:
    ld.set_epoch(3)
else:
    ld.load_state_dict(json.loads(json.dumps(state)))
batch = next(iter(ld))
out = {"seconds": time.perf_counter() - t0, "batches": len(ld),
       "state_bytes": len(json.dumps(state)) if state else 0}
print(json.dumps(out))
"""

CASES = ("start", "same", "elastic", "elastic_workers", "twice")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=100_000_000)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/cellfeed_bench"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    d = args.data_dir / f"tiny_{args.cells}"
    paths = sorted(d.glob("plate*.h5ad"))
    if len(paths) != 14:
        subprocess.run([sys.executable, str(HERE / "corpus_scale_bench.py"), "--cells",
                        str(args.cells), "--data-dir", str(args.data_dir), "--steps", "open"],
                       check=True)
        paths = sorted(d.glob("plate*.h5ad"))
    files = json.dumps([str(p) for p in paths])
    runs = {c: [] for c in CASES}
    for _ in range(args.repeat):
        for case in CASES:
            r = subprocess.run([sys.executable, "-c", CASE, files, case], capture_output=True,
                               text=True, check=True)
            runs[case].append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(case, runs[case][-1], file=sys.stderr, flush=True)
    base = statistics.median(r["seconds"] for r in runs["start"])
    result = {"cells": args.cells, "repeat": args.repeat}
    for case in CASES:
        s = statistics.median(r["seconds"] for r in runs[case])
        result[case] = {"first_batch_seconds": round(s, 4), "vs_start": round(s / base, 2),
                        "batches": runs[case][0]["batches"], "state_bytes": runs[case][0]["state_bytes"]}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
