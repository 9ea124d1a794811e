"""cellfeed against annbatch 0.3.1 on annbatch's own store, side by side in one run.

Tahoe-like plates (bench/tahoe_like.py; uncompressed by default, as in issue 39) are
converted by annbatch (`DatasetCollection.add_adatas` with its defaults: blosc lz4 inner
chunks, 1 GB shards, pre-shuffled), timing the conversion and its peak memory. Then:

1. the decode floor of the store (bench/peers/annbatch_peer312.py floor): every inner chunk
   of X/data and X/indices taken out of its shard into memory and decoded by numcodecs'
   blosc on 2 threads, nothing else; also zarr+zarrs reading each array whole and in order;
2. a sweep, one warm run each (`--epochs` epochs): annbatch's Loader at each of
   ANNBATCH_SETTINGS (chunk_size, preload_nchunks), and cellfeed at each of CANDIDATES;
   annbatch's best is kept, and cellfeed's best among the settings whose mean per-batch
   plate entropy is within ENTROPY_TOLERANCE bits of annbatch's best (the same mixing);
3. `--repeats` rounds alternating annbatch (best), cellfeed on the store (best) and cellfeed
   on the original h5ad plates, each run its own fresh process, warm (page cache filled,
   `--epochs` epochs) and cold (files evicted with POSIX_FADV_DONTNEED, 1 epoch);
4. with --profile, `perf record` of one warm run of each at the largest batch size.

Writes OUT.json and OUT.md: medians, each over annbatch's at the same batch size and cache
state, and cellfeed's fraction of the decode floor.

    python bench/annbatch_bench.py --cells 150225 --epochs 3 --repeats 3 --profile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
PEER = HERE / "peers" / "annbatch_peer312.py"
THREADS = 2
# cellfeed's loader settings per batch size on annbatch's store: blocks of 1,024 consecutive
# rows. The store is pre-shuffled (its rows are already in random order), so a block's rows
# are as mixed as any; an inner chunk holds ~64 rows, and a block of 64 would decode two
# chunks for one chunk's rows. (annbatch's Loader likewise reads runs of 32 rows.)
# On annbatch's pre-shuffled store a fetch of 4 blocks of 1,024 rows is enough at either batch
# size (entropy comes from the store's shuffle): at batch 4096 fetch factor 1 ran 221-283k
# cells/s against 142-148k with fetch factor 4 (16 blocks, 4x the memory in flight), same entropy.
CANDIDATES = {64: [dict(block_size=1024, fetch_factor=64), dict(block_size=256, fetch_factor=64),
                   dict(block_size=1024, fetch_factor=16), dict(block_size="chunk", fetch_factor=64)],
              4096: [dict(block_size=1024, fetch_factor=1), dict(block_size=1024, fetch_factor=4),
                     dict(block_size=4096, fetch_factor=1), dict(block_size=256, fetch_factor=1),
                     dict(block_size="chunk", fetch_factor=1)]}
# annbatch's Loader (chunk_size, preload_nchunks): its recommendation for pre-shuffled
# collections and the two others issue 39 tried.
ANNBATCH_SETTINGS = [(32, 512), (64, 256), (512, 32)]
ENTROPY_TOLERANCE = 0.02
H5AD = {64: dict(block_size=16, fetch_factor=64), 4096: dict(block_size=16, fetch_factor=4)}


def entropy_bits(codes) -> float:
    c = np.bincount(np.asarray(codes, dtype=np.int64))
    p = c[c > 0] / c.sum()
    return float(-(p * np.log2(p)).sum())


def evict(paths) -> None:
    for root in paths:
        walk = [(root, [], [""])] if os.path.isfile(root) else os.walk(root)
        for d, _, files in walk:
            for f in files:
                fd = os.open(os.path.join(d, f) if f else d, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def warm(paths) -> None:
    for root in paths:
        walk = [(root, [], [""])] if os.path.isfile(root) else os.walk(root)
        for d, _, files in walk:
            for f in files:
                with open(os.path.join(d, f) if f else d, "rb") as fh:
                    while fh.read(1 << 24):
                        pass


def run_cellfeed(paths, batch_size, epochs, settings, seed=0) -> dict:
    """One process's run (called via --run-cellfeed)."""
    import cellfeed
    t_open = time.perf_counter()
    loader = cellfeed.Loader(paths if len(paths) > 1 else paths[0], batch_size=batch_size,
                             seed=seed, obs=["plate"], output="scipy", threads=THREADS,
                             **settings)
    t0 = time.perf_counter()
    cells, ent = 0, []
    for e in range(epochs):
        loader.set_epoch(e)
        for b in loader:
            cells += len(b)
            ent.append(entropy_bits(b.obs["plate"]))
    dt = time.perf_counter() - t0
    return {"open_seconds": t0 - t_open, "cells": cells, "seconds": dt,
            "cells_per_second": cells / dt, "entropy_bits": float(np.mean(ent)),
            "batches": len(ent)}


