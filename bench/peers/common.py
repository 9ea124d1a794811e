"""Shared pieces of the peer-loader benchmark: the result record, the measuring loop,
the entropy metric, batch checks, and running one loader in its own subprocess.

A runner module (``*_peer.py``) exposes ``make_iterator(paths, config)``, which does its
setup (opening files, building datasets) and returns an *epoch factory*:
``epoch_fn(epoch) -> iterator`` yielding ``(X, plates)`` or ``(X, plates, rows)`` per batch,
where X is a float32 scipy CSR matrix (cells x genes), plates the batch's plate labels
(any hashable values, one per cell), and rows the batch's global row ids in the
concatenation of ``paths`` (or None where the loader does not expose them).

``measure()`` runs warm-up for W seconds and then measures for S seconds, starting new
epochs as needed, and returns the record described by ``RESULT_FIELDS``.
"""

from __future__ import annotations

import gc
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
RUN_ONE = HERE / "run_one.py"
N_GENES = 62_710

DEFAULT_CONFIG = {"batch_size": 64, "block_size": 4, "fetch_factor": 16, "num_workers": 0,
                  "seed": 0}

RESULT_FIELDS = ("loader", "config", "cells", "batches", "seconds", "cells_per_second",
                 "entropy_bits_mean", "entropy_bits_std", "peak_rss_mb")

EpochFactory = Callable[[int], Iterable[tuple]]


# -- metric ------------------------------------------------------------------------------
def entropy_bits(labels) -> float:
    """Shannon entropy (log2) of the label distribution over one batch's cells."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return 0.0
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def peak_rss_children_mb() -> float:
    """Largest peak RSS among this process's reaped children (DataLoader workers)."""
    kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


# -- batches ---------------------------------------------------------------------------
def as_csr32(X) -> sp.csr_matrix:
    """The common batch type: float32 scipy CSR. No copy when X is one already."""
    if isinstance(X, sp.csr_matrix) and X.dtype == np.float32:
        return X
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float32)
    raise TypeError(f"batch X must be a scipy sparse matrix, got {type(X).__name__}")


def split_item(item) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """(X, plates[, rows]) -> (X, plates, rows or None)."""
    if len(item) == 2:
        X, plates = item
        rows = None
    else:
        X, plates, rows = item
    return X, np.asarray(plates), (None if rows is None else np.asarray(rows))


# -- measuring loop --------------------------------------------------------------------
def _batches(epoch_fn: EpochFactory, max_epochs: int = 1_000_000) -> Iterator[tuple]:
    """Batches of epoch 0, 1, 2, ... without end (an empty epoch stops the stream)."""
    for epoch in range(max_epochs):
        n = 0
        it = iter(epoch_fn(epoch))
        try:
            for item in it:
                n += 1
                yield item
        finally:  # closing the stream closes the epoch (and its DataLoader workers)
            close = getattr(it, "close", None)
            if close is not None:
                close()
        if n == 0:
            raise RuntimeError(f"epoch {epoch} yielded no batch")


def measure(loader: str, config: dict, epoch_fn: EpochFactory, seconds: float,
            warmup: float = 2.0, min_batches: int = 0) -> dict:
    """Warm up for `warmup` s, then count cells and batches for `seconds` s and at least
    `min_batches` batches (so that the window spans many fetches: fetches decoded ahead
    during warm-up would otherwise count as free work).

    Timing starts when the last warm-up batch has arrived (or, with no warm-up, just
    before the first batch is requested), and ends at the arrival of the first batch
    at or past `seconds`; epoch restarts inside the window are counted, as in training.
    Plate labels are only collected inside the loop; entropies are computed afterwards.
    """
    gc.collect()
    stream = _batches(epoch_fn)
    t_start = time.perf_counter()
    warm_batches = 0
    first_batch_s = None
    if warmup > 0:
        for item in stream:
            warm_batches += 1
            now = time.perf_counter()
            if first_batch_s is None:
                first_batch_s = now - t_start
            if now - t_start >= warmup:
                break
    labels: list[np.ndarray] = []
    cells = 0
    nnz = 0
    batches = 0
    bad_shape = 0
    t0 = time.perf_counter()
    t_end = t0
    for item in stream:
        X, plates, _ = split_item(item)
        now = time.perf_counter()
        if first_batch_s is None:
            first_batch_s = now - t_start
        n = X.shape[0]
        if X.shape[1] != N_GENES or len(plates) != n or X.dtype != np.float32 or X.format != "csr":
            bad_shape += 1
        cells += n
        nnz += X.nnz
        batches += 1
        labels.append(plates)
        t_end = now
        if now - t0 >= seconds and batches >= min_batches:
            break
    elapsed = t_end - t0
    # End the epoch in progress (DataLoader workers are joined) before reading RSS, so
    # that the workers' peaks are in RUSAGE_CHILDREN.
    stream.close()
    item = X = plates = None
    gc.collect()
    ent = np.array([entropy_bits(lab) for lab in labels]) if labels else np.zeros(0)
    return {
        "loader": loader,
        "config": config,
        "cells": int(cells),
        "batches": int(batches),
        "seconds": float(elapsed),
        "cells_per_second": float(cells / elapsed) if elapsed > 0 else float("nan"),
        "entropy_bits_mean": float(ent.mean()) if ent.size else float("nan"),
        "entropy_bits_std": float(ent.std(ddof=0)) if ent.size else float("nan"),  # population
        "peak_rss_mb": peak_rss_mb(),
        # extras, not part of the core record
        "peak_rss_children_mb": peak_rss_children_mb(),
        "warmup_batches": int(warm_batches),
        "first_batch_seconds": None if first_batch_s is None else float(first_batch_s),
        "values_per_cell": float(nnz / cells) if cells else float("nan"),
        "bad_batches": int(bad_shape),
    }


