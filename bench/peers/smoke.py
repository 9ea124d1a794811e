"""Smoke check of the peer-loader harness.

1. Writes two small Tahoe-like datasets with bench/tahoe_like.py (14 plates, gzip):
   a tiny one (default 1,400 cells) and a smoke one (default 6,000 cells).
2. On the tiny one, runs every runner with --verify in its own process: one epoch of
   batches checked against anndata (CSR float32, 62,710 genes, values and plate labels
   equal to anndata's for the rows each runner reports, no row repeated in the epoch).
3. On the smoke one, measures every runner for --seconds (after --warmup) in its own
   process and prints the table (and, with --json, the records).

    python bench/peers/smoke.py [--seconds 3] [--warmup 1] [--dir /tmp/cellfeed_peers]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_BENCH = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == _BENCH / "peers":
    sys.path.pop(0)
if str(_BENCH) not in sys.path:
    sys.path.insert(0, str(_BENCH))

from peers import RUNNERS, SUPPORTS_WORKERS, common  # noqa: E402


def dataset(out: Path, cells: int, compression: str | None, seed: int = 0) -> list[Path]:
    """The 14 plate files in `out`, written unless a complete set with the same
    parameters is already there."""
    from tahoe_like import generate
    marker = out / "GENERATED.json"
    params = {"cells": cells, "compression": compression, "seed": seed, "plates": 14}
    if marker.exists() and json.loads(marker.read_text()) == params:
        paths = sorted(out.glob("plate*.h5ad"))
        if len(paths) == 14:
            return paths
    paths = generate(out, cells, compression, seed)
    marker.write_text(json.dumps(params))
    return sorted(paths)


def _workers(name: str, counts: list[int]) -> list[int]:
    """Worker counts to run for `name`: just 0 for the single-process loaders."""
    return sorted(set(counts)) if SUPPORTS_WORKERS[name] else [0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cellfeed_peers"))
    ap.add_argument("--cells", type=int, default=6_000)
    ap.add_argument("--tiny-cells", type=int, default=1_400)
    ap.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    ap.add_argument("--runners", nargs="+", choices=RUNNERS, default=list(RUNNERS))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--block-size", type=int, default=4)
    ap.add_argument("--fetch-factor", type=int, default=16)
    ap.add_argument("--num-workers", type=int, nargs="+", default=[0])
    ap.add_argument("--skip-verify", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write all records here")
    args = ap.parse_args(argv)
    comp = None if args.compression == "none" else args.compression
    base = {"batch_size": args.batch_size, "block_size": args.block_size,
            "fetch_factor": args.fetch_factor, "seed": 0}
    ok = True
    out = {"verify": [], "measure": []}

    if not args.skip_verify:
        tiny = dataset(args.dir / f"tiny_{args.tiny_cells}_{args.compression}",
                       args.tiny_cells, comp)
        print(f"verify on {len(tiny)} files, {args.tiny_cells} cells ({args.compression})")
        for name in args.runners:
            for w in _workers(name, args.num_workers):
                rep = common.run_in_subprocess(name, tiny, {**base, "num_workers": w},
                                               seconds=0, warmup=0, verify_mode=True)
                out["verify"].append(rep)
                good = rep.get("ok", False) and "error" not in rep
                ok &= good
                detail = rep.get("error") or "; ".join(rep.get("problems", [])) or (
                    f"{rep['batches']} batches, sizes {rep['batch_sizes']}, "
                    f"{rep.get('values_checked', 0):,} values checked against anndata, "
                    f"epoch rows {rep.get('epoch_unique_rows')}/{rep.get('n_obs')}")
                print(f"  {name:<10} w={w}  {'OK ' if good else 'FAIL'}  {detail}")
                if not good and rep.get("stderr_tail"):
                    print(rep["stderr_tail"])

    paths = dataset(args.dir / f"smoke_{args.cells}_{args.compression}", args.cells, comp)
    print(f"\nmeasure on {len(paths)} files, {args.cells} cells ({args.compression}), "
          f"warm-up {args.warmup} s, {args.seconds} s each, one process per run")
    for name in args.runners:
        for w in _workers(name, args.num_workers):
            rec = common.run_in_subprocess(name, paths, {**base, "num_workers": w},
                                           seconds=args.seconds, warmup=args.warmup)
            out["measure"].append(rec)
            if "error" in rec:
                ok = False
                print(f"  {name} w={w}: {rec['error']}\n{rec.get('stderr_tail', '')}")
    print(common.format_table(out["measure"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
