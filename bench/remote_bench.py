"""Reading atlases where they live (issue 32): cellfeed over HTTP against cellfeed on local
files and against what users use today on the same URLs, in one run.

Data: Tahoe-like plates (bench/tahoe_like.py, 14 plates, chunks of 75,000 values) as gzip
and as uncompressed h5ad, and the same cells as zarr v2 stores written by anndata (X chunks
of 75,000 values, zarr-python's default blosc lz4) zipped STORED (`plateNN.zarr.zip`).

Servers, all on 127.0.0.1 and started and stopped here: nginx (Debian's nginx-light, a
generated config, keep-alive, sendfile off: see NGINX_CONF) serves the data directory with
native byte ranges; in front of it one latency proxy per delay (0, 20, 50 ms; an asyncio
HTTP/1.1 proxy of ours in its own process, keep-alive preserved, that waits the delay before
forwarding each request, i.e. delays each response's start, and counts requests, body bytes
and requests in flight). Measured at 0 ms, the proxy itself costs 30-65% of cellfeed's
throughput; the "nginx, no proxy" row shows what is left without it.

Loaders, each run in its own fresh process, in alternating order:
- cellfeed, local files (the baseline), and cellfeed on the proxy's URLs (and once on
  nginx directly, without the proxy). An h5ad URL that cellfeed's Loader refuses is
  reported as "not supported by this build", so this program runs unchanged once it lands.
  cellfeed's Loader: block_size="chunk" (one block per storage chunk), fetch_factor 256 at
  batch 64 and 4 at batch 4096, 2 threads; whole epochs.
- peers, the same URLs through the same proxy: anndata's backed-mode indexing
  (`anndata.io.sparse_dataset(...)[rows]`, the code behind `AnnData(backed="r").X[rows]`)
  over h5py over fsspec's HTTPFileSystem with its defaults (5 MiB blocks, read-ahead
  cache; h5ad), and over zarr-python
  over fsspec (`zip::http://...`, zarr), on uniformly random rows: each epoch a random
  permutation of all cells, cut into batches; a batch's rows sorted and read per plate in
  pieces of at most 64 rows (the deadline is checked between pieces). A peer runs for
  --peer-seconds after its open; cells/s counts the rows of the pieces it finished.

Per run: time to open, to the first batch, cells/s after the first batch, the mean plate
entropy of the batches (the same mixing), bytes fetched (the proxy's count of response
bodies) over bytes needed (the stored size of the distinct X/data, X/indices and X/indptr
chunks that hold the cells delivered, once per epoch), requests per second, peak RSS.

    nice -n 19 python bench/remote_bench.py --epochs 2 --peer-seconds 10 --out bench/results/2026-12-08_remote

(--cells for larger data; --repeats N for N alternating rounds, medians reported;
--summarize RUNS_JSON rewrites OUT from an interrupted run's runs.partial.json.)
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
THREADS = 2
DELAYS_MS = (0, 20, 50)
CHUNK_VALUES = 75_000
CELLFEED = {64: dict(block_size="chunk", fetch_factor=256),
            4096: dict(block_size="chunk", fetch_factor=4)}
PEER_PIECE = 64
FORMATS = ("h5ad_gzip", "h5ad_none", "zarr_zip")


# -- processes we start die with us ------------------------------------------------------
def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_process(cmd, **kw):
    return subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent, **kw)


def stop_process(proc):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=15.0):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


# -- nginx -------------------------------------------------------------------------------
NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
user root;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    # sendfile (with tcp_nopush) stalled each answer on a reused connection by ~35-40 ms here,
    # for cellfeed and for Python's http.client alike (52 chunk reads: 0.06 s without it,
    # 3.06 s with it): a loopback artefact of the server, not what S3 does.
    sendfile off;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def start_nginx(root: Path, run_dir: Path):
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        raise RuntimeError("nginx not found: apt-get install -y nginx-light")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(run=run_dir.resolve(), port=port, root=Path(root).resolve()))
    proc = start_process([exe, "-c", str(conf), "-p", str(run_dir)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, "nginx")
    return proc, port


# -- the latency proxy (its own process: python remote_bench.py --proxy ...) -------------
class ProxyStats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.requests = self.bytes = self.connections = 0
        self.in_flight = self.max_in_flight = 0
        self.first = self.last = None

    def as_dict(self):
        return {"requests": self.requests, "bytes": self.bytes, "connections": self.connections,
                "max_in_flight": self.max_in_flight,
                "span_seconds": (self.last - self.first) if self.first is not None else 0.0}


def _header(head: bytes, name: bytes):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


async def _proxy_connection(creader, cwriter, upstream_port, delay, stats):
    ureader = uwriter = None
    counted = False
    try:
        while True:
            try:
                head = await creader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            method, path = head.split(b" ", 2)[:2]
            if path.startswith(b"/__"):  # control: /__stats, /__reset
                if path == b"/__reset":
                    stats.reset()
                body = json.dumps(stats.as_dict()).encode()
                cwriter.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await cwriter.drain()
                continue
            if not counted:
                stats.connections += 1
                counted = True
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            now = time.monotonic()
            stats.first = now if stats.first is None else stats.first
            try:
                if delay:
                    await asyncio.sleep(delay)
                if uwriter is None:
                    ureader, uwriter = await asyncio.open_connection("127.0.0.1", upstream_port)
                uwriter.write(head)  # GET and HEAD only: no request body
                await uwriter.drain()
                rhead = await ureader.readuntil(b"\r\n\r\n")
                status = int(rhead.split(b" ", 2)[1])
                length = _header(rhead, b"content-length")
                if _header(rhead, b"transfer-encoding"):
                    raise RuntimeError("chunked answers are not proxied")
                n = 0 if method == b"HEAD" or status in (204, 304) else int(length or 0)
                cwriter.write(rhead)
                left = n
                while left:
                    chunk = await ureader.read(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError("upstream closed mid-body")
                    cwriter.write(chunk)
                    left -= len(chunk)
                    await cwriter.drain()
                await cwriter.drain()
                stats.bytes += n
            finally:
                stats.in_flight -= 1
                stats.last = time.monotonic()
            if (_header(rhead, b"connection") or b"").lower() == b"close":
                uwriter.close()
                ureader = uwriter = None
            if (_header(head, b"connection") or b"").lower() == b"close":
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        for w in (uwriter, cwriter):
            if w is not None:
                w.close()


def run_proxy(upstream_port: int, delay_ms: float, port: int) -> None:
    stats = ProxyStats()

    async def main():
        server = await asyncio.start_server(
            lambda r, w: _proxy_connection(r, w, upstream_port, delay_ms / 1000.0, stats),
            "127.0.0.1", port, backlog=256)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_proxy(upstream_port: int, delay_ms: int):
    port = free_port()
    proc = start_process([sys.executable, __file__, "--proxy", str(upstream_port),
                          "--delay-ms", str(delay_ms), "--port", str(port)])
    wait_port(port, proc, f"proxy ({delay_ms} ms)")
    return proc, port


def proxy_call(port: int, what: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__{what}", timeout=10) as r:
        return json.loads(r.read())


# -- data --------------------------------------------------------------------------------
def prepare(work: Path, cells: int) -> dict:
    """{format: [local paths]} (h5ad plates written by tahoe_like; zarr zips from them)."""
    import tahoe_like
    out = {}
    for comp in ("gzip", "none"):
        d = work / f"h5ad_{comp}"
        paths = sorted(d.glob("*.h5ad"))
        if not paths:
            paths = tahoe_like.generate(d, cells, None if comp == "none" else "gzip")
        out[f"h5ad_{comp}"] = [str(p) for p in paths]
    d = work / "zarr_zip"
    d.mkdir(parents=True, exist_ok=True)
    zips = []
    for h5 in out["h5ad_none"]:
        z = d / (Path(h5).stem + ".zarr.zip")
        if not z.exists():
            to_zarr_zip(Path(h5), z)
        zips.append(str(z))
    out["zarr_zip"] = zips
    return out


def to_zarr_zip(h5: Path, dest: Path) -> None:
    import anndata as ad
    import zarr
    tmp = dest.with_suffix(".tmpdir")
    shutil.rmtree(tmp, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ad.read_h5ad(h5)
        g = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        ad.io.write_elem(g, "/", a, dataset_kwargs={"chunks": (CHUNK_VALUES,)})
        zarr.consolidate_metadata(str(tmp))
    part = dest.with_suffix(".part")
    with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_STORED) as z:
        for root, _, files in sorted(os.walk(tmp)):
            for f in sorted(files):
                full = Path(root) / f
                z.write(full, str(full.relative_to(tmp)))
    part.rename(dest)
    shutil.rmtree(tmp)


def chunk_tables(fmt: str, paths) -> list:
    """Per file: n_obs and, for X/data, X/indices and X/indptr, each chunk's first element
    and stored size (bytes as they lie in the file: compressed where compressed)."""
    import h5py
    tables = []
    for p in paths:
        t = {}
        if fmt.startswith("h5ad"):
            with h5py.File(p, "r") as f:
                for name in ("data", "indices", "indptr"):
                    ds = f["X"][name]
                    infos = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
                    infos.sort(key=lambda c: c.chunk_offset[0])
                    t[name] = {"starts": [int(c.chunk_offset[0]) for c in infos],
                               "sizes": [int(c.size) for c in infos]}
                t["indptr_values"] = f["X"]["indptr"][:].tolist()
        else:
            with zipfile.ZipFile(p) as z:
                sizes = {i.filename: i.compress_size for i in z.infolist()}
                meta = json.loads(z.read(".zmetadata"))["metadata"]
                for name in ("data", "indices", "indptr"):
                    zarray = meta[f"X/{name}/.zarray"]
                    step, n = zarray["chunks"][0], zarray["shape"][0]
                    keys = range(math.ceil(n / step))
                    t[name] = {"starts": [k * step for k in keys],
                               "sizes": [sizes.get(f"X/{name}/{k}", 0) for k in keys]}
                import zarr
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    g = zarr.open_group(zarr.storage.ZipStore(p, mode="r"), mode="r")
                    t["indptr_values"] = g["X/indptr"][:].tolist()
        t["n_obs"] = len(t["indptr_values"]) - 1
        tables.append(t)
    return tables


def needed_bytes(tables, rows) -> int:
    """Stored bytes of the distinct chunks that hold `rows` (global row ids)."""
    offsets = np.cumsum([0] + [t["n_obs"] for t in tables])
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    total = 0
    for i, t in enumerate(tables):
        local = rows[(rows >= offsets[i]) & (rows < offsets[i + 1])] - offsets[i]
        if not len(local):
            continue
        indptr = np.asarray(t["indptr_values"], dtype=np.int64)
        touched = {}
        for name in ("data", "indices"):
            starts = np.asarray(t[name]["starts"], dtype=np.int64)
            lo, hi = indptr[local], indptr[local + 1]
            keep = hi > lo
            a = np.searchsorted(starts, lo[keep], side="right") - 1
            b = np.searchsorted(starts, hi[keep] - 1, side="right") - 1
            ids = np.unique(np.concatenate([np.arange(x, y + 1) for x, y in zip(a, b)])) \
                if len(a) else np.array([], dtype=np.int64)
            touched[name] = ids
        starts = np.asarray(t["indptr"]["starts"], dtype=np.int64)
        ids = np.unique(np.concatenate([np.searchsorted(starts, local, side="right") - 1,
                                        np.searchsorted(starts, local + 1, side="right") - 1]))
        touched["indptr"] = ids
        for name, ids in touched.items():
            sizes = t[name]["sizes"]
            total += sum(sizes[int(k)] for k in ids)
    return int(total)


def plate_of(tables, rows):
    offsets = np.cumsum([0] + [t["n_obs"] for t in tables])
    return np.searchsorted(offsets, np.asarray(rows), side="right") - 1


def entropy_bits(codes) -> float:
    c = np.bincount(np.asarray(codes, dtype=np.int64))
    p = c[c > 0] / c.sum()
    return float(-(p * np.log2(p)).sum())


# -- one run, in a fresh process ---------------------------------------------------------
def run_cellfeed(paths, bs, epochs, tables, proxy_port, remote_h5ad) -> dict:
    import cellfeed
    t0 = time.perf_counter()
    try:
        loader = cellfeed.Loader(paths, batch_size=bs, seed=0, obs=["plate"], output="scipy",
                                 threads=THREADS, **CELLFEED[bs])
    except Exception as e:  # noqa: BLE001 -- reported, not hidden
        if remote_h5ad:
            return {"error": f"not supported by this build: {type(e).__name__}: {e}"}
        raise
    t_open = time.perf_counter()
    at_open = proxy_call(proxy_port, "stats") if proxy_port else None
    t_first, cells, first_cells, ents, needed = None, 0, 0, [], 0
    for e in range(epochs):
        loader.set_epoch(e)
        seen = []
        for b in loader:
            if t_first is None:
                t_first, first_cells = time.perf_counter(), len(b)
            cells += len(b)
            seen.append(b.rows)
            ents.append(entropy_bits(plate_of(tables, b.rows)))
        needed += needed_bytes(tables, np.concatenate(seen))
    t_end = time.perf_counter()
    return {"open_seconds": t_open - t0, "first_batch_seconds": t_first - t0,
            "cells": cells, "seconds": t_end - t_first,
            "cells_per_second": (cells - first_cells) / (t_end - t_first)
            if len(ents) > 1 else float("nan"),
            "entropy_bits": float(np.mean(ents)), "batches": len(ents),
            "needed_bytes": needed, "at_open": at_open}


def run_peer(fmt, urls, bs, budget, tables, proxy_port) -> dict:
    import anndata as ad
    import fsspec
    import scipy.sparse as sp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        if fmt.startswith("h5ad"):
            import h5py
            fs = fsspec.filesystem("http")
            handles = [h5py.File(fs.open(u, "rb"), "r") for u in urls]
            Xs = [ad.io.sparse_dataset(h["X"]) for h in handles]
        else:
            import zarr
            groups = [zarr.open_group(f"zip::{u}", mode="r") for u in urls]
            Xs = [ad.io.sparse_dataset(g["X"]) for g in groups]
        t_open = time.perf_counter()
        at_open = proxy_call(proxy_port, "stats")
        n = [t["n_obs"] for t in tables]
        offsets = np.cumsum([0] + n)
        rng = np.random.default_rng(0)
        deadline = t_open + budget
        cells, ents, needed, t_first, first_cells, epoch = 0, [], 0, None, 0, 0
        done = False
        while not done:
            perm = rng.permutation(offsets[-1])
            seen = []
            for b0 in range(0, len(perm), bs):
                rows = np.sort(perm[b0:b0 + bs])
                plates = plate_of(tables, rows)
                got = []
                for p in np.unique(plates):
                    local = rows[plates == p] - offsets[p]
                    for k in range(0, len(local), PEER_PIECE):
                        piece = local[k:k + PEER_PIECE]
                        got.append(Xs[p][piece])
                        seen.append(piece + offsets[p])
                        cells += len(piece)
                        if time.perf_counter() > deadline:
                            done = True
                            break
                    if done:
                        break
                if done and t_first is not None:
                    break
                sp.vstack(got)
                ents.append(entropy_bits(plates))
                if t_first is None:
                    t_first, first_cells = time.perf_counter(), cells
                    if done:
                        break
            epoch += 1
            needed += needed_bytes(tables, np.concatenate(seen))
        t_end = time.perf_counter()
    steady = t_end - t_first
    return {"open_seconds": t_open - t0, "first_batch_seconds": t_first - t0,
            "cells": cells, "seconds": steady,
            "cells_per_second": (cells - first_cells) / steady if steady > 0 else float("nan"),
            "entropy_bits": float(np.mean(ents)), "batches": len(ents), "epochs_started": epoch,
            "needed_bytes": needed, "at_open": at_open}


def child(cmd, timeout) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         preexec_fn=_die_with_parent)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def warm(paths) -> None:
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


# -- the report --------------------------------------------------------------------------
def summarize(runs):
    keys = {}
    for r in runs:
        keys.setdefault((r["format"], r["batch_size"], r["loader"], r["delay_ms"]), []).append(r)
    rows = []
    for (fmt, bs, loader, delay), rs in keys.items():
        ok = [r for r in rs if not r.get("error")]
        row = {"format": fmt, "batch_size": bs, "loader": loader, "delay_ms": delay,
               "runs": len(rs)}
        if not ok:
            row["error"] = rs[0]["error"]
            rows.append(row)
            continue
        for r in ok:  # a peer that finished no batch after its first: cells over its whole time
            if not r["cells_per_second"] > 0:
                r["cells_per_second"] = r["cells"] / (r["seconds"] + r["first_batch_seconds"]
                                                      - r["open_seconds"])
                r["cells_per_second_note"] = "no batch after the first: cells / time after open"
        med = lambda k: statistics.median(r[k] for r in ok if r.get(k) is not None)  # noqa: E731
        row.update(cells_per_second=med("cells_per_second"), open_seconds=med("open_seconds"),
                   first_batch_seconds=med("first_batch_seconds"),
                   entropy_bits=med("entropy_bits"),
                   peak_rss_bytes=max(r["peak_rss_bytes"] for r in ok))
        if ok[0].get("proxy"):
            fetched = [r["proxy"]["bytes"] for r in ok]
            row.update(bytes_fetched=statistics.median(fetched),
                       bytes_needed=statistics.median(r["needed_bytes"] for r in ok),
                       fetched_over_needed=statistics.median(
                           r["proxy"]["bytes"] / r["needed_bytes"] for r in ok),
                       after_open_over_needed=statistics.median(
                           (r["proxy"]["bytes"] - r["at_open"]["bytes"]) / r["needed_bytes"]
                           for r in ok),
                       open_requests=statistics.median(r["at_open"]["requests"] for r in ok),
                       requests=statistics.median(r["proxy"]["requests"] for r in ok),
                       requests_per_second=statistics.median(
                           r["proxy"]["requests"] / max(r["proxy"]["span_seconds"], 1e-9)
                           for r in ok),
                       bytes_per_request=statistics.median(
                           r["proxy"]["bytes"] / max(r["proxy"]["requests"], 1) for r in ok),
                       max_in_flight=max(r["proxy"]["max_in_flight"] for r in ok))
        rows.append(row)
    for row in rows:
        if "cells_per_second" not in row:
            continue
        same = lambda loader, delay: next((x for x in rows if x["format"] == row["format"]  # noqa: E731
                                           and x["batch_size"] == row["batch_size"]
                                           and x["loader"] == loader and x["delay_ms"] == delay
                                           and "cells_per_second" in x), None)
        if row["loader"] == "cellfeed URL":
            base = same("cellfeed local", None)
            if base and base["cells_per_second"] > 0:
                row["x_cellfeed_local"] = row["cellfeed_per_second_ratio"] = \
                    row["cells_per_second"] / base["cells_per_second"]
            peer = next((x for x in rows if x["format"] == row["format"]
                         and x["batch_size"] == row["batch_size"]
                         and x["loader"].startswith("peer") and x["delay_ms"] == row["delay_ms"]
                         and "cells_per_second" in x), None)
            if peer and peer["cells_per_second"] > 0:
                row["x_peer"] = row["cells_per_second"] / peer["cells_per_second"]
            row.pop("cellfeed_per_second_ratio", None)
    return rows


def markdown(result) -> str:
    s = result["settings"]
    lines = [f"Remote reads, {s['cells']:,} Tahoe-like cells in 14 plates, on {s['machine']}; "
             f"servers nginx {s['nginx']} on 127.0.0.1 behind a latency proxy (asyncio, its own "
             f"process). Each run a fresh process, runs alternating; medians of {s['repeats']} "
             f"round(s). cellfeed: {THREADS} threads, block_size=chunk, fetch_factor "
             f"{CELLFEED[64]['fetch_factor']} (batch 64) / {CELLFEED[4096]['fetch_factor']} "
             f"(batch 4096), {s['epochs']} epochs. Peers: anndata backed indexing of sorted random "
             f"rows, {s['peer_seconds']} s each. Load average at the end: "
             f"{result['loadavg_at_end'][0]:.2f} (shared machine, nice 19).", "",
             "| data | batch | loader | delay (ms) | cells/s | x local | x peer | open (s) | "
             "first batch (s) | entropy (bits) | fetched / needed (after open) | requests "
             "(open) | req/s | KiB/req | max in flight | peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    for r in result["summary"]:
        if r.get("error"):
            lines.append(f"| {r['format']} | {r['batch_size']} | {r['loader']} | "
                         f"{f(r['delay_ms'], 'd')} | {r['error'][:60]} |" + " |" * 11)
            continue
        lines.append(
            f"| {r['format']} | {r['batch_size']} | {r['loader']} | {f(r['delay_ms'], 'd')} | "
            f"{r['cells_per_second']:,.0f} | {f(r.get('x_cellfeed_local'), '.2f')} | "
            f"{f(r.get('x_peer'), ',.1f')} | {r['open_seconds']:.2f} | "
            f"{r['first_batch_seconds']:.2f} | {r['entropy_bits']:.3f} | "
            + (f"{r['fetched_over_needed']:.2f} ({r['after_open_over_needed']:.2f}) | "
               f"{r['requests']:,.0f} ({r['open_requests']:,.0f}) | "
               f"{r['requests_per_second']:,.0f} | {r['bytes_per_request'] / 1024:,.0f} | "
               f"{r['max_in_flight']} | " if "requests" in r else "- | - | - | - | - | ")
            + f"{r['peak_rss_bytes'] / 2**20:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=30_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--peer-seconds", type=float, default=10.0)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 4096])
    ap.add_argument("--delays-ms", type=int, nargs="+", default=list(DELAYS_MS))
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--work", type=Path, default=HERE / "results" / "tmp" / "remote")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "remote_bench")
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    ap.add_argument("--summarize", type=Path, metavar="RUNS_JSON",
                    help="only write OUT from the runs of an earlier run (its results.json, or "
                         "an interrupted run's runs.partial.json; give the same --cells, "
                         "--epochs, --peer-seconds)")
    # internal: a proxy process, or one run
    ap.add_argument("--proxy", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--delay-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.proxy:
        run_proxy(args.proxy, args.delay_ms, args.port)
        return None
    if args.run:
        spec = json.loads(Path(args.spec).read_text())
        tables = json.loads(Path(spec["tables"]).read_text())
        if args.run == "cellfeed":
            out = run_cellfeed(spec["paths"], spec["batch_size"], spec["epochs"], tables,
                               spec.get("proxy_port"), spec.get("remote_h5ad", False))
        else:
            out = run_peer(spec["format"], spec["paths"], spec["batch_size"],
                           spec["peer_seconds"], tables, spec["proxy_port"])
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(out))
        return None

    if args.summarize:
        runs = json.loads(args.summarize.read_text())
        runs = runs["runs"] if isinstance(runs, dict) else runs  # results.json or partial
        args.repeats = 1 + max(r["repeat"] for r in runs)
        version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
        return write_result(args, runs, version.strip().split("/")[-1])
    work = args.work / f"cells_{args.cells}"
    data = prepare(work, args.cells)
    data = {k: v for k, v in data.items() if k in args.formats}
    table_files = {}
    for fmt, paths in data.items():
        tf = work / f"{fmt}.tables.json"
        if not tf.exists():
            tf.write_text(json.dumps(chunk_tables(fmt, paths)))
        table_files[fmt] = str(tf)
        warm(paths)
    args.out.mkdir(parents=True, exist_ok=True)
    procs = []
    runs = []
    try:
        nginx, nginx_port = start_nginx(work, work / "nginx_run")
        procs.append(nginx)
        proxies = {}
        for d in args.delays_ms:
            proc, port = start_proxy(nginx_port, d)
            procs.append(proc)
            proxies[d] = port

        def url(port, path):
            return f"http://127.0.0.1:{port}/{Path(path).relative_to(work)}"

        plan = []
        for bs in args.batch_sizes:
            for fmt, paths in data.items():
                plan.append(("cellfeed local", fmt, bs, None))
                if fmt == "zarr_zip":
                    plan.append(("cellfeed URL (nginx, no proxy)", fmt, bs, None))
                for d in args.delays_ms:
                    plan.append(("cellfeed URL", fmt, bs, d))
                    if not args.no_peers:
                        plan.append((f"peer: anndata+{'h5py' if fmt.startswith('h5ad') else 'zarr'}"
                                     "+fsspec", fmt, bs, d))
        spec_file = work / "spec.json"
        for rep in range(args.repeats):
            order = plan if rep % 2 == 0 else plan[::-1]
            for loader, fmt, bs, d in order:
                paths = data[fmt]
                spec = {"format": fmt, "batch_size": bs, "epochs": args.epochs,
                        "tables": table_files[fmt], "peer_seconds": args.peer_seconds}
                if loader == "cellfeed local":
                    spec["paths"] = paths
                elif loader.startswith("cellfeed URL (nginx"):
                    spec["paths"] = [url(nginx_port, p) for p in paths]
                else:
                    spec["paths"] = [url(proxies[d], p) for p in paths]
                    spec["proxy_port"] = proxies[d]
                    spec["remote_h5ad"] = fmt.startswith("h5ad")
                    proxy_call(proxies[d], "reset")
                spec_file.write_text(json.dumps(spec))
                kind = "cellfeed" if loader.startswith("cellfeed") else "peer"
                r = child([sys.executable, __file__, "--run", kind, "--spec", str(spec_file)],
                          args.timeout)
                if spec.get("proxy_port") and not r.get("error"):
                    r["proxy"] = proxy_call(proxies[d], "stats")
                r.update(loader=loader, format=fmt, batch_size=bs, delay_ms=d, repeat=rep)
                runs.append(r)
                (args.out / "runs.partial.json").write_text(json.dumps(runs))
                msg = r.get("error") or (
                    f"{r['cells_per_second']:10,.0f} cells/s  open {r['open_seconds']:.2f} s  "
                    f"first {r['first_batch_seconds']:.2f} s  entropy {r['entropy_bits']:.3f}"
                    + (f"  fetched/needed {r['proxy']['bytes'] / r['needed_bytes']:.2f}  "
                       f"requests {r['proxy']['requests']}" if r.get("proxy") else ""))
                print(f"{fmt:9s} b={bs:5d} {loader:34s} {'' if d is None else d:>3}: {msg}",
                      file=sys.stderr, flush=True)
        nginx_version = subprocess.run(["nginx", "-v"], capture_output=True,
                                       text=True).stderr.strip().split("/")[-1]
    finally:
        for p in reversed(procs):
            stop_process(p)
    return write_result(args, runs, nginx_version)


def write_result(args, runs, nginx_version):
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"settings": {"cells": args.cells, "epochs": args.epochs, "repeats": args.repeats,
                           "peer_seconds": args.peer_seconds, "threads": THREADS,
                           "cellfeed": {str(k): v for k, v in CELLFEED.items()},
                           "peer_piece_rows": PEER_PIECE, "nginx": nginx_version,
                           "machine": f"{os.uname().machine}, {os.cpu_count()} cores",
                           "command": " ".join([Path(sys.executable).name, *sys.argv])},
              "summary": summarize(runs), "runs": runs, "loadavg_at_end": os.getloadavg()}
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    (args.out / "runs.partial.json").unlink(missing_ok=True)
    md = markdown(result)
    (args.out / "table.md").write_text(md)
    print(md)
    return result


if __name__ == "__main__":
    main()