# -- correctness check on a small dataset ----------------------------------------------
def reference(paths) -> tuple[sp.csr_matrix, np.ndarray]:
    """anndata's own reading of the concatenated files: (X as float32 CSR, plate labels)."""
    import anndata as ad
    Xs, plates = [], []
    for p in paths:
        a = ad.read_h5ad(p)
        Xs.append(sp.csr_matrix(a.X, dtype=np.float32))
        plates.append(a.obs["plate"].astype(str).to_numpy())
    return sp.vstack(Xs, format="csr"), np.concatenate(plates)


def verify(loader: str, epoch_fn: EpochFactory, paths, max_batches: int | None = None,
           batch_size: int = 64) -> dict:
    """Check one epoch of batches against anndata: type, shape, dtype, and, where the
    runner exposes its rows, that X equals anndata's X for those rows and that the
    plate labels match (plates compared as strings, or by category code order when the
    runner gives integer codes). Returns a report dict (ok: bool, problems: [...])."""
    ref_X, ref_plates = reference(paths)
    categories = np.unique(ref_plates)  # sorted names, for integer-coded labels
    problems: list[str] = []
    n_batches = 0
    rows_seen: list[np.ndarray] = []
    checked_values = 0
    sizes = []
    code_map = None
    for item in epoch_fn(0):
        X, plates, rows = split_item(item)
        n_batches += 1
        sizes.append(X.shape[0])
        tag = f"batch {n_batches - 1}"
        if not isinstance(X, sp.csr_matrix):
            problems.append(f"{tag}: X is {type(X).__name__}, not csr_matrix")
        if X.dtype != np.float32:
            problems.append(f"{tag}: dtype {X.dtype}")
        if X.shape[1] != ref_X.shape[1] or not (0 < X.shape[0] <= batch_size):
            problems.append(f"{tag}: shape {X.shape}")
        if X.nnz == 0:
            problems.append(f"{tag}: nnz == 0")
        if len(plates) != X.shape[0]:
            problems.append(f"{tag}: {len(plates)} labels for {X.shape[0]} cells")
        if rows is not None:
            rows = rows.astype(np.int64)
            rows_seen.append(rows)
            want = ref_X[rows]
            diff = abs(as_csr32(X) - want)
            if diff.nnz and diff.max() != 0:
                problems.append(f"{tag}: X differs from anndata for its rows")
            if X.nnz != want.nnz:
                problems.append(f"{tag}: nnz {X.nnz} != anndata's {want.nnz}")
            checked_values += want.nnz
            got = plates
            if np.issubdtype(got.dtype, np.integer):
                # integer codes: learn the code -> name map from the rows, then check it
                # is one-to-one and consistent across batches
                code_map = {} if code_map is None else code_map
                for c, name in zip(got.tolist(), ref_plates[rows].tolist()):
                    if code_map.setdefault(c, name) != name:
                        problems.append(f"{tag}: plate code {c} maps to two plates")
                        break
            elif not np.array_equal(got.astype(str), ref_plates[rows]):
                problems.append(f"{tag}: plate labels differ from anndata's")
        if max_batches is not None and n_batches >= max_batches:
            break
    report = {"loader": loader, "batches": n_batches, "rows_exposed": bool(rows_seen),
              "values_checked": int(checked_values),
              "batch_sizes": sorted(set(sizes))}
    if code_map is not None and len(set(code_map.values())) != len(code_map):
        problems.append("plate codes are not one-to-one")
    if rows_seen and max_batches is None:
        allrows = np.concatenate(rows_seen)
        uniq = np.unique(allrows)
        report["epoch_rows"] = int(allrows.size)
        report["epoch_unique_rows"] = int(uniq.size)
        report["n_obs"] = int(ref_X.shape[0])
        report["epoch_missing_rows"] = int(ref_X.shape[0] - uniq.size)  # drop_last etc.
        if uniq.size != allrows.size:
            problems.append(f"epoch repeats rows: {allrows.size} rows, {uniq.size} unique")
    report["ok"] = not problems
    report["problems"] = problems[:20]
    return report


