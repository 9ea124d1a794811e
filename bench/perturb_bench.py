"""Cell sets for perturbation models: the index's cost, and cellfeed.SetLoader against pip
cell-load 0.10.4 on the same files.

1. The index (default): build time and memory of the cell-set index (SetLoader's C++ step)
   on synthetic per-cell codes laid out like Tahoe-100M: plates of wells, each well one
   condition, the cells of a well contiguous, 50 cell lines multiplexed in every well,
   DMSO wells as controls. Only the pure step is timed (SetIndex::Make, then planning and
   batch plans), not obs reading. build_cpu_s is the CPU time of the build (one thread).

       python bench/perturb_bench.py --cells 10000000 [--json out.json]

2. The loaders (--loaders): Tahoe-like plates (bench/perturb_plates.py: 50 cell lines x
   --drugs drugs + a DMSO_TF well per plate, a well's cells contiguous), gzip and
   uncompressed; batches of B sets of S cells with a random control of the same cell
   line per cell; sets/s and cells/s (perturbed cells, each with its control) of
   cellfeed.SetLoader and of cell-load's PerturbationDataModule in its default mode and in
   its consecutive mode (use_consecutive_loading=True), on the same files. Every run is
   its own process (cell-load's from .venv-cellload), the loaders' order alternating
   between configurations and rounds; a run's time per batch is its batches' wall
   time from the iterator's creation over their number (setup, the files' obs and the
   split, reported apart). cell-load's default mode is slow, so its runs stop after the
   batches that hold --cell-load-cells perturbed cells (2,048: one batch of B=16 sets at
   S=128 or 512); its consecutive mode's after --consecutive-batches (20); cellfeed's
   after --cellfeed-batches (60, crossing epochs when needed). cell-load runs
   without DataLoader workers (--cell-load-workers 0; with workers the prefetched batches
   hide its cost in short runs): one process, where cellfeed uses its threads on every
   core, so the table also gives the ratio against cell-load's rate times the cores
   (workers scaling perfectly). Peak RSS: the process and its children, summed, sampled
   every 0.2 s.

       python bench/perturb_bench.py --loaders --data-dir /tmp/cellfeed_perturb \\
           [--plates 2 --drugs 100 --cells-per-well 6000] [--json out.json --md out.md]

   Larger (the issue's scale, hours for cell-load): --plates 14 --drugs 380
   --cells-per-well 40000 (~21M cells).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CELL_LOAD_PY = Path(os.environ.get("CELLFEED_CELL_LOAD_PYTHON", HERE.parent / ".venv-cellload" / "bin" / "python"))


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


def index_bench(args) -> None:
    from cellfeed import _cellfeed

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


# -- the loaders ------------------------------------------------------------------------------
def _tree_rss_mb(pid: int) -> float:
    """RSS of a process and its descendants (from /proc), MB."""
    children: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run_measured(cmd, timeout: float) -> dict:
    """Run one loader process; its JSON result plus the peak RSS of its process tree."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(HERE))
    peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            done.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        done.set()
        return {"error": f"timed out after {timeout} s", "stderr": err[-2000:]}
    done.set()
    th.join()
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}", "stderr": err[-2000:]}
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb"] = round(peak[0], 1)
    return res


def _timed(batches, n: int, cells_of) -> dict:
    """Time per batch over n batches, from the iterator's creation (the first batch's wait
    included: a loader without workers computes each batch when asked)."""
    cells, k = 0, 0
    t_start = time.perf_counter()
    t_first = None
    for b in batches:
        cells += cells_of(b)
        k += 1
        if t_first is None:
            t_first = time.perf_counter() - t_start
        if k >= n:
            break
    total = time.perf_counter() - t_start
    return {"batches": k, "first_batch_s": round(t_first, 3), "s_per_batch": round(total / k, 4),
            "cells_per_s": round(cells / total, 1)}


