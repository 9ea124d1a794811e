"""Per-cell QC metrics, computed once per file version and cached on disk.

`qc_metrics(paths)` gives, per cell, what scanpy's calculate_qc_metrics names
total_counts, n_genes_by_counts and pct_counts_mt (the percentage of a cell's counts in
genes whose names start with a prefix, "MT-" by default), from one pass over X in C++.
Genes named by Ensembl IDs (ENSG00000198888, versions stripped) are matched by their
GENCODE v44 symbol (MT-ND1), so the mitochondrial share is right for files without symbols.
Filters of a Corpus may name these columns when obs lacks them: they are computed then.

Cache: one .npz per (file, layer, prefix) in $CELLFEED_CACHE_DIR, else
~/.cache/cellfeed/qc. Its key hashes the file's absolute path, size, modification time
(ns) and inode: rewriting, replacing or touching the file gives a new key, so a stale
entry is never read; entries of earlier versions of the same file are deleted when the
new one is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile

import numpy as np
import pandas as pd

from . import _cellfeed
from .collection import open as open_collection

QC_COLUMNS = ("total_counts", "n_genes_by_counts", "pct_counts_mt")
_CACHE_VERSION = 2  # 2: Ensembl-named genes matched by their symbol


def cache_dir() -> str:
    d = os.environ.get("CELLFEED_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "cellfeed")
    return os.path.join(d, "qc")


def _key(path: str, layer: str | None, prefix: str) -> tuple[str, str]:
    st = os.stat(path)
    ident = {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
             "inode": st.st_ino, "layer": layer or "", "prefix": prefix, "v": _CACHE_VERSION}
    base = {"path": ident["path"], "layer": ident["layer"], "prefix": prefix}
    h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
    b = hashlib.sha256(json.dumps(base, sort_keys=True).encode()).hexdigest()[:12]
    return b, h


_ENSEMBL = re.compile(r"^(ENS[A-Z]*G\d{11})(\.\d+)?$")


def flag_genes(names, prefix: str) -> np.ndarray:
    """bool per gene: its name, or for an Ensembl ID its GENCODE symbol, starts with prefix."""
    from .vocab import _gencode

    symbol = None
    out = np.zeros(len(names), dtype=bool)
    for i, g in enumerate(map(str, names)):
        m = _ENSEMBL.match(g)
        if m:
            if symbol is None:
                symbol = dict(_gencode())
            g = symbol.get(m.group(1), g)
        out[i] = g.startswith(prefix)
    return out


def _one_file(path: str, layer: str | None, prefix: str, threads: int | None, use_cache: bool) -> pd.DataFrame:
    base, key = _key(path, layer, prefix)
    where = os.path.join(cache_dir(), f"{base}-{key}.npz")
    if use_cache and os.path.exists(where):
        try:
            with np.load(where) as z:
                return pd.DataFrame({c: z[c] for c in QC_COLUMNS})
        except (OSError, ValueError, KeyError):
            pass  # unreadable entry: computed again below
    col = open_collection(path, layer=layer, threads=threads, values="any")
    flagged = flag_genes(col.var_names, prefix).astype(np.uint8)
    total, ngenes, pct = _cellfeed.qc_metrics(col._c, flagged.tolist())
    df = pd.DataFrame({"total_counts": total, "n_genes_by_counts": ngenes, "pct_counts_mt": pct})
    if use_cache:
        os.makedirs(cache_dir(), exist_ok=True)
        for old in os.listdir(cache_dir()):
            if old.startswith(base + "-"):
                try:
                    os.remove(os.path.join(cache_dir(), old))
                except OSError:
                    pass
        fd, tmp = tempfile.mkstemp(dir=cache_dir(), suffix=".npz")
        os.close(fd)
        np.savez(tmp, **{c: df[c].to_numpy() for c in QC_COLUMNS})
        os.replace(tmp, where)
    return df


def qc_metrics(path_or_paths, layer: str | None = None, flag_prefix: str = "MT-",
               threads: int | None = None, cache: bool = True) -> pd.DataFrame:
    """Per-cell QC metrics of the files, in row order, as scanpy names them.

    One pass over X in C++ per file, cached on disk per file version (module docstring).
    Each file is read alone with all its genes (not a collection's joined gene space).
    Genes named by Ensembl IDs are flagged by their GENCODE v44 symbol.

    Parameters
    ----------
    path_or_paths : str, os.PathLike or sequence of them
        The files.
    layer : str, optional
        The matrix to read, as in :func:`cellfeed.open` (X when None).
    flag_prefix : str, default "MT-"
        Genes whose name (or symbol) starts with it count towards ``pct_counts_mt``.
    threads : int, optional
        Engine threads (default: one per core).
    cache : bool, default True
        Read and write the on-disk cache (``$CELLFEED_CACHE_DIR``, else
        ``~/.cache/cellfeed/qc``).

    Returns
    -------
    pandas.DataFrame
        ``total_counts``, ``n_genes_by_counts`` and ``pct_counts_mt`` (percent of the
        cell's counts in flagged genes), one row per cell, a RangeIndex.

    Examples
    --------
    >>> import cellfeed
    >>> qc = cellfeed.qc_metrics("data/pbmc68k/10x_pbmc68k_reduced.zarr.zip", layer="counts",
    ...                          cache=False)
    >>> qc.shape, list(qc.columns)
    ((700, 3), ['total_counts', 'n_genes_by_counts', 'pct_counts_mt'])
    >>> int(qc.loc[0, "total_counts"]), int(qc.loc[0, "n_genes_by_counts"])
    (628, 217)
    """
    paths = [os.fspath(path_or_paths)] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    parts = [_one_file(os.fspath(p), layer, flag_prefix, threads, cache) for p in paths]
    return pd.concat(parts, ignore_index=True)


def qc_columns_for(corpus, collection, files) -> dict:
    """QC columns that the corpus's filters name but whose files' obs lack, over global rows."""
    wanted = set()
    for s, sfiles in zip(corpus.sources, corpus._files):
        if not s.where:
            continue
        for name in QC_COLUMNS:
            if re.search(rf"\b{name}\b", s.where):
                wanted.add(name)
    if not wanted:
        return {}
    offsets = collection.file_offsets
    out = {name: np.full(collection.n_obs, np.nan, dtype=np.float32) for name in wanted}
    layers = corpus.file_layers
    for i, (f, summary) in enumerate(zip(files, collection.summaries())):
        # Each file is judged on its own obs column where it has one (the engine reads it,
        # file by file) and on computed metrics where it has none: computed values are
        # filled only for the metrics this file lacks.
        missing = wanted - {c[0] for c in summary["obs_columns"]}
        if not missing:
            continue  # no pass over its X
        df = qc_metrics(f, layer=layers[i], flag_prefix=corpus.qc_flag_prefix, threads=corpus.threads)
        for name in missing:
            out[name][offsets[i]:offsets[i + 1]] = df[name].to_numpy(dtype=np.float32)
    return out
