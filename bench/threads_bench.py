"""The main job's speed with torch's and the engine's threads sized together
(cellfeed.split_cores and OMP_WAIT_POLICY=PASSIVE, the example's default) against both pools
at their defaults (one thread per core each, libgomp's default wait policy), on an idle
machine and with busy loops beside it (issue 37).

    python bench/threads_bench.py [--steps 200] [--rounds 2] [--busy 1] [--out FILE.json]

Each run is examples/pretrain.py in a fresh process (same seed, same corpus); the settings
alternate within each round so that drift in the machine's load hits both alike. "default
pools" passes --torch-threads and --engine-threads equal to the cores (what torch and
cellfeed each take when nobody sizes them). `--busy N` starts N processes spinning on a
core each for the "busy" runs (nice 0, like another user's job). Reports cells/s while
training, the share of step time spent waiting on the loader, and each setting's cells/s
as a ratio to the default pools in the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run_once(steps: int, extra: list[str], out: Path) -> dict:
    env = dict(os.environ)
    for e in [e for e in extra if e.startswith("ENV:")]:
        k, _, v = e[4:].partition("=")
        env[k] = v
    extra = [e for e in extra if not e.startswith("ENV:")]
    cmd = [sys.executable, str(REPO / "examples" / "pretrain.py"), "--steps", str(steps), "--quiet",
           "--eval-cells", "64", "--out", str(out), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"cells_per_second": m["loader"]["cells_per_second"],
            "loader_wait_fraction": m["loader"]["loader_wait_fraction"],
            "torch_threads": m["torch_threads"], "engine_threads": m.get("engine_threads"),
            "loss_curve_sha256_16": m["loss_curve_sha256_16"]}


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--busy-steps", type=int, default=0, help="steps of the busy runs (default: --steps)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--busy", type=int, default=1, help="busy loops beside the busy runs (0: no busy runs)")
    p.add_argument("--out", default=None)
    p.add_argument("--extra", action="append", default=[], metavar="NAME=TORCH,ENGINE[,passive]",
                   help="another setting: thread counts, and OMP_WAIT_POLICY=PASSIVE with ',passive'")
    args = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    # The baseline is what a script that sizes nothing gets: both pools at one thread per
    # core and libgomp's default wait policy (the example sets PASSIVE only when unset; an
    # empty value makes libgomp keep its default, with a one-line warning).
    settings = {"split_cores": [],
                "default pools": ["--torch-threads", str(cores), "--engine-threads", str(cores),
                                  "ENV:OMP_WAIT_POLICY="]}
    for spec in args.extra:
        name, _, rest = spec.partition("=")
        parts = rest.split(",")
        settings[name] = ["--torch-threads", parts[0], "--engine-threads", parts[1]] + (
            ["ENV:OMP_WAIT_POLICY=PASSIVE"] if "passive" in parts[2:] else [])
    loads = ["idle"] + (["busy"] if args.busy else [])
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for load in loads:
                steps = args.busy_steps or args.steps if load == "busy" else args.steps
                order = list(settings.items()) if rnd % 2 == 0 else list(settings.items())[::-1]
                for name, extra in order:
                    procs = busy_loops(args.busy) if load == "busy" else []
                    try:
                        r = run_once(steps, extra, Path(tmp) / f"{rnd}_{load}_{len(runs)}")
                    finally:
                        for q in procs:
                            q.kill()
                            q.wait()
                    r.update(round=rnd, load=load, setting=name, steps=steps)
                    runs.append(r)
                    print(json.dumps(r), flush=True)
    summary = []
    for load in loads:
        for rnd in range(args.rounds):
            base = next(r for r in runs if r["round"] == rnd and r["load"] == load and r["setting"] == "default pools")
            for r in runs:
                if r["round"] == rnd and r["load"] == load:
                    summary.append({"load": load, "round": rnd, "setting": r["setting"],
                                    "threads": f"{r['torch_threads']} torch + {r['engine_threads']} engine",
                                    "cells_per_second": round(r["cells_per_second"], 1),
                                    "loader_wait_pct": round(100 * r["loader_wait_fraction"], 1),
                                    "x_default_pools": round(r["cells_per_second"] / base["cells_per_second"], 2)})
    print("\n| load | round | setting | threads | cells/s | waiting on loader | x default pools |")
    print("|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['load']} | {s['round']} | {s['setting']} | {s['threads']} | {s['cells_per_second']:,} | "
              f"{s['loader_wait_pct']}% | {s['x_default_pools']} |")
    result = {"cores": cores, "steps": args.steps, "busy": args.busy, "runs": runs, "summary": summary}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
