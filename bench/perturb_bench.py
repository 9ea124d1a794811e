"""Build time and memory of the cell-set index (cellfeed.SetLoader's C++ step) on synthetic
per-cell codes laid out like Tahoe-100M: plates of wells, each well one condition, the
cells of a well contiguous, 50 cell lines multiplexed in every well, DMSO wells as controls.

Only the pure step is timed (SetIndex::Make, then planning and batch plans), not obs
reading. build_cpu_s is the CPU time of the build (one thread), steadier than wall time
on a shared machine. Memory is the process's peak RSS growth over the generated codes.

    python bench/perturb_bench.py --cells 10000000 [--levels plate] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from cellfeed import _cellfeed


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_codes(n: int, seed: int = 0, plates: int = 14, lines: int = 50, conditions: int = 1100,
                    n_wells: int = 1344):
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n, np.full(n_wells, 1 / n_wells))
    cond_of_well = rng.integers(1, conditions, n_wells)
    cond_of_well[:: n_wells // (plates * 8)] = 0  # 8 DMSO wells per plate
    condition = np.repeat(cond_of_well, sizes).astype(np.int32)
    plate = np.repeat((np.arange(n_wells) * plates) // n_wells, sizes).astype(np.int32)
    context = rng.integers(0, lines, n, dtype=np.int32)
    control = (condition == 0).astype(np.uint8)
    rows = np.arange(n, dtype=np.int64)
    return rows, context, condition, control, plate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=10_000_000)
    ap.add_argument("--set-size", type=int, default=64)
    ap.add_argument("--sets-per-batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=200, help="batch plans timed after the build")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    t0 = time.perf_counter()
    rows, context, condition, control, plate = synthetic_codes(args.cells)
    t_gen = time.perf_counter() - t0
    rss0 = peak_rss_mb()
    spec = {"set_size": args.set_size, "sets_per_batch": args.sets_per_batch, "match_levels": [[0], []],
            "group_by_batch": False, "seed": 0}
    t0, c0 = time.perf_counter(), time.process_time()
    index = _cellfeed.SetIndex.make(rows, context, condition, control, plate, None, [plate], spec)
    t_build, c_build = time.perf_counter() - t0, time.process_time() - c0
    rss_build = peak_rss_mb()
    t0 = time.perf_counter()
    plan = index.plan(0, 0, 0, 1)
    t_plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    k = min(args.batches, plan.num_batches)
    for b in range(k):
        plan.get_batch(b)
    t_batches = time.perf_counter() - t0
    out = {"cells": args.cells, "groups": len(index.groups()["cells"]), "pools": index.num_pools,
           "sets_per_epoch": plan.num_sets, "batches_per_epoch": plan.num_batches,
           "generate_s": round(t_gen, 3), "build_s": round(t_build, 3), "build_cpu_s": round(c_build, 3), "plan_s": round(t_plan, 4),
           "batch_plan_ms": round(1000 * t_batches / max(1, k), 3),
           "codes_mb": round(sum(a.nbytes for a in (rows, context, condition, control, plate)) / 2**20, 1),
           "peak_rss_growth_build_mb": round(rss_build - rss0, 1)}
    print("| " + " | ".join(out) + " |")
    print("|" + "---|" * len(out))
    print("| " + " | ".join(str(v) for v in out.values()) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