def worker_cellfeed(a) -> dict:
    import cellfeed

    t0 = time.perf_counter()
    pert = cellfeed.Perturbation("drug", control=["DMSO_TF"], context="cell_line", batch="sample", combo=None)
    ld = cellfeed.SetLoader(sorted(str(p) for p in Path(a.files).glob("*.h5ad")), pert, set_size=a.S,
                            sets_per_batch=a.B, seed=0, output="torch")
    setup = time.perf_counter() - t0

    def epochs():
        e = 0
        while True:
            ld.set_epoch(e)
            yield from ld
            e += 1

    def cells(b):
        assert b.pert_X.shape[1:] == b.ctrl_X.shape[1:] and b.pert_X.shape[1] == a.S
        return b.pert_X.shape[0] * b.pert_X.shape[1]

    r = _timed(epochs(), a.batches, cells)
    r.update(setup_s=round(setup, 3), batches_per_epoch=len(ld), genes=int(ld.collection.n_vars))
    return r


def worker_cell_load(a) -> dict:
    from cell_load.data_modules import PerturbationDataModule

    t0 = time.perf_counter()
    dm = PerturbationDataModule(a.toml, batch_size=a.B, num_workers=a.workers, pert_col="drug",
                                cell_type_key="cell_line", batch_col="sample", control_pert="DMSO_TF",
                                cell_sentence_len=a.S, use_consecutive_loading=a.mode == "consecutive")
    dm.setup()
    loader = dm.train_dataloader()
    setup = time.perf_counter() - t0

    def cells(b):
        assert b["pert_cell_emb"].shape == b["ctrl_cell_emb"].shape
        return b["pert_cell_emb"].shape[0]

    r = _timed(iter(loader), a.batches, cells)
    r.update(setup_s=round(setup, 3), batches_per_epoch=len(loader), genes=int(dm.get_var_dims()["input_dim"]))
    return r


