"""Run one peer loader in this process and print one JSON line (its result record).

    python bench/peers/run_one.py RUNNER --paths a.h5ad b.h5ad ... --batch-size 64 \
        --block-size 4 --fetch-factor 16 --num-workers 0 --seconds 10 --warmup 2
    python -m bench.peers.run_one RUNNER ...          (from the repository root)

RUNNER: scdataset | annloader | h5py | cellfeed. --extra '{"key": value}' adds runner
specific config keys. --verify checks one epoch's batches against anndata instead of
measuring (use a small dataset). Everything but the final JSON line goes to stderr.
peak_rss_mb is this process's ru_maxrss; rss_after_import_mb is the same counter right
after the runner's imports (the interpreter + numpy/torch/anndata baseline).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

_BENCH = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/peers: replace it by bench/ so that the runner
# modules import as the package `peers` and nothing here shadows a real package.
if sys.path and Path(sys.path[0] or ".").resolve() == _BENCH / "peers":
    sys.path.pop(0)
if str(_BENCH) not in sys.path:
    sys.path.insert(0, str(_BENCH))

from peers import RUNNERS, common  # noqa: E402


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "scipy", "h5py", "anndata", "torch", "scdataset", "cellfeed"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    mod = sys.modules.get("cellfeed")
    if mod is not None:
        out["cellfeed_path"] = os.path.dirname(mod.__file__)
    return out


def _block_size(text: str):
    return text if text == "chunk" else int(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runner", choices=RUNNERS)
    ap.add_argument("--paths", nargs="+", required=True)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--block-size", type=_block_size, default=4, help='rows, or "chunk" (cellfeed)')
    ap.add_argument("--fetch-factor", type=int, default=16)
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--extra", type=json.loads, default={},
                    help="JSON object of runner-specific config keys")
    ap.add_argument("--verify", action="store_true",
                    help="check one epoch against anndata instead of measuring")
    ap.add_argument("--verify-batches", type=int, default=None,
                    help="with --verify: check only the first N batches")
    args = ap.parse_args(argv)
    config = {"batch_size": args.batch_size, "block_size": args.block_size,
              "fetch_factor": args.fetch_factor, "num_workers": args.num_workers,
              "seed": args.seed, **args.extra}
    if args.verify:
        config["with_rows"] = True
    rec: dict = {"loader": args.runner, "config": config}
    try:
        with contextlib.redirect_stdout(sys.stderr):
            mod = importlib.import_module(f"peers.{args.runner}_peer")
            rss_import = common.peak_rss_mb()
            t0 = time.perf_counter()
            epoch_fn = mod.make_iterator(args.paths, config)
            setup_s = time.perf_counter() - t0
            effective = mod.effective_config(config)
            if args.verify:
                rec = common.verify(args.runner, epoch_fn, args.paths,
                                    max_batches=args.verify_batches,
                                    batch_size=args.batch_size)
                rec["config"] = effective
            else:
                # Eight fetches' worth of batches at least (loaders that fetch).
                rec = common.measure(args.runner, effective, epoch_fn, args.seconds,
                                     args.warmup, min_batches=8 * int(effective.get("fetch_factor", 1)))
            rec["setup_seconds"] = setup_s
            rec["rss_after_import_mb"] = rss_import
            rec["files"] = len(args.paths)
            rec["versions"] = _versions()
            if effective != config:
                rec["requested_config"] = config
    except Exception as e:  # report, do not hide: the parent shows the error
        traceback.print_exc()
        rec["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(rec, default=str), flush=True)
        return 1
    print(json.dumps(rec, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
