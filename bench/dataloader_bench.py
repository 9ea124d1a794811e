"""The Loader under torch's DataLoader workers against the Loader iterated directly.

    python bench/tahoe_like.py /tmp/tahoe150k --cells 150000 --compression none
    python bench/dataloader_bench.py /tmp/tahoe150k --epochs 8

Every run (the direct Loader, or one DataLoader configuration: num_workers 1, 2, 4;
persistent or not; fork and spawn) is a fresh Python process started by this one, so
that no run's workers, threads or warm engine are alive during another's. Runs alternate:
direct, configuration, direct, configuration, ..., and each configuration's ratio is taken
against the mean of the direct runs just before and just after it, so a machine shared
with other work biases both alike. Within a run, epoch 0 is a warm-up (page cache, worker
start for persistent workers) and is not counted; non-persistent workers restart every
epoch, and that cost is counted, as it is in training. Each batch is touched (its nonzeros
summed, in numpy: the bytes are read once, as a copy to a GPU would, without starting
torch's intra-op threads, whose spin-waiting would take a core from the workers; pass
--touch torch for a torch sum) as a training step would read it.

Each run also reports the CPU time (user + system, all its processes: the training
process and its DataLoader workers, from /proc) per batch over the counted epochs: on a
machine whose cores the engine already fills, that is what decides whether workers can
keep up. Any warning raised in the training process is reported and fails the run.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path


def touch(batch, how: str) -> int:
    import numpy as np
    import torch
    X = batch.X
    if isinstance(X, torch.Tensor):
        v = X.values() if X.layout == torch.sparse_csr else X
        if how == "torch":
            float(v.sum())
        else:
            float(np.add.reduce(v.numpy()))
    else:
        float(np.add.reduce(X.data))
    return len(batch.rows)


def _cpu_seconds() -> float:
    """User + system seconds of this process and its live children (DataLoader workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    me, total = os.getpid(), 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == me or int(fields[1]) == me:  # fields[1]: ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def run_one(args) -> dict:
    """One run in this process: prints its JSON result."""
    import resource

    import torch
    from torch.utils.data import DataLoader

    import cellfeed

    paths = sorted(glob.glob(str(args.data / "*.h5ad")))
    loader = cellfeed.Loader(paths, output=args.output, batch_size=args.batch_size,
                             block_size=args.block_size, fetch_factor=args.fetch_factor,
                             worker_transport=args.transport)
    if args.workers_one == 0:
        it = loader
    else:
        it = DataLoader(loader, batch_size=None, num_workers=args.workers_one,
                        persistent_workers=args.persistent, multiprocessing_context=args.context)
    cells, seconds, cpu, batches = 0, 0.0, 0.0, 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for e in range(args.epochs):
            loader.set_epoch(e)
            # Non-persistent workers of the last epoch have exited (and been reaped) by
            # now; their CPU time is in RUSAGE_CHILDREN, live ones' in /proc.
            c0 = _cpu_seconds() + _children_cpu(resource)
            t = time.perf_counter()
            n, k = 0, 0
            for b in it:
                n += touch(b, args.touch)
                k += 1
            dt = time.perf_counter() - t
            c1 = _cpu_seconds() + _children_cpu(resource)
            if e > 0:
                cells, seconds, cpu, batches = cells + n, seconds + dt, cpu + c1 - c0, batches + k
    del it
    torch_advice = [w for w in caught if "suggested max number of worker" in str(w.message)]
    others = [f"{w.category.__name__}: {w.message}" for w in caught if w not in torch_advice]
    return {"cells_s": cells / seconds, "cpu_ms_per_batch": 1e3 * cpu / batches,
            "torch_advised_fewer_workers": bool(torch_advice), "warnings": others}


def _children_cpu(resource) -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def spawn_run(args, output: str, workers: int, context: str, persistent: bool) -> dict:
    cmd = [sys.executable, __file__, str(args.data), "--one", "--output", output,
           "--workers-one", str(workers), "--context", context,
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--block-size", str(args.block_size), "--fetch-factor", str(args.fetch_factor),
           "--transport", args.transport, "--touch", args.touch]
    if persistent:
        cmd.append("--persistent")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"run failed: {' '.join(cmd)}\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="folder of .h5ad files (bench/tahoe_like.py)")
    ap.add_argument("--epochs", type=int, default=8, help="per run, the first is warm-up")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--fetch-factor", type=int, default=64)
    ap.add_argument("--outputs", default="torch,scipy")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--contexts", default="fork,spawn")
    ap.add_argument("--persistence", default="yes,no", help="persistent workers: yes, no or both")
    ap.add_argument("--transport", default="shm", choices=["shm", "pickle"])
    ap.add_argument("--touch", default="numpy", choices=["numpy", "torch"],
                    help="how each batch's values are read (torch: a torch sum, intra-op threads)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    # One run (internal: what this script starts for each configuration).
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--workers-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--context", help=argparse.SUPPRESS)
    ap.add_argument("--persistent", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args)))
        return 0
    if not glob.glob(str(args.data / "*.h5ad")):
        sys.exit(f"no .h5ad files in {args.data}")
    subprocess.run(["cat"] + glob.glob(str(args.data / "*.h5ad")), stdout=subprocess.DEVNULL,
                   check=True)  # warm the page cache once for all runs
    rows, warned = [], []
    for output in args.outputs.split(","):
        configs = [(ctx, p == "yes", int(w)) for ctx in args.contexts.split(",")
                   for p in args.persistence.split(",") for w in args.workers.split(",")]
        before = spawn_run(args, output, 0, "fork", False)
        print(f"{output}: direct {before['cells_s']:,.0f} cells/s, "
              f"{before['cpu_ms_per_batch']:.2f} CPU ms/batch", flush=True)
        for ctx, persistent, nw in configs:
            r = spawn_run(args, output, nw, ctx, persistent)
            after = spawn_run(args, output, 0, "fork", False)
            direct = (before["cells_s"] + after["cells_s"]) / 2
            direct_cpu = (before["cpu_ms_per_batch"] + after["cpu_ms_per_batch"]) / 2
            row = dict(output=output, context=ctx, persistent=persistent, num_workers=nw,
                       direct_cells_s=round(direct), dataloader_cells_s=round(r["cells_s"]),
                       ratio=round(r["cells_s"] / direct, 3),
                       direct_cpu_ms_per_batch=round(direct_cpu, 3),
                       dataloader_cpu_ms_per_batch=round(r["cpu_ms_per_batch"], 3))
            rows.append(row)
            warned += [w for w in r["warnings"] + before["warnings"] + after["warnings"]
                       if w not in warned]
            print(f"  {ctx:5s} persistent={persistent!s:5s} workers={nw}: "
                  f"{r['cells_s']:10,.0f} cells/s vs direct {direct:10,.0f}: "
                  f"{row['ratio']:.2f}x; CPU ms/batch {r['cpu_ms_per_batch']:.2f} vs "
                  f"{direct_cpu:.2f}", flush=True)
            before = after
    # The Loader's own note on non-persistent workers is part of what is measured;
    # anything else fails the run.
    expected = [w for w in warned if "persistent_workers=True" in w]
    unexpected = [w for w in warned if w not in expected]
    for w in expected:
        print(f"(expected) {w}")
    for w in unexpected:
        print(f"WARNING {w}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "cpus": len(os.sched_getaffinity(0)),
                                         "results": rows, "warnings": warned}, indent=1))
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
