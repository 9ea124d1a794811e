"""The Python Loader's cells/s against the engine's (`cellfeed bench`, the C++ CLI) on the
same files, configuration and thread count, in the same process tree.

    python bench/tahoe_like.py /tmp/tahoe150k --cells 150000 --compression none
    python bench/python_overhead_bench.py /tmp/tahoe150k --rounds 3

For each (block size, fetch factor) and output kind, rounds alternate one engine run
(`cellfeed bench --epochs E --warmup 0`: a warm-up by seconds can eat whole epochs at
high rates; the page cache is warm from the runs before) and one Python run (E epochs, nothing done with
the batches, as the CLI does nothing with them), so that both
see the same machine; the ratio is the sum of cells over the sum of seconds of each.
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cellfeed


def engine_run(cli, paths, batch, block, fetch, epochs) -> tuple[int, float]:
    out = subprocess.run([cli, "bench", *paths, "--batch-size", str(batch), "--block-size",
                          str(block), "--fetch-factor", str(fetch), "--epochs", str(epochs),
                          "--seconds", "100000", "--warmup", "0", "--json"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return int(r["cells"]), float(r["seconds"]), int(r["threads"])


def python_run(loader, epochs, first_epoch) -> tuple[int, float]:
    # No warm-up epoch: the CLI run counts its first epoch too (page cache warm for both).
    cells, seconds = 0, 0.0
    for e in range(epochs):
        loader.set_epoch(first_epoch + e)
        t = time.perf_counter()
        for b in loader:
            cells += len(b.rows)
        seconds += time.perf_counter() - t
    return cells, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--configs", default="16x64,64x4", help="BLOCKxFETCH,...")
    ap.add_argument("--outputs", default="scipy,torch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cli", default=shutil.which("cellfeed") or "cellfeed")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    paths = sorted(glob.glob(str(args.data / "*.h5ad")))
    if not paths:
        sys.exit(f"no .h5ad files in {args.data}")
    rows = []
    for cfg in args.configs.split(","):
        block, fetch = (int(x) for x in cfg.split("x"))
        for output in args.outputs.split(","):
            loader = cellfeed.Loader(paths, batch_size=args.batch_size, block_size=block,
                                     fetch_factor=fetch, output=output)
            tot = {"engine": [0, 0.0], "python": [0, 0.0]}
            for r in range(args.rounds):
                c, s, threads = engine_run(args.cli, paths, args.batch_size, block, fetch,
                                           args.epochs)
                tot["engine"][0] += c
                tot["engine"][1] += s
                c, s = python_run(loader, args.epochs, r * args.epochs)
                tot["python"][0] += c
                tot["python"][1] += s
            eng = tot["engine"][0] / tot["engine"][1]
            py = tot["python"][0] / tot["python"][1]
            assert threads == loader.collection.threads, (threads, loader.collection.threads)
            row = dict(block_size=block, fetch_factor=fetch, batch_size=args.batch_size,
                       output=output, threads=threads, engine_cells_s=round(eng),
                       python_cells_s=round(py), ratio=round(py / eng, 3))
            rows.append(row)
            print(f"b={block} f={fetch} batch={args.batch_size} {output:6s}: python "
                  f"{py:10,.0f} cells/s vs engine {eng:10,.0f}: {py / eng:.2f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