def loaders_bench(args) -> None:
    sys.path.insert(0, str(HERE))
    from perturb_plates import generate

    if not CELL_LOAD_PY.exists():
        sys.exit(f"no cell-load environment at {CELL_LOAD_PY} (scripts/install.sh makes .venv-cellload)")
    data = Path(args.data_dir)
    tag = f"p{args.plates}_d{args.drugs}_w{args.cells_per_well}_g{args.genes}"
    rows = []
    for comp in args.compression:
        folder = data / tag / comp
        if not (folder / "done").exists():
            t0 = time.perf_counter()
            generate(folder, args.plates, args.drugs, args.cells_per_well, args.genes,
                     compression=None if comp == "none" else "gzip")
            (folder / "done").write_text(f"{time.perf_counter() - t0:.1f} s\n")
        toml = folder.parent / f"cell_load_{comp}.toml"
        toml.write_text(f'[datasets]\ntahoe = "{folder}"\n[training]\ntahoe = "train"\n')
        loaders = [("cellfeed", None), ("cell-load", "default"), ("cell-load", "consecutive")]
        for si, S in enumerate(args.set_sizes):
            for rnd in range(args.rounds):
                flip = (rnd + si + args.compression.index(comp)) % 2  # who goes first alternates
                for name, mode in (loaders[::-1] if flip else loaders):
                    common = ["--S", str(S), "--B", str(args.sets_per_batch)]
                    if name == "cellfeed":
                        cmd = [sys.executable, str(HERE / "perturb_bench.py"), "--worker", "cellfeed",
                               "--files", str(folder), "--batches", str(args.cellfeed_batches)] + common
                    else:
                        n = (args.consecutive_batches if mode == "consecutive" else
                             max(1, -(-args.cell_load_cells // (S * args.sets_per_batch))))
                        cmd = [str(CELL_LOAD_PY), str(HERE / "perturb_bench.py"), "--worker", "cell_load",
                               "--toml", str(toml), "--mode", mode, "--workers", str(args.cell_load_workers),
                               "--batches", str(n)] + common
                    r = run_measured(cmd, args.timeout)
                    r.update(loader=name if mode is None else f"cell-load {mode}", compression=comp, S=S,
                             B=args.sets_per_batch, round=rnd)
                    if "s_per_batch" in r:
                        r["sets_per_s"] = round(args.sets_per_batch / r["s_per_batch"], 2)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    summary = summarize(rows)
    out = {"config": vars(args), "cells": None, "runs": rows, "summary": summary}
    md = markdown(summary, args)
    print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if args.md:
        with open(args.md, "w") as f:
            f.write(md)


def summarize(rows) -> list:
    """Per (compression, S, loader): the median over rounds; ratios to cell-load's best."""
    keys = sorted({(r["compression"], r["S"]) for r in rows})
    out = []
    for comp, S in keys:
        per = {}
        for r in rows:
            if (r["compression"], r["S"]) == (comp, S) and "cells_per_s" in r:
                per.setdefault(r["loader"], []).append(r)
        med = {k: {"cells_per_s": float(np.median([r["cells_per_s"] for r in v])),
                   "sets_per_s": float(np.median([r["sets_per_s"] for r in v])),
                   "peak_rss_mb": float(max(r["peak_rss_mb"] for r in v)),
                   "setup_s": float(np.median([r["setup_s"] for r in v])),
                   "batches": int(sum(r["batches"] for r in v)), "runs": len(v)} for k, v in per.items()}
        cl = [v["cells_per_s"] for k, v in med.items() if k.startswith("cell-load")]
        best = max(cl) if cl else None
        for k, v in med.items():
            v["vs_cell_load_best"] = round(v["cells_per_s"] / best, 2) if best else None
            v["vs_cell_load_best_x_cores"] = round(v["cells_per_s"] / (best * os.cpu_count()), 2) if best else None
            out.append({"compression": comp, "S": S, "loader": k, **v})
    return out


def markdown(summary, args) -> str:
    lines = [f"| file | S | loader | sets/s | cells/s | x cell-load's best | x (its best x {os.cpu_count()} cores) "
             "| peak RSS MB | setup s | batches timed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {r['compression']} | {r['S']} | {r['loader']} | {r['sets_per_s']:.2f} | "
                     f"{r['cells_per_s']:,.0f} | {r['vs_cell_load_best']} | {r['vs_cell_load_best_x_cores']} | "
                     f"{r['peak_rss_mb']:,.0f} | "
                     f"{r['setup_s']:.1f} | {r['batches']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=10_000_000)
    ap.add_argument("--set-size", type=int, default=64)
    ap.add_argument("--sets-per-batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=200, help="batch plans timed after the build")
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    ap.add_argument("--loaders", action="store_true", help="cellfeed.SetLoader vs cell-load (see above)")
    ap.add_argument("--data-dir", default="/tmp/cellfeed_perturb")
    ap.add_argument("--plates", type=int, default=2)
    ap.add_argument("--drugs", type=int, default=100)
    ap.add_argument("--cells-per-well", type=int, default=6000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--compression", nargs="+", default=["gzip", "none"])
    ap.add_argument("--set-sizes", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cellfeed-batches", type=int, default=60)
    ap.add_argument("--cell-load-cells", type=int, default=2048,
                    help="cell-load's runs stop after the batches that hold this many perturbed cells")
    ap.add_argument("--consecutive-batches", type=int, default=20,
                    help="batches of each run of cell-load's consecutive mode")
    ap.add_argument("--cell-load-workers", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600)
    # one loader run (a subprocess of --loaders)
    ap.add_argument("--worker", choices=["cellfeed", "cell_load"])
    ap.add_argument("--files")
    ap.add_argument("--toml")
    ap.add_argument("--mode", default="default")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--S", type=int)
    ap.add_argument("--B", type=int)
    args = ap.parse_args()
    if args.worker:
        r = worker_cellfeed(args) if args.worker == "cellfeed" else worker_cell_load(args)
        print(json.dumps(r), flush=True)
        os._exit(0)  # DataLoader workers and reader threads end with the process
    if args.loaders:
        args.batches = None
        loaders_bench(args)
    else:
        index_bench(args)


if __name__ == "__main__":
    main()