def child(cmd) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def perf_profile(cmd, out_txt: Path) -> None:
    """perf record (call graphs off: flat self time) of one run; the top symbols to OUT."""
    data = out_txt.with_suffix(".data")
    rec = subprocess.run(["perf", "record", "-F", "499", "-o", str(data), "--", *cmd],
                         capture_output=True, text=True)
    if rec.returncode != 0:
        out_txt.write_text(f"perf record failed: {rec.stderr[-2000:]}\n")
        return
    rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                          "--sort", "dso,symbol", "--percent-limit", "0.7"],
                         capture_output=True, text=True)
    out_txt.write_text("\n".join(l for l in rep.stdout.splitlines() if l and not l.startswith("#"))
                       + "\n")
    data.unlink(missing_ok=True)


def sweep_table(sweep) -> list[str]:
    """The sweep's runs as markdown lines (shared with bench/scdl_bench.py)."""
    lines = ["", "Sweep (one warm run each):", "",
             "| loader | batch | settings | cells/s | entropy |", "|---|---|---|---|---|"]
    for r in sweep:
        lines.append(f"| {r['loader']} | {r['batch_size']} | {r['setting']} | "
                     f"{r['cells_per_second']:,.0f} | {r['entropy_bits']:.3f} |")
    return lines


def median_of(runs, key="cells_per_second"):
    return statistics.median(r[key] for r in runs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=150_225)
    ap.add_argument("--compression", choices=["none", "gzip"], default="none",
                    help="of the h5ad plates annbatch converts (its store is blosc lz4 either way)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 4096])
    ap.add_argument("--work", type=Path, default=HERE / "results" / "tmp" / "annbatch")
    ap.add_argument("--python312", default=os.environ.get(
        "CELLFEED_ZARR312_PYTHON", str(REPO / ".venv-zarr312" / "bin" / "python")))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "annbatch_bench")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--run-cellfeed", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_cellfeed:
        out = run_cellfeed(args.run_cellfeed, args.batch_sizes[0], args.epochs,
                           json.loads(args.settings))
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(out))
        return

    import tahoe_like
    h5_dir = args.work / f"h5ad_{args.compression}_{args.cells}"
    plates = sorted(str(p) for p in h5_dir.glob("*.h5ad"))
    if not plates:
        plates = [str(p) for p in tahoe_like.generate(
            h5_dir, args.cells, None if args.compression == "none" else "gzip")]
    store = args.work / f"annbatch_{args.compression}_{args.cells}.zarr"
    conv_file = store.with_suffix(".conversion.json")
    if not store.exists():
        conversion = child([args.python312, str(PEER), "convert", str(store), *plates])
        conv_file.write_text(json.dumps(conversion))
    conversion = json.loads(conv_file.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    warm([str(store)])
    floor = child([args.python312, str(PEER), "floor", str(store)])
    print(f"decode floor: {floor['decode_cells_per_second']:,.0f} cells/s (numcodecs blosc, "
          f"{THREADS} threads, {floor['inner_chunks']} chunks); zarr+zarrs whole arrays "
          f"{floor['cells_per_second']:,.0f} cells/s", file=sys.stderr)

    def annbatch_cmd(bs, epochs, cold, setting):
        cmd = [args.python312, str(PEER), "load", str(store), "--batch-size", str(bs),
               "--epochs", str(epochs), "--chunk-size", str(setting[0]),
               "--preload-nchunks", str(setting[1])]
        return cmd + (["--evict"] if cold else [])

    def cellfeed_cmd(paths, bs, epochs, settings):
        return [sys.executable, __file__, "--run-cellfeed", *paths, "--batch-sizes", str(bs),
                "--epochs", str(epochs), "--settings", json.dumps(settings)]

    def log(r):
        print(f"{r['loader']:30s} b={r['batch_size']:5d} {r['state']} {r.get('setting', '')}: "
              f"{r['cells_per_second']:9.0f} cells/s  entropy {r['entropy_bits']:.3f}",
              file=sys.stderr)

    # 2. the sweep: each loader's best settings on this store, mixing held equal.
    sweep, best = [], {}
    for bs in args.batch_sizes:
        warm([str(store)])
        ab = []
        for setting in ANNBATCH_SETTINGS:
            r = child(annbatch_cmd(bs, args.epochs, False, setting))
            r.update(loader="annbatch (its store)", batch_size=bs, state="sweep",
                     setting=list(setting))
            log(r)
            ab.append(r)
        a_best = max(ab, key=lambda r: r["cells_per_second"])
        cf = []
        for setting in CANDIDATES[bs]:
            r = child(cellfeed_cmd([str(store)], bs, args.epochs, setting))
            r.update(loader="cellfeed (annbatch's store)", batch_size=bs, state="sweep",
                     setting=setting)
            log(r)
            cf.append(r)
        ok = [r for r in cf if r["entropy_bits"] >= a_best["entropy_bits"] - ENTROPY_TOLERANCE]
        if not ok:
            raise RuntimeError(f"batch {bs}: no cellfeed setting reaches annbatch's entropy "
                               f"{a_best['entropy_bits']:.3f}")
        c_best = max(ok, key=lambda r: r["cells_per_second"])
        best[bs] = {"annbatch": tuple(a_best["setting"]), "cellfeed": c_best["setting"]}
        sweep += ab + cf

    # 3. alternating rounds with the chosen settings.
    runs = []
    for bs in args.batch_sizes:
        for rep in range(args.repeats):
            for state in (["warm"] if args.no_cold else ["warm", "cold"]):
                epochs = args.epochs if state == "warm" else 1
                for name in ("annbatch (its store)", "cellfeed (annbatch's store)",
                             "cellfeed (h5ad plates)"):
                    paths = plates if "h5ad" in name else [str(store)]
                    (evict if state == "cold" else warm)(paths)
                    if name.startswith("annbatch"):
                        setting = best[bs]["annbatch"]
                        r = child(annbatch_cmd(bs, epochs, state == "cold", setting))
                    else:
                        setting = H5AD[bs] if "h5ad" in name else best[bs]["cellfeed"]
                        r = child(cellfeed_cmd(paths, bs, epochs, setting))
                    r.update(loader=name, batch_size=bs, state=state, repeat=rep,
                             setting=list(setting) if isinstance(setting, tuple) else setting)
                    log(r)
                    runs.append(r)

    # 4. where the time goes, at the largest batch size.
    profiles = {}
    if args.profile:
        bs = max(args.batch_sizes)
        warm([str(store)])
        for name, cmd in (("annbatch", annbatch_cmd(bs, args.epochs, False, best[bs]["annbatch"])),
                          ("cellfeed", cellfeed_cmd([str(store)], bs, args.epochs,
                                                    best[bs]["cellfeed"]))):
            txt = args.out.parent / f"{args.out.name}_perf_{name}_{bs}.txt"
            perf_profile(cmd, txt)
            profiles[name] = txt.name

    summary = []
    for bs in args.batch_sizes:
        for state in ("warm", "cold"):
            rs = [r for r in runs if r["batch_size"] == bs and r["state"] == state]
            if not rs:
                continue
            base = median_of([r for r in rs if r["loader"].startswith("annbatch")])
            for name in dict.fromkeys(r["loader"] for r in rs):
                mine = [r for r in rs if r["loader"] == name]
                med = median_of(mine)
                summary.append({"loader": name, "batch_size": bs, "state": state,
                                "setting": mine[0]["setting"],
                                "cells_per_second": med, "ratio_to_annbatch": med / base,
                                "fraction_of_floor": med / floor["decode_cells_per_second"],
                                "entropy_bits": median_of(mine, "entropy_bits"),
                                "peak_rss_bytes": max(r.get("peak_rss_bytes", 0) for r in mine),
                                "runs": len(mine)})
    load = os.getloadavg()
    result = {"cells": args.cells, "plates_compression": args.compression, "epochs": args.epochs,
              "repeats": args.repeats, "threads": THREADS, "conversion": conversion,
              "floor": floor, "best_settings": {str(k): v for k, v in best.items()},
              "h5ad_settings": {str(k): v for k, v in H5AD.items()}, "summary": summary,
              "sweep": sweep, "runs": runs, "profiles": profiles, "loadavg_at_end": load}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    kind = "uncompressed" if args.compression == "none" else args.compression
    lines = [f"Tahoe-like, {args.cells:,} cells in 14 {kind} h5ad plates; annbatch "
             f"conversion (its defaults) {conversion['seconds']:.1f} s, peak RSS "
             f"{conversion['peak_rss_bytes'] / 2**30:.2f} GiB, store "
             f"{conversion['store_bytes'] / 2**20:.0f} MiB. {THREADS} threads each; medians of "
             f"{args.repeats} alternating runs in fresh processes ({args.epochs} epochs warm, "
             f"1 cold). Load average at the end: {load[0]:.2f}.", "",
             f"Decode floor (every inner chunk decoded by numcodecs blosc, {THREADS} threads, "
             f"nothing else): {floor['decode_cells_per_second']:,.0f} cells/s; zarr+zarrs "
             f"reading each array whole: {floor['cells_per_second']:,.0f} cells/s.", "",
             "| loader | batch | cache | settings | cells/s | x annbatch | x floor | "
             "plate entropy (bits) | peak RSS (GiB) |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['loader']} | {s['batch_size']} | {s['state']} | {s['setting']} | "
                     f"{s['cells_per_second']:,.0f} | {s['ratio_to_annbatch']:.2f} | "
                     f"{s['fraction_of_floor']:.2f} | {s['entropy_bits']:.3f} | "
                     f"{s['peak_rss_bytes'] / 2**30:.2f} |")
    lines += sweep_table(sweep)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
