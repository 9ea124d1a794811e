"""The benchmark suite: cellfeed side by side with the loaders users would otherwise pick.

One command, one machine, one run:

    python bench/run_all.py                  # ~1M cells, the figures we report
    python bench/run_all.py --smoke          # tiny, a minute: checks the suite itself

Steps (every loader measured in its own process, on the same files, cores and batch 64):
 1. Tahoe-like data (bench/tahoe_like.py): 14 plates, gzip-4 with 75k-value chunks (as
    CELLxGENE writes) and uncompressed. Checked to open with anndata; the random-sampling
    plate entropy at batch 64 is measured.
 2. The disk's sequential read bandwidth, cold (files evicted with posix_fadvise
    DONTNEED, eviction verified with fincore).
 3. The grid of the scDataset paper (block size x fetch factor): cellfeed's Loader and
    scDataset 0.3.0 through the same harness (cells/s, batch entropy of the plate), and
    cellfeed's engine against the hardware limit: `cellfeed bench --limit` replays the
    fetches it consumed as read + decode only (the bytes those chunks need, at the
    measured read and libdeflate speed of all cores).
 4. Each loader at its best configuration with mean batch entropy >= 3.55 bits
    (scDataset also with 0..2 DataLoader workers; AnnLoader and plain h5py at random).
 5. Cold runs of the best configurations, against the sequential bandwidth.
 6. Peak RSS of every loader; open time and memory of a 100M-cell collection.
Writes bench/results/<date>/ (results.json, table.md, heatmaps *.png) and the "Current
figures" block of docs/BENCHMARKS.md (between its bench:start / bench:end markers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import tahoe_like  # noqa: E402
from peers import common  # noqa: E402

ENTROPY_FLOOR = 3.55
BATCH = 64
COLD_RUNS = 3
COLD_SECONDS = 20.0


# -- helpers ----------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cellfeed_cli() -> str:
    exe = shutil.which("cellfeed")
    if not exe:
        raise SystemExit("the `cellfeed` command is not on PATH: run scripts/install.sh first")
    return exe


def run_with_rss(args: list[str], timeout: float) -> tuple[str, str, int, float]:
    """Runs a command; returns stdout, stderr, exit status and the child's own peak RSS
    (MiB, from wait4: per child, unlike RUSAGE_CHILDREN)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    out_chunks, err_chunks = [], []
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    open_streams = 2
    while open_streams and time.monotonic() - t0 < timeout:
        for key, _ in sel.select(timeout=1):
            data = key.fileobj.readline()
            if not data:
                sel.unregister(key.fileobj)
                open_streams -= 1
            elif key.fileobj is proc.stdout:
                out_chunks.append(data)
            else:
                err_chunks.append(data)
    if open_streams:
        proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return "".join(out_chunks), "".join(err_chunks), proc.returncode, usage.ru_maxrss / 1024.0


