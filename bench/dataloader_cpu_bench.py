"""CPU seconds per cell of the Loader under persistent DataLoader workers against direct
iteration: a measure that a machine shared with other work disturbs far less than
cells/s (contention stretches wall time, not the CPU time of the work itself).

    python bench/dataloader_cpu_bench.py /tmp/tahoe150k --epochs 3

Direct: this process's CPU time (the engine's threads included). DataLoader: this
process's CPU time plus that of every worker process (utime + stime from
/proc/<pid>/stat, read while the persistent workers live). Epoch 0 warms up.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

from torch.utils.data import DataLoader

import cellfeed

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--outputs", default="torch,scipy")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--contexts", default="fork,spawn")
    ap.add_argument("--transport", default="shm", choices=["shm", "pickle"])
    args = ap.parse_args()
    paths = sorted(glob.glob(str(args.data / "*.h5ad")))
    kw = dict(batch_size=256, block_size=16, fetch_factor=64, worker_transport=args.transport)
    for output in args.outputs.split(","):
        loader = cellfeed.Loader(paths, output=output, **kw)
        for ctx in args.contexts.split(","):
            for nw in (int(w) for w in args.workers.split(",")):
                dl = DataLoader(loader, batch_size=None, num_workers=nw,
                                persistent_workers=True, multiprocessing_context=ctx)
                cpu = {"direct": [0.0, 0], "dl": [0.0, 0]}
                for e in range(args.epochs):
                    loader.set_epoch(e)
                    c0 = time.process_time()
                    n = sum(len(b.rows) for b in loader)
                    if e:
                        cpu["direct"][0] += time.process_time() - c0
                        cpu["direct"][1] += n
                    it = iter(dl)
                    pids = [w.pid for w in dl._iterator._workers]
                    w0 = sum(proc_cpu(p) for p in pids)
                    c0 = time.process_time()
                    n = sum(len(b.rows) for b in it)
                    if e:
                        cpu["dl"][0] += time.process_time() - c0 + sum(proc_cpu(p) for p in pids) - w0
                        cpu["dl"][1] += n
                    del it
                d = cpu["direct"][0] / cpu["direct"][1] * 1e6
                w = cpu["dl"][0] / cpu["dl"][1] * 1e6
                print(f"{output:6s} {ctx:5s} workers={nw}: {w:.2f} CPU us/cell vs direct "
                      f"{d:.2f}: direct/dataloader {d / w:.2f}", flush=True)
                del dl
    return 0


if __name__ == "__main__":
    sys.exit(main())