# -- one loader per subprocess -----------------------------------------------------------
def _cli_args(runner: str, paths, config: dict, seconds: float, warmup: float) -> list[str]:
    cfg = {**DEFAULT_CONFIG, **config}
    args = [sys.executable, str(RUN_ONE), runner, "--paths", *[os.fspath(p) for p in paths],
            "--batch-size", str(cfg["batch_size"]), "--block-size", str(cfg["block_size"]),
            "--fetch-factor", str(cfg["fetch_factor"]), "--num-workers", str(cfg["num_workers"]),
            "--seed", str(cfg["seed"]), "--seconds", str(seconds), "--warmup", str(warmup)]
    extra = {k: v for k, v in cfg.items() if k not in DEFAULT_CONFIG}
    if extra:
        args += ["--extra", json.dumps(extra)]
    return args


def parse_json_line(stdout: str) -> dict | None:
    """The last stdout line that parses as a JSON object."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def run_in_subprocess(runner_name: str, paths, config: dict, seconds: float,
                      warmup: float = 2.0, timeout: float | None = None,
                      verify_mode: bool = False, env: dict | None = None) -> dict:
    """Run one runner in a fresh Python process (`python bench/peers/run_one.py ...`,
    by absolute path, so it works from any working directory) and return its record.

    Never raises for a failed run: the record then holds "error" (and the stderr tail).
    The default timeout allows setup + warm-up + measuring + 120 s."""
    args = _cli_args(runner_name, paths, config, seconds, warmup)
    if verify_mode:
        args.append("--verify")
    if timeout is None:
        timeout = warmup + seconds + 120 + (300 if verify_mode else 0)
    cfg = {**DEFAULT_CONFIG, **config}
    t0 = time.perf_counter()
    # Own process group, so that a timeout also ends its DataLoader worker processes.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(HERE.parent.parent), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
        return {"loader": runner_name, "config": cfg, "error": f"timeout after {timeout:.0f} s",
                "stderr_tail": (stderr or "")[-2000:]}
    except BaseException:  # e.g. Ctrl-C: leave no loader running behind
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    rec = parse_json_line(stdout)
    if rec is None or proc.returncode != 0:
        rec = rec or {"loader": runner_name, "config": cfg}
        rec.setdefault("error", f"exit status {proc.returncode}, no JSON result"
                       if rec.get("cells") is None else f"exit status {proc.returncode}")
        rec["stderr_tail"] = (stderr or "")[-2000:]
    rec["wall_seconds"] = time.perf_counter() - t0
    return rec


def format_table(records: list[dict]) -> str:
    """A plain-text table of records (errors shown in place of numbers)."""
    head = f"{'loader':<11} {'b':>3} {'f':>3} {'w':>2} {'cells/s':>9} {'entropy':>13} " \
           f"{'batches':>7} {'secs':>6} {'rss MB':>7} {'wrk MB':>7} {'1st s':>6}"
    lines = [head, "-" * len(head)]
    for r in records:
        c = r.get("config", {})
        b, f, w = c.get("block_size", "?"), c.get("fetch_factor", "?"), c.get("num_workers", "?")
        if "error" in r and r.get("cells") is None:
            lines.append(f"{r['loader']:<11} {b!s:>3} {f!s:>3} {w!s:>2} ERROR: {r['error']}")
            continue
        ent = f"{r['entropy_bits_mean']:.2f}+-{r['entropy_bits_std']:.2f}"
        first = r.get("first_batch_seconds")
        kids = r.get("peak_rss_children_mb") if w not in (0, "0", "?") else None
        lines.append(f"{r['loader']:<11} {b!s:>3} {f!s:>3} {w!s:>2} "
                     f"{r['cells_per_second']:>9,.0f} {ent:>13} {r['batches']:>7} "
                     f"{r['seconds']:>6.1f} {r['peak_rss_mb']:>7.0f} {'-' if kids is None else f'{kids:.0f}':>7} "
                     f"{(first if first is not None else math.nan):>6.2f}")
    return "\n".join(lines)
