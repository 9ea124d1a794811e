#!/usr/bin/env python3
"""Byte-flipped anndata files that crash or hang libhdf5 (regression inputs, issue 17).

Writes a 300-cell AnnData file with anndata (sparse X, a categorical and a string obs
column, string obs/var names), then makes N copies (default 400) with 1-8 bytes
overwritten at random offsets, each copy's bytes drawn from a generator keyed by
(seed, copy). Each copy is opened and read with cellfeed with isolation OFF, in a worker
subprocess (restarted after a crash, killed after --timeout s): the copies that killed it
(a signal) or hung are kept in OUT (default fuzz/libhdf5-crashes/flipped/) with a
manifest.json saying which bytes were changed and what happened.

    python scripts/make_flipped_files.py [--seed 17] [--count 400] [--out DIR] [--timeout 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_base(path: Path) -> None:
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng([17, 0])
    n, g = 300, 40
    x = sp.random(n, g, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 10).astype(np.float32)
    obs = pd.DataFrame({
        "cell_type": pd.Categorical(rng.choice(["T cell", "B cell", "NK", "monocyte"], n)),
        "donor": [f"donor-{i % 7}-{'x' * (i % 5)}" for i in range(n)],
    }, index=[f"cell{i:04d}" for i in range(n)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(g)])
    ad.AnnData(X=x, obs=obs, var=var).write_h5ad(path)


def flip(base: bytes, seed: int, i: int) -> tuple[bytes, list[list[int]]]:
    rng = np.random.default_rng([seed, i, 0xF11B])  # keyed by (seed, copy, purpose)
    k = int(rng.integers(1, 9))
    offsets = rng.integers(0, len(base), k)
    values = rng.integers(0, 256, k)
    b = bytearray(base)
    for o, v in zip(offsets, values):
        b[int(o)] = int(v)
    return bytes(b), [[int(o), int(v)] for o, v in zip(offsets, values)]


# Opens and reads each path named on stdin with isolation off; says when it starts and
# ends each, so the parent knows which one killed or stalled it.
_WORKER = r"""
import sys, numpy as np, cellfeed
print("ready", flush=True)
for line in sys.stdin:
    p = line.strip()
    print("start", flush=True)
    try:
        c = cellfeed.open(p, isolate=False, threads=1)
        c.read(np.arange(c.n_obs)); c.obs(); c.obs_names(); c.var()
        r = "ok"
    except Exception as e:
        r = "error"
    print("done " + r, flush=True)
"""


class Worker:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  bufsize=1)
        # Ready before the first file's clock starts (importing takes seconds).
        assert self.p.stdout.readline().startswith("ready")

    def run(self, path: str, timeout: float) -> str:
        """'ok', 'error', 'crash:SIGNAL' or 'hang'."""
        self.p.stdin.write(path + "\n")
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout
        seen_start = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.p.kill()
                self.p.wait()
                return "hang"
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if not r:
                continue
            line = self.p.stdout.readline()
            if not line:
                rc = self.p.wait()
                return f"crash:{-rc}" if rc < 0 else f"exit:{rc}"
            if line.startswith("start"):
                seen_start = True
            elif line.startswith("done") and seen_start:
                return line.split()[1]

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--out", type=Path, default=REPO / "fuzz/libhdf5-crashes/flipped")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    kept = []
    with tempfile.TemporaryDirectory() as tmp:
        base_path = Path(tmp) / "base.h5ad"
        write_base(base_path)
        base = base_path.read_bytes()
        w = Worker()
        for i in range(args.count):
            data, changes = flip(base, args.seed, i)
            p = Path(tmp) / f"flip-{i:03d}.h5ad"
            p.write_bytes(data)
            outcome = w.run(str(p), args.timeout)
            counts[outcome.split(":")[0]] = counts.get(outcome.split(":")[0], 0) + 1
            if outcome.startswith(("crash", "hang", "exit")):
                name = f"flip-{i:03d}-{outcome.replace(':', '')}.h5ad"
                (args.out / name).write_bytes(data)
                kept.append({"file": name, "copy": i, "outcome": outcome, "changes": changes})
                print(f"{i:3d}: {outcome}", flush=True)
                w = Worker()
            p.unlink()
        w.close()
    manifest = {"seed": args.seed, "count": args.count, "base_sha256": hashlib.sha256(base).hexdigest(),
                "base_bytes": len(base), "outcomes": counts, "kept": kept,
                "made_by": "scripts/make_flipped_files.py"}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