def evict(paths) -> dict:
    """Drops the files' pages from the page cache and checks that they are gone."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return {"cached_bytes_after_eviction": cached_bytes(paths)}


def worst_cached(counts: list) -> int | None:
    """The most bytes any eviction left cached (None when fincore could not tell)."""
    return None if None in counts else max(counts)


def cached_bytes(paths) -> int | None:
    if not shutil.which("fincore"):
        return None
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *map(str, paths)],
                         capture_output=True, text=True)
    try:
        return sum(int(x) for x in out.stdout.split())
    except ValueError:
        return None


def _read_files(paths) -> int:
    total, buf = 0, bytearray(1 << 20)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total


def sequential_read_mb_s(paths, streams: int = 1) -> dict:
    """Cold sequential read bandwidth of the files (1 MiB reads, one pass), with `streams`
    threads each reading whole files (a loader's parallel reads can beat one stream)."""
    from concurrent.futures import ThreadPoolExecutor

    info = evict(paths)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(streams) as ex:
        total = sum(ex.map(_read_files, [paths[i::streams] for i in range(streams)]))
    sec = time.perf_counter() - t0
    return {"bytes": total, "seconds": sec, "mb_per_second": total / sec / 1e6,
            "streams": streams, **info}


def random_read_mb_s(paths, read_bytes: int, depth: int = 32, seconds: float = 8) -> dict:
    """The disk's bandwidth for random reads of `read_bytes` (rounded up to 4 KiB) spread
    over the files, with `depth` reads in flight, bypassing the page cache (fio, O_DIRECT,
    libaio): what a cold read of small blocks can get from this disk, however it queues."""
    fio = shutil.which("fio")
    if not fio:
        return {"error": "fio not installed (apt-get install fio)"}
    bs = max(4096, -(-int(read_bytes) // 4096) * 4096)
    out = subprocess.run([fio, "--name=random", "--filename=" + ":".join(map(str, paths)),
                          "--rw=randread", f"--bs={bs}", f"--iodepth={depth}", "--ioengine=libaio",
                          "--direct=1", "--readonly", "--time_based", f"--runtime={seconds:g}",
                          "--output-format=json"], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-300:]}
    job = json.loads(out.stdout)["jobs"][0]["read"]
    return {"block_bytes": bs, "depth": depth, "mb_per_second": job["bw_bytes"] / 1e6,
            "iops": job["iops"]}


def ensure_cached(paths, attempts: int = 3) -> dict:
    """Warm runs need every page cached: re-read the files when fincore finds some missing
    (a big dataset may have been partly evicted since it was last read). Up to `attempts`
    passes: this machine's DAMON pageout works from access ages it updates every few
    seconds, so it may still evict a page that was read a moment ago."""
    size = sum(os.path.getsize(p) for p in paths)
    before = None
    for attempt in range(attempts):
        per_file = [cached_bytes([p]) for p in paths]
        if attempt == 0:
            before = None if None in per_file else sum(per_file)
        # Only the files with pages missing are read again (fincore counts whole pages, so
        # a fully cached file shows at least its size).
        missing = [p for p, c in zip(paths, per_file) if c is None or c < os.path.getsize(p)]
        if not missing:
            break
        _read_files(missing)
    after = cached_bytes(paths)
    return {"cached_before": before, "cached_after": after, "bytes": size, "passes": attempt + 1}


def random_entropy(sizes: list[int], batch: int = BATCH, batches: int = 20000, seed: int = 0) -> float:
    """Mean plate entropy of random batches: plates drawn in proportion to their sizes
    (the large-collection limit, a property of the layout alone)."""
    rng = np.random.default_rng(seed)
    p = np.asarray(sizes, dtype=np.float64) / sum(sizes)
    draws = rng.choice(len(sizes), size=(batches, batch), p=p)
    return float(np.mean([common.entropy_bits(row) for row in draws]))


# -- data -------------------------------------------------------------------------------
def make_datasets(data_dir: Path, cells: int) -> dict:
    sets = {}
    for comp in ("gzip", "none"):
        d = data_dir / f"tahoe_{cells}_{comp}"
        paths = sorted(d.glob("plate*.h5ad"))
        if len(paths) != 14:
            log(f"generating {cells:,} cells ({comp}) in {d}")
            t0 = time.perf_counter()
            paths = tahoe_like.generate(d, cells, None if comp == "none" else "gzip")
            log(f"  done in {time.perf_counter() - t0:.0f} s")
        sets[comp] = [str(p) for p in paths]
    import anndata as ad

    a = ad.read_h5ad(sets["gzip"][0], backed="r")
    assert a.n_vars == tahoe_like.N_GENES and "plate" in a.obs.columns
    a.file.close()
    return sets


def make_100m(data_dir: Path, cells: int) -> list[str]:
    d = data_dir / f"tiny_{cells}"
    paths = sorted(d.glob("plate*.h5ad"))
    if len(paths) == 14:
        return [str(p) for p in paths]
    d.mkdir(parents=True, exist_ok=True)
    log(f"generating a {cells:,}-cell collection with one value per cell in {d}")
    out = []
    for p, n in enumerate(tahoe_like.plate_sizes(cells)):
        path = d / f"plate{p + 1:02d}.h5ad"
        tahoe_like.write_tiny_plate(path, p, n)
        out.append(str(path))
    return out


# -- measurements -----------------------------------------------------------------------
def cellfeed_engine(paths, b: int, f: int, seconds: float, warmup: float, limit: bool,
                    epochs: int = 0) -> dict:
    args = [cellfeed_cli(), "bench", *paths, "--batch-size", str(BATCH), "--block-size", str(b),
            "--fetch-factor", str(f), "--label", "plate", "--seconds", str(seconds),
            "--warmup", str(warmup), "--json"] + (["--limit"] if limit else [])
    if epochs:
        args += ["--epochs", str(epochs)]
    out, err, rc, rss = run_with_rss(args, timeout=seconds + warmup + 600)
    if rc != 0:
        return {"error": err[-2000:], "exit": rc}
    rec = json.loads(out.strip().splitlines()[-1])
    rec["peak_rss_mb"] = rss
    return rec


def peer(name: str, paths, b: int, f: int, w: int, seconds: float, warmup: float) -> dict:
    cfg = {"batch_size": BATCH, "block_size": b, "fetch_factor": f, "num_workers": w, "seed": 0}
    return common.run_in_subprocess(name, paths, cfg, seconds, warmup)


def open_100m(paths) -> dict:
    code = ("import time, resource, json, cellfeed, numpy as np\n"
            "t0 = time.perf_counter(); c = cellfeed.open(PATHS)\n"
            "t_open = time.perf_counter() - t0\n"
            "rows = np.sort(np.random.default_rng(0).choice(c.n_obs, 64, replace=False))\n"
            "t0 = time.perf_counter(); m = c.read(rows); t_read = time.perf_counter() - t0\n"
            "t0 = time.perf_counter(); L = cellfeed.Loader(c, obs=['plate']); b = next(iter(L))\n"
            "t_first = time.perf_counter() - t0\n"
            "print(json.dumps({'n_obs': c.n_obs, 'open_seconds': t_open, 'read_64_seconds': t_read,"
            " 'loader_first_batch_seconds': t_first,"
            " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
            ).replace("PATHS", repr(list(paths)))
    base = ("import time, resource, json, cellfeed, numpy as np\n"
            "print(json.dumps({'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
    out, err, rc, _ = run_with_rss([sys.executable, "-c", code], timeout=600)
    if rc != 0:
        return {"error": err[-2000:]}
    rec = json.loads(out.strip().splitlines()[-1])
    out0, _, _, _ = run_with_rss([sys.executable, "-c", base], timeout=120)
    rec["baseline_rss_mb"] = json.loads(out0.strip().splitlines()[-1])["peak_rss_mb"]
    rec["bytes_on_disk"] = sum(os.path.getsize(p) for p in paths)
    return rec


# -- report -----------------------------------------------------------------------------
def best(records: list[dict], floor: float = ENTROPY_FLOOR) -> dict | None:
    ok = [r for r in records if not r.get("error") and (r.get("entropy_bits_mean") or 0) >= floor]
    return max(ok, key=lambda r: r["cells_per_second"]) if ok else None


def heatmaps(results: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    grid = results["grid"]
    bs, fs = results["grid_block_sizes"], results["grid_fetch_factors"]
    for comp, cells in grid.items():
        panels = [("cellfeed cells/s", "cellfeed", "cells_per_second"),
                  ("scDataset cells/s", "scdataset", "cells_per_second"),
                  ("cellfeed entropy (bits)", "cellfeed", "entropy_bits_mean"),
                  ("cellfeed engine, fraction of hardware limit", "engine", "fraction_of_limit")]
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
        for ax, (title, who, key) in zip(axes, panels):
            m = np.full((len(bs), len(fs)), np.nan)
            for i, b in enumerate(bs):
                for j, f in enumerate(fs):
                    r = cells.get(f"{b}x{f}", {}).get(who, {})
                    if r and not r.get("error") and r.get(key) is not None:
                        m[i, j] = r[key]
            im = ax.imshow(m, cmap="viridis", origin="lower")
            ax.set_xticks(range(len(fs)), fs)
            ax.set_yticks(range(len(bs)), bs)
            ax.set_xlabel("fetch factor")
            ax.set_ylabel("block size")
            ax.set_title(title, fontsize=10)
            for i in range(len(bs)):
                for j in range(len(fs)):
                    if not np.isnan(m[i, j]):
                        v = m[i, j]
                        txt = f"{v:.2f}" if v < 10 else f"{v / 1000:.1f}k"
                        ax.text(j, i, txt, ha="center", va="center", color="w", fontsize=7)
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.suptitle(f"{comp} data, batch {BATCH}, warm page cache")
        fig.tight_layout()
        path = out_dir / f"grid_{comp}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path.name)
    return files


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def ratio_text(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def limit_fractions(engine: dict) -> str:
    """The engine against the limit (uncompressed bytes delivered into fetch buffers) and,
    in parentheses, against the replay into a cache-resident scratch buffer."""
    text = f"{100 * engine.get('fraction_of_limit', 0):.0f}%"
    if engine.get("fraction_of_scratch_limit"):
        text += f" ({100 * engine['fraction_of_scratch_limit']:.0f}%)"
    return text


def markdown(results: dict) -> str:
    lines = [f"Benchmark of {results['date']} on {results['machine']}: {results['cells']:,} cells in "
             f"14 plates, batch {BATCH}, warm page cache unless noted. Command: "
             f"`{results['command']}`.", ""]
    lines += ["**Each loader at its best configuration with mean batch entropy >= 3.55 bits**", "",
              "| data | loader | config | cells/s | entropy (bits) | peak RSS (MB) | vs scDataset |",
              "|---|---|---|---|---|---|---|"]
    for comp, rows in results["best"].items():
        sc = rows.get("scdataset") or {}
        for name, r in rows.items():
            if not r:
                lines.append(f"| {comp} | {name} | none reaches 3.55 bits | - | - | - | - |")
                continue
            c = r.get("config", {})
            cfg = f"b={c.get('block_size')} f={c.get('fetch_factor')} w={c.get('num_workers', 0)}"
            ratio = (r["cells_per_second"] / sc["cells_per_second"]) if sc.get("cells_per_second") else None
            lines.append(f"| {comp} | {name} | {cfg} | {fmt(r['cells_per_second'])} | "
                         f"{r['entropy_bits_mean']:.2f} | {fmt(r.get('peak_rss_mb'))} | "
                         f"{fmt(ratio, 1) + 'x' if ratio else '-'} |")
    lines += ["", "**Grid (block size x fetch factor): cellfeed Loader / scDataset cells/s, cellfeed entropy, "
              "engine fraction of the hardware limit** (in parentheses: of the same replay into a "
              "cache-resident scratch buffer, which no loader that delivers the bytes can match; "
              "docs/BENCHMARKS.md)", ""]
    for comp, cells in results["grid"].items():
        lines += [f"{comp}:", "", "| b \\ f | " + " | ".join(map(str, results["grid_fetch_factors"])) + " |",
                  "|---|" + "---|" * len(results["grid_fetch_factors"])]
        for b in results["grid_block_sizes"]:
            row = []
            for f in results["grid_fetch_factors"]:
                c = cells.get(f"{b}x{f}", {})
                cf, sd, en = c.get("cellfeed", {}), c.get("scdataset", {}), c.get("engine", {})
                row.append(f"{fmt(cf.get('cells_per_second'))} / {fmt(sd.get('cells_per_second'))}, "
                           f"{cf.get('entropy_bits_mean', 0):.2f} b, "
                           f"{limit_fractions(en)}")
            lines.append(f"| {b} | " + " | ".join(row) + " |")
        lines.append("")
    if results.get("extra"):
        lines += ["**Beyond the grid** (larger fetches; cellfeed's `block_size=\"chunk\"`: one block per "
                  "storage chunk)", "",
                  "| data | loader | config | cells/s | entropy (bits) | engine vs hardware limit |",
                  "|---|---|---|---|---|---|"]
        for comp, extra in results["extra"].items():
            for key, r in extra.items():
                if key.startswith("engine "):
                    continue
                name, bf = key.split(" ")
                eng = extra.get(f"engine {bf}", {}) if name == "cellfeed" else {}
                c = r.get("config", {})
                frac = limit_fractions(eng) if eng.get("fraction_of_limit") else "-"
                lines.append(f"| {comp} | {name} | b={c.get('block_size')} f={c.get('fetch_factor')} | "
                             f"{fmt(r.get('cells_per_second'))} | {r.get('entropy_bits_mean') or 0:.2f} | {frac} |")
        lines.append("")
    if results.get("cold"):
        lines += [f"**Cold page cache** (files evicted before each run; eviction checked with fincore; "
                  f"median of {COLD_RUNS} runs of up to {COLD_SECONDS:g} s, range in parentheses; "
                  "random reads: fio, O_DIRECT, 32 in flight, of the configuration's read size)", "",
                  "| data | config | cells/s | MB/s read (needed bytes) | sequential MB/s (best of 1 and "
                  f"{os.cpu_count()} streams) | fraction | random-read MB/s (read size) | fraction | "
                  "cold / warm cells/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in results["cold"]:
            rnd = r.get("random_read") or {}
            frac_rnd = r.get("fraction_of_random_read")
            spread = r.get("runs_cells_per_second") or []
            spread = f" ({fmt(min(spread))}-{fmt(max(spread))})" if len(spread) > 1 else ""
            lines.append(f"| {r['data']} | b={r['block_size']} f={r['fetch_factor']} | "
                         f"{fmt(r.get('cells_per_second'))}{spread} | {fmt(r.get('needed_mb_per_second'))} | "
                         f"{fmt(r.get('sequential_mb_per_second'))} | {r.get('fraction_of_sequential', 0):.2f} | "
                         f"{fmt(rnd.get('mb_per_second'))} ({fmt(rnd.get('block_bytes', 0) / 1024)} KiB) | "
                         f"{'-' if frac_rnd is None else f'{frac_rnd:.2f}'} | "
                         f"{ratio_text(r.get('cells_per_second'), r.get('warm_cells_per_second'))} |")
        lines.append("")
    if results.get("open_100m"):
        o = results["open_100m"]
        lines += [f"**{o.get('n_obs', 0):,}-cell collection** ({fmt(o.get('bytes_on_disk', 0) / 1e9, 1)} GB): "
                  f"open {o.get('open_seconds', 0):.2f} s, 64 random rows {o.get('read_64_seconds', 0):.3f} s, "
                  f"first loader batch {o.get('loader_first_batch_seconds', 0):.2f} s, peak RSS "
                  f"{fmt(o.get('peak_rss_mb'))} MB (Python + imports alone: {fmt(o.get('baseline_rss_mb'))} MB).", ""]
    return "\n".join(lines)


def update_readme(table: str, rel_dir: str) -> None:
    """Replaces the current figures in docs/BENCHMARKS.md (the earlier ones stay in
    bench/results/ and docs/benchmark_history.md)."""
    page = ROOT / "docs" / "BENCHMARKS.md"
    text = page.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    block = f"{start}\n{table}\nHeatmaps and raw JSON: `{rel_dir}/`.\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += f"\n## Current figures\n\n{block}\n"
    page.write_text(text)


# -- main -------------------------------------------------------------------------------
def _extra_config(text: str) -> tuple:
    name, b, f = text.split(":")
    return name, (b if b == "chunk" else int(b)), int(f)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/cellfeed_bench"))
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--block-sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--fetch-factors", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--loaders", nargs="+", default=["cellfeed", "scdataset", "annloader", "h5py"])
    ap.add_argument("--cells-100m", type=int, default=100_000_000)
    ap.add_argument("--extra-configs", type=_extra_config, nargs="*",
                    default=[("cellfeed", "chunk", 64), ("cellfeed", "chunk", 256),
                             ("cellfeed", 64, 256), ("scdataset", 16, 256), ("scdataset", 64, 256)],
                    help="LOADER:BLOCK:FETCH configurations run besides the grid (BLOCK may be "
                         "'chunk' for cellfeed)")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--no-100m", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results (smoke: a temp dir)")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and grid: checks the suite")
    args = ap.parse_args(argv)
    if args.smoke:
        args.cells, args.seconds, args.warmup = 3000, 1.0, 0.3
        args.block_sizes, args.fetch_factors = [1, 16], [1, 16]
        args.extra_configs = [("cellfeed", "chunk", 16), ("scdataset", 16, 32)]
        args.cells_100m, args.no_readme = 200_000, True
    if args.out is None:
        import tempfile
        args.out = Path(tempfile.mkdtemp(prefix="cellfeed_bench_")) if args.smoke else HERE / "results"
    results = {"date": dt.datetime.now().isoformat(timespec="seconds"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "command": " ".join(["python", "bench/run_all.py", *(argv if argv is not None else sys.argv[1:])]),
               "cells": args.cells, "batch_size": BATCH,
               "grid_block_sizes": args.block_sizes, "grid_fetch_factors": args.fetch_factors}
    sets = make_datasets(args.data_dir, args.cells)
    sizes = [tahoe_like.plate_sizes(args.cells)[i] for i in range(14)]
    results["random_sampling_entropy_bits"] = random_entropy(sizes)
    log(f"random-sampling plate entropy at batch {BATCH}: {results['random_sampling_entropy_bits']:.3f} bits")
    # The disk's sequential bandwidth: the better of one stream and one per core.
    results["sequential_read"] = {}
    for c, p in sets.items():
        runs = [sequential_read_mb_s(p, streams) for streams in sorted({1, os.cpu_count() or 1})]
        for r in runs:
            log(f"cold sequential read ({c}, {r['streams']} streams): {r['mb_per_second']:,.0f} MB/s "
                f"(cached after eviction: {r['cached_bytes_after_eviction']} bytes)")
        results["sequential_read"][c] = {**max(runs, key=lambda r: r["mb_per_second"]), "runs": runs}

    def warm(comp: str) -> None:
        state = ensure_cached(sets[comp])
        results.setdefault("cache_checks", []).append({"data": comp, **state})
        if state["cached_before"] is not None and state["cached_before"] < state["bytes"]:
            log(f"warm {comp}: {state['cached_before']:,} of {state['bytes']:,} bytes were cached; "
                f"re-read, now {state['cached_after']}")

    results["grid"] = {}
    for comp, paths in sets.items():
        cells = results["grid"][comp] = {}
        for b in args.block_sizes:
            for f in args.fetch_factors:
                c = cells[f"{b}x{f}"] = {}
                # Re-checked before every run: this machine pages out what was not read
                # for about a minute (DAMON), so "warm" must be made true each time.
                if "cellfeed" in args.loaders:
                    warm(comp)
                    c["cellfeed"] = peer("cellfeed", paths, b, f, 0, args.seconds, args.warmup)
                    warm(comp)
                    c["engine"] = cellfeed_engine(paths, b, f, args.seconds, args.warmup, limit=True)
                if "scdataset" in args.loaders:
                    warm(comp)
                    c["scdataset"] = peer("scdataset", paths, b, f, 0, args.seconds, args.warmup)
                log(f"{comp} b={b} f={f}: " + ", ".join(
                    f"{k} {fmt(v.get('cells_per_second'))} cells/s "
                    f"({v.get('entropy_bits_mean') or 0:.2f} b)" + (f" {100 * v['fraction_of_limit']:.0f}% of limit" if 'fraction_of_limit' in v else "")
                    + (f" ERROR {v['error'][:200]}" if v.get('error') else "")
                    for k, v in c.items()))

    # Configurations beyond the paper's grid that reach >= 3.55 bits with fewer, larger
    # reads: fetch factor 256 for both loaders, and cellfeed's chunk-sized blocks.
    results["extra"] = {}
    for comp, paths in sets.items():
        extra = results["extra"][comp] = {}
        for name, b, f in args.extra_configs:
            if name not in args.loaders:
                continue
            warm(comp)
            r = peer(name, paths, b, f, 0, args.seconds, args.warmup)
            if name == "cellfeed":
                warm(comp)
                extra[f"engine {b}x{f}"] = cellfeed_engine(paths, b, f, args.seconds, args.warmup, limit=True)
            extra[f"{name} {b}x{f}"] = r
            log(f"extra {comp} {name} b={b} f={f}: {fmt(r.get('cells_per_second'))} cells/s "
                f"({r.get('entropy_bits_mean') or 0:.2f} b)" + (f" ERROR {r['error'][:200]}" if r.get('error') else ""))

    # Best configuration at >= 3.55 bits for each loader.
    results["best"] = {}
    for comp, paths in sets.items():
        row = results["best"][comp] = {}
        cells = results["grid"][comp].values()
        extra = results["extra"][comp]
        warm(comp)
        if "cellfeed" in args.loaders:
            row["cellfeed"] = best([c["cellfeed"] for c in cells if "cellfeed" in c] +
                                   [v for k, v in extra.items() if k.startswith("cellfeed ")])
        if "scdataset" in args.loaders:
            cand = [c["scdataset"] for c in cells if "scdataset" in c] + \
                   [v for k, v in extra.items() if k.startswith("scdataset ")]
            top = best(cand)
            if top:  # its own best settings include DataLoader workers
                cfg = top["config"]
                for w in (1, 2):
                    warm(comp)
                    r = peer("scdataset", paths, cfg["block_size"], cfg["fetch_factor"], w,
                             args.seconds, args.warmup)
                    cand.append(r)
                top = best(cand)
            row["scdataset"] = top
        for name in ("annloader", "h5py"):
            if name in args.loaders:
                warm(comp)
                row[name] = peer(name, paths, 1, 1, 0, args.seconds, args.warmup)
        log(f"best ({comp}): " + ", ".join(f"{k} {fmt((v or {}).get('cells_per_second'))}" for k, v in row.items()))

    if not args.no_cold and "cellfeed" in args.loaders:
        results["cold"] = []
        for comp, paths in sets.items():
            top = results["best"][comp].get("cellfeed")
            configs = [(4, 16), (16, 64)]
            if top and (top["config"]["block_size"], top["config"]["fetch_factor"]) not in configs:
                configs.append((top["config"]["block_size"], top["config"]["fetch_factor"]))
            for b, f in configs:
                warm(comp)
                warm_run = cellfeed_engine(paths, b, f, args.seconds, args.warmup, limit=True)
                # The disk under this VM varies several-fold from minute to minute (a host
                # cache): COLD_RUNS runs, each from an evicted cache, and their median.
                runs = []
                for _ in range(COLD_RUNS):
                    ev = evict(paths)
                    # One epoch at most (a second pass would find the pages cached), and
                    # at most COLD_SECONDS of it.
                    run = cellfeed_engine(paths, b, f, COLD_SECONDS, 0, limit=False, epochs=1)
                    ev["cached_bytes_after_run"] = cached_bytes(paths)
                    runs.append({**run, **ev})
                cold = sorted(runs, key=lambda r: r.get("cells_per_second") or 0)[len(runs) // 2]
                ev = {"runs_cells_per_second": [r.get("cells_per_second") for r in runs],
                      "cached_bytes_after_eviction": worst_cached([r["cached_bytes_after_eviction"] for r in runs])}
                bytes_per_cell = warm_run.get("limit_bytes_read", 0) / max(warm_run.get("cells", 1), 1)
                # limit_bytes_read covers the fetches replayed, whose cells are in `cells` units.
                if warm_run.get("limit_seconds"):
                    replay_cells = warm_run["limit_cells_per_second"] * warm_run["limit_seconds"]
                    bytes_per_cell = warm_run["limit_bytes_read"] / max(replay_cells, 1)
                needed = cold.get("cells_per_second", 0) * bytes_per_cell / 1e6
                seq = results["sequential_read"][comp]["mb_per_second"]
                # The disk's own speed for reads the size of this configuration's: a block's
                # data or indices (uncompressed), or a whole chunk (compressed, or chunk blocks).
                per_read = (warm_run.get("limit_bytes_read", 0) / max(warm_run.get("limit_chunks", 1), 1)
                            if b == "chunk" or comp != "none" else bytes_per_cell * b / 2)
                rnd = random_read_mb_s(paths, per_read)
                results["cold"].append({"data": comp, "block_size": b, "fetch_factor": f,
                                        "cells_per_second": cold.get("cells_per_second"),
                                        "needed_mb_per_second": needed,
                                        "sequential_mb_per_second": seq,
                                        "fraction_of_sequential": needed / seq if seq else None,
                                        "warm_cells_per_second": warm_run.get("cells_per_second"),
                                        "random_read": rnd,
                                        "fraction_of_random_read": (needed / rnd["mb_per_second"]
                                                                    if rnd.get("mb_per_second") else None),
                                        **ev, "error": cold.get("error")})
                log(f"cold {comp} b={b} f={f}: {fmt(cold.get('cells_per_second'))} cells/s, "
                    f"{needed:,.0f} MB/s of needed bytes vs {seq:,.0f} MB/s sequential, "
                    f"{fmt(rnd.get('mb_per_second'))} MB/s random reads of {fmt(rnd.get('block_bytes'))} B")

    if not args.no_100m:
        results["open_100m"] = open_100m(make_100m(args.data_dir, args.cells_100m))
        log(f"100M open: {results['open_100m']}")

    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H%M")
    out_dir = args.out / (stamp + ("_smoke" if args.smoke else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    results["heatmaps"] = heatmaps(results, out_dir)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown(results)
    (out_dir / "table.md").write_text(table + "\n")
    print(table)
    if not args.no_readme:
        update_readme(table, os.path.relpath(out_dir, ROOT))
    log(f"wrote {out_dir}")
    return results


if __name__ == "__main__":
    main()
