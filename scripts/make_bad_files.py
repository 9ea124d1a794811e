#!/usr/bin/env python3
"""The bad-input corpus: malformed, corrupt and unsupported .h5ad files, each with the
exact error cellfeed must give.

    python scripts/make_bad_files.py OUTDIR        # writes OUTDIR/*.h5ad + manifest.json

Every file starts as a valid file written by the real anndata writer (or h5py following
the anndata spec), then one thing is broken: by h5py surgery (deleting, rewriting or
re-typing an element, changing an attribute), or by editing raw bytes at offsets found
with h5py (``dataset.id.get_chunk_info_by_coord``: the byte range of one stored chunk).

manifest.json lists, per entry:
  name      file stem (and test id)
  covers    the item of the error-handling issue it covers
  call      what triggers the error: "open", "read" (all rows), "obs:COL", "var:COL",
            "obs_names"
  files     the file names to open together (one, or two for gene-join errors)
  layer     OpenOptions.layer ("" = X, "raw", or a layers/<name>)
  values    OpenOptions.values: value checks ("finite" by default, "counts", "any")
  join      gene join (multi-file entries)
  error     "ValueError" / "OSError", or null for files that must read (documented
            acceptances, see docs/ERRORS.md)
  message   substrings the message must contain; "{path}" stands for the (first) file's
            path, "{path2}" for the second's
  cli       how the CLI must fail on it: "inspect" (open-time errors), "bench" (errors met
            while reading), or null

tests/python/test_bad_input.py checks every entry (Python API and CLI). The test suite
imports this module and generates the corpus into a temporary directory.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

N_OBS, N_VARS = 40, 30
CHUNK = 16  # elements per chunk of data/indices/indptr: several chunks per array


@dataclass
class Entry:
    name: str
    covers: str
    call: str
    error: str | None
    message: list[str]
    layer: str = ""
    join: str = "inner"
    files: list[str] = field(default_factory=list)
    cli: str | None = None
    values: str = "finite"


@dataclass
class Case:
    entry: Entry
    write: Callable[[Path], list[Path]]  # writes the file(s) into a directory


CASES: list[Case] = []


def case(name: str, covers: str, call: str, error: str | None, message: list[str], *,
         layer: str = "", join: str = "inner", cli: str | None | bool = True,
         extra_files: int = 0, values: str = "finite"):
    """Registers a writer `fn(path) -> None` (or `fn(path, path2)` when extra_files)."""
    if cli is True:  # the CLI reads X (bench) and obs labels (bench --label), not var
        cli = (None if error is None or call.startswith("var:") or call == "obs_names"
               else "inspect" if call == "open" else "bench")

    def deco(fn):
        names = [f"{name}.h5ad"] + [f"{name}_{i + 2}.h5ad" for i in range(extra_files)]
        entry = Entry(name, covers, call, error, message, layer, join, names, cli or None, values)

        def write(d: Path) -> list[Path]:
            paths = [d / n for n in names]
            fn(*paths)
            return paths

        CASES.append(Case(entry, write))
        return fn

    return deco


NAMES = lambda: [c.entry.name for c in CASES]  # noqa: E731


# --------------------------------------------------------------------------------------
# Valid starting points (real anndata writer)

def _obs(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(rng.integers(-1, 4, n),
                                                   categories=["T", "B", "NK", "Mono"]),
            "batch": pd.Categorical.from_codes(rng.integers(0, 3, n), categories=[3, 7, 11]),
            "score": rng.standard_normal(n),
            "n_counts": rng.integers(0, 5000, n).astype(np.int32),
            "barcode": np.array([f"ACGT{i:04d}" for i in range(n)], dtype=object),
        },
        index=pd.Index([f"cell{i}" for i in range(n)], dtype=object),
    )


def _var(g: int, rng: np.random.Generator, prefix: str = "gene") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chrom": pd.Categorical.from_codes(rng.integers(0, 3, g),
                                               categories=["chr1", "chr2", "chrX"]),
            "means": rng.random(g).astype(np.float32),
        },
        index=pd.Index([f"{prefix}{j}" for j in range(g)], dtype=object),
    )


def _csr(rng: np.random.Generator, n: int, g: int, per_row: int = 8) -> sp.csr_matrix:
    """Small-integer counts (compressible, so LZF/deflate really compress every chunk)."""
    rows = []
    for i in range(n):
        k = 0 if i % 9 == 4 else per_row
        cols = np.sort(rng.choice(g, k, replace=False))
        rows.append(cols)
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
    indices = np.concatenate(rows).astype(np.int32)
    data = rng.integers(1, 6, indices.size).astype(np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n, g))


def write_h5ad(path: Path, *, x: str = "csr", compression: dict | None = None,
               raw: bool = False, layers: bool = False, seed: int = 0,
               var: pd.DataFrame | None = None, n: int = N_OBS, g: int = N_VARS) -> Path:
    """A valid h5ad: obs/var by anndata's write_elem, X (and raw/X, layers/counts) by
    anndata's write_elem with chunks of CHUNK elements and the given filter kwargs."""
    rng = np.random.default_rng(seed)
    obs = _obs(n, rng)
    var = _var(g, rng) if var is None else var
    m = _csr(rng, n, g)
    kw = {"chunks": (CHUNK,), **(compression or {})}
    with h5py.File(path, "w") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ad.io.write_elem(f, "/", ad.AnnData(obs=obs, var=var))
        if x == "csr":
            ad.io.write_elem(f, "X", m, dataset_kwargs=kw)
        else:
            dense_kw = {"chunks": (8, 8), **(compression or {})}
            ad.io.write_elem(f, "X", m.toarray(), dataset_kwargs=dense_kw)
        if raw:
            g_raw = g + 5
            raw_var = _var(g_raw, rng)
            del f["raw"]  # anndata writes raw=None as a null dataset
            f.create_group("raw")
            f["raw"].attrs["encoding-type"] = "raw"
            f["raw"].attrs["encoding-version"] = "0.1.0"
            ad.io.write_elem(f["raw"], "X", _csr(rng, n, g_raw), dataset_kwargs=kw)
            ad.io.write_elem(f["raw"], "var", raw_var)
        if layers:
            ad.io.write_elem(f["layers"], "counts", _csr(rng, n, g), dataset_kwargs=kw)
    return path


GZIP = {"compression": "gzip", "compression_opts": 4}
LZF = {"compression": "lzf"}


# --------------------------------------------------------------------------------------
# Surgery helpers

def chunk_range(path: Path, dataset: str, chunk: int) -> tuple[int, int, int]:
    """(file offset, stored size, filter mask) of grid chunk `chunk` of a 1-D/2-D dataset."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        grid = [(s + c - 1) // c for s, c in zip(ds.shape, ds.chunks)]
        coord = np.unravel_index(chunk, grid)
        info = ds.id.get_chunk_info_by_coord(tuple(int(c * k) for c, k in zip(coord, ds.chunks)))
    assert info.byte_offset is not None, (path, dataset, chunk)
    return int(info.byte_offset), int(info.size), int(info.filter_mask)


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def flip(path: Path, dataset: str, chunk: int, at: float = 0.5, n: int = 4) -> None:
    """XORs n bytes in the middle of one stored chunk."""
    off, size, mask = chunk_range(path, dataset, chunk)
    assert mask == 0, "chunk stored unfiltered: corruption would not be detectable"
    pos = off + min(int(size * at), size - n)
    with open(path, "r+b") as fh:
        fh.seek(pos)
        b = fh.read(n)
        fh.seek(pos)
        fh.write(bytes(x ^ 0xA5 for x in b))


def rewrite(f: h5py.File, name: str, values, *, dtype=None, skip_chunks=(), **kw) -> h5py.Dataset:
    """Replaces dataset `name` by `values` with the same chunking and filters (unless kw
    overrides them); grid chunks listed in skip_chunks are never written (no address)."""
    old = f[name]
    attrs = dict(old.attrs)
    opts = {"chunks": old.chunks, "compression": old.compression,
            "compression_opts": old.compression_opts, "shuffle": old.shuffle,
            "fletcher32": old.fletcher32}
    if old.chunks is not None:
        opts["maxshape"] = (None,) * old.ndim
    opts.update(kw)
    if opts["chunks"] is None:
        opts.pop("maxshape", None)
    values = np.asarray(values)
    dtype = dtype or values.dtype
    del f[name]
    ds = f.create_dataset(name, shape=values.shape, dtype=dtype, **opts)
    if skip_chunks:
        c = ds.chunks[0]
        for k in range(0, (len(values) + c - 1) // c):
            if k not in skip_chunks:
                ds[k * c:(k + 1) * c] = values[k * c:(k + 1) * c]
    elif values.size:
        ds[...] = values
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def modify(path: Path, fn: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "r+") as f:
        fn(f)


def _nnz(path: Path, element: str = "X") -> int:
    with h5py.File(path, "r") as f:
        return int(f[f"{element}/data"].shape[0])


def _first_nonempty_row(path: Path, at_least: int = 0, element: str = "X") -> tuple[int, int]:
    """(row, its first value's position) of the first row >= at_least with values."""
    with h5py.File(path, "r") as f:
        ptr = f[f"{element}/indptr"][:]
    for r in range(at_least, len(ptr) - 1):
        if ptr[r + 1] > ptr[r]:
            return r, int(ptr[r])
    raise AssertionError("no non-empty row")


# --------------------------------------------------------------------------------------
# 1. Not HDF5, truncated, corrupt chunks, chunks with no address

@case("not_hdf5", "not an HDF5 file", "open", "ValueError",
      ["{path}", "not an HDF5 file"])
def _(p):
    p.write_bytes(b"this is not an HDF5 file\n" * 100)


@case("empty_file", "not an HDF5 file (0 bytes)", "open", "ValueError",
      ["{path}", "not an HDF5 file"])
def _(p):
    p.write_bytes(b"")


@case("hdf5_not_anndata", "HDF5 but no AnnData elements (missing X)", "open", "ValueError",
      ["{path}", "X: missing"])
def _(p):
    with h5py.File(p, "w") as f:
        f["something"] = np.arange(10)


def _truncate_at(p: Path, where: Callable[[Path], int]) -> None:
    write_h5ad(p, compression=GZIP)
    cut = where(p)
    raw = p.read_bytes()
    assert 0 < cut < len(raw)
    p.write_bytes(raw[:cut])


TRUNC = ["{path}", "file is truncated", "bytes on disk, its HDF5 superblock says"]


@case("truncated_in_superblock", "truncated file (inside the superblock)", "open", "OSError",
      ["{path}", "file is truncated: 40 bytes", "ends inside the HDF5 superblock"])
def _(p):
    _truncate_at(p, lambda p: 40)


@case("truncated_in_metadata", "truncated file (inside the metadata)", "open", "OSError",
      ["{path}", "file is truncated: 1200 bytes on disk, its HDF5 superblock says"])
def _(p):
    _truncate_at(p, lambda p: 1200)


@case("truncated_in_chunk", "truncated file (inside a chunk of X/data)", "open", "OSError", TRUNC)
def _(p):
    def middle_of_last_data_chunk(p):
        with h5py.File(p, "r") as f:
            n = f["X/data"].id.get_num_chunks()
        off, size, _ = chunk_range(p, "X/data", n - 1)
        return off + size // 2
    _truncate_at(p, middle_of_last_data_chunk)


@case("truncated_last_byte", "truncated file (last byte missing)", "open", "OSError", TRUNC)
def _(p):
    _truncate_at(p, lambda p: p.stat().st_size - 1)


def _corrupt(element: str, chunk: int, compression: dict, how: str = "flip", **write_kw):
    def fn(p):
        write_h5ad(p, compression=compression, **write_kw)
        if how == "flip":
            flip(p, element, chunk)
        elif how == "lzf":
            # An LZF stream starts with a control byte; 0x3F makes it a back-reference
            # before the start of the output, which every LZF decoder must reject.
            off, size, mask = chunk_range(p, element, chunk)
            assert mask == 0
            patch(p, off, b"\x3f")
        elif how == "flip_one":  # fletcher32: one changed data byte
            off, size, mask = chunk_range(p, element, chunk)
            patch(p, off + 1, bytes([(open(p, "rb").read()[off + 1] ^ 0x01)]))
    return fn


CHUNK_ERR = "chunk {k}"
for element, k, comp, how, label, msg, kw in [
    ("X/data", 2, GZIP, "flip", "deflate", "corrupt deflate stream", {}),
    ("X/indices", 3, GZIP, "flip", "deflate", "corrupt deflate stream", {}),
    ("X/data", 1, LZF, "lzf", "lzf", "corrupt LZF", {}),
    ("X/indices", 4, LZF, "lzf", "lzf", "corrupt LZF", {}),
    ("X/data", 0, {"fletcher32": True}, "flip_one", "fletcher32", "fletcher32 checksum mismatch", {}),
    ("X/indices", 2, {"shuffle": True, "compression": "gzip", "fletcher32": True}, "flip_one",
     "shuffle_gzip_fletcher32", "fletcher32 checksum mismatch", {}),
    ("raw/X/indices", 2, GZIP, "flip", "deflate", "corrupt deflate", {"raw": True}),
    ("layers/counts/data", 1, LZF, "lzf", "lzf", "corrupt LZF", {"layers": True}),
]:
    layer = "raw" if element.startswith("raw/") else ("counts" if element.startswith("layers/") else "")
    name = f"corrupt_{label}_{element.replace('/', '_').lower()}_chunk{k}"
    case(name, f"corrupted chunk bytes ({label}) in {element}", "read", "ValueError",
         ["{path}", f"{element}: chunk {k}", msg, "expected"],
         layer=layer)(_corrupt(element, k, comp, how, **kw))


@case("corrupt_deflate_x_indptr_chunk0", "corrupted chunk (deflate) in X/indptr (read at open)",
      "open", "ValueError", ["{path}", "X/indptr: chunk 0", "corrupt deflate"])
def _(p):
    _corrupt("X/indptr", 0, GZIP)(p)


@case("corrupt_deflate_x_indptr_chunk1", "corrupted chunk (deflate) in X/indptr (mid-file)",
      "read", "ValueError", ["{path}", "X/indptr: chunk 1", "corrupt deflate"])
def _(p):
    _corrupt("X/indptr", 1, GZIP)(p)


@case("corrupt_deflate_dense_x", "corrupted chunk (deflate) in a dense X", "read", "ValueError",
      ["{path}", "X: chunk 5", "corrupt deflate"])
def _(p):
    _corrupt("X", 5, GZIP, x="dense")(p)


@case("corrupt_deflate_obs_column", "corrupted chunk (deflate) in an obs column", "obs:score",
      "ValueError", ["{path}", "obs/score: chunk 0", "corrupt deflate"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "obs/score", f["obs/score"][:], chunks=(20,),
                                compression="gzip", maxshape=(None,)))
    flip(p, "obs/score", 0)


@case("corrupt_deflate_obs_codes", "corrupted chunk (deflate) in categorical codes",
      "obs:cell_type", "ValueError", ["{path}", "obs/cell_type/codes: chunk 1", "corrupt deflate"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "obs/cell_type/codes", f["obs/cell_type/codes"][:],
                                chunks=(16,), compression="gzip", maxshape=(None,)))
    flip(p, "obs/cell_type/codes", 1, n=6)


@case("corrupt_deflate_var_column", "corrupted chunk (deflate) in a var column", "var:means",
      "ValueError", ["{path}", "var/means: chunk 1", "corrupt deflate stream", "expected"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "var/means", f["var/means"][:], chunks=(16,),
                                compression="gzip", maxshape=(None,)))
    flip(p, "var/means", 1)


def _gzip_strings(element: str):
    def fn(p):
        write_h5ad(p)
        def edit(f):
            values = f[element][:]
            attrs = dict(f[element].attrs)
            del f[element]
            ds = f.create_dataset(element, data=values, dtype=h5py.string_dtype(),
                                  chunks=(16,), maxshape=(None,), compression="gzip")
            for k, v in attrs.items():
                ds.attrs[k] = v
        modify(p, edit)
        flip(p, element, 1, n=6)
    return fn


case("corrupt_deflate_obs_strings", "corrupted chunk (deflate) of an obs string column "
     "(read through libhdf5)", "obs:barcode", "ValueError",
     ["{path}", "obs/barcode", "cannot read strings", "libhdf5"])(_gzip_strings("obs/barcode"))
case("corrupt_deflate_obs_names", "corrupted chunk (deflate) of the obs index", "obs_names",
     "ValueError", ["{path}", "obs/_index", "cannot read strings", "libhdf5"])(
    _gzip_strings("obs/_index"))
case("corrupt_deflate_var_names", "corrupted chunk (deflate) of the var index (read at open)",
     "open", "ValueError", ["{path}", "var/_index", "cannot read strings", "libhdf5"])(
    _gzip_strings("var/_index"))


def _no_address(element: str, chunk: int, **write_kw):
    def fn(p):
        write_h5ad(p, compression=GZIP, **write_kw)
        modify(p, lambda f: rewrite(f, element, f[element][:], skip_chunks={chunk}))
        with h5py.File(p, "r") as f:
            info = f[element].id.get_chunk_info_by_coord((chunk * f[element].chunks[0],))
            assert info.byte_offset is None
    return fn


for element, k, kw in [("X/data", 2, {}), ("X/indices", 0, {}), ("X/indptr", 1, {}),
                       ("raw/X/indices", 3, {"raw": True}),
                       ("layers/counts/data", 1, {"layers": True})]:
    layer = "raw" if element.startswith("raw/") else ("counts" if element.startswith("layers/") else "")
    case(f"no_address_{element.replace('/', '_').lower()}_chunk{k}",
         f"a chunk with no address in {element} (indptr claims its values)", "open",
         "ValueError",
         ["{path}", f"{element}: chunk {k}", f"elements [{k * CHUNK}, {(k + 1) * CHUNK})",
          "never written"], layer=layer)(_no_address(element, k, **kw))


# --------------------------------------------------------------------------------------
# 2. Structure: missing elements, shapes, indptr, indices, lengths, codes

@case("missing_x", "missing X", "open", "ValueError", ["{path}", "X: missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f.__delitem__("X"))


@case("missing_obs", "missing obs", "open", "ValueError", ["{path}", "obs: missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f.__delitem__("obs"))


@case("missing_var", "missing var", "open", "ValueError", ["{path}", "var: missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f.__delitem__("var"))


@case("missing_raw_x", "missing raw/X (layer='raw')", "open", "ValueError",
      ["{path}", "raw/X: missing"], layer="raw")
def _(p):
    write_h5ad(p, raw=True)
    modify(p, lambda f: f.__delitem__("raw/X"))


@case("missing_raw_var", "missing raw/var (layer='raw')", "open", "ValueError",
      ["{path}", "raw/var: missing"], layer="raw")
def _(p):
    write_h5ad(p, raw=True)
    modify(p, lambda f: f.__delitem__("raw/var"))


@case("missing_layer", "missing layer", "open", "ValueError",
      ["{path}", "layer 'spliced' not found", "counts"], layer="spliced")
def _(p):
    write_h5ad(p, layers=True)


@case("missing_x_indices", "csr_matrix without indices", "open", "ValueError",
      ["{path}", "X/indices: missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f.__delitem__("X/indices"))


@case("missing_obs_index", "obs _index names a missing dataset", "open", "ValueError",
      ["{path}", "obs/_index", "expected a string array"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f.__delitem__("obs/_index"))


@case("missing_obs_index_attr", "obs without the _index attribute", "open", "ValueError",
      ["{path}", "obs attribute '_index' is missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["obs"].attrs.__delitem__("_index"))


@case("missing_obs_column", "obs column-order names a missing column", "open", "ValueError",
      ["{path}", "obs/ghost", "missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["obs"].attrs.__setitem__(
        "column-order", np.array([*f["obs"].attrs["column-order"], "ghost"], dtype=object)))


@case("missing_categories", "categorical without categories", "open", "ValueError",
      ["{path}", "obs/cell_type/categories", "missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f.__delitem__("obs/cell_type/categories"))


@case("shape_more_rows", "shape attribute says more rows than indptr holds", "open",
      "ValueError", ["{path}", "X/indptr", f"has {N_OBS + 1} entries",
                     f"expected n_obs + 1 = {N_OBS + 6}"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__setitem__("shape", np.array([N_OBS + 5, N_VARS])))


@case("shape_more_cols", "shape attribute says more columns than var has", "open",
      "ValueError", ["{path}", f"var has {N_VARS} rows", f"X has {N_VARS + 3} columns"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__setitem__("shape", np.array([N_OBS, N_VARS + 3])))


@case("shape_raw_cols", "raw/X shape disagrees with raw/var", "open", "ValueError",
      ["{path}", "raw/var has", "raw/X has"], layer="raw")
def _(p):
    write_h5ad(p, raw=True)
    modify(p, lambda f: f["raw/X"].attrs.__setitem__("shape", np.array([N_OBS, N_VARS])))


@case("shape_three_sizes", "shape attribute with 3 sizes", "open", "ValueError",
      ["{path}", "X", "'shape' must hold 2 sizes"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__setitem__("shape", np.array([N_OBS, N_VARS, 1])))


@case("shape_negative", "shape attribute with a negative size", "open", "ValueError",
      ["{path}", "X", "'shape' must hold 2 sizes"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__setitem__("shape", np.array([-N_OBS, N_VARS])))


@case("shape_strings", "shape attribute of strings", "open", "ValueError",
      ["{path}", "X attribute 'shape'", "not numeric"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__setitem__("shape", np.array(["40", "30"], dtype=object)))


@case("shape_missing", "csr_matrix without a shape attribute", "open", "ValueError",
      ["{path}", "X attribute 'shape' is missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__delitem__("shape"))


@case("dense_more_rows", "dense X with more rows than obs", "open", "ValueError",
      ["{path}", f"obs has {N_OBS} rows", f"X has {N_OBS + 2}"])
def _(p):
    write_h5ad(p, x="dense")
    modify(p, lambda f: rewrite(f, "X", np.vstack([f["X"][:], np.zeros((2, N_VARS), np.float32)])))


@case("indptr_starts_at_1", "indptr not starting at 0", "open", "ValueError",
      ["{path}", "X/indptr", "starts at 1, expected 0"])
def _(p):
    write_h5ad(p)
    def fn(f):
        ptr = f["X/indptr"][:]
        ptr[0] = 1
        rewrite(f, "X/indptr", ptr)
    modify(p, fn)


@case("indptr_decreasing", "indptr decreasing", "read", "ValueError",
      ["{path}", "X/indptr", "row 12", "non-decreasing"])
def _(p):
    write_h5ad(p)
    def fn(f):
        ptr = f["X/indptr"][:]
        ptr[12] = ptr[14] + 3
        rewrite(f, "X/indptr", ptr)
    modify(p, fn)


@case("indptr_negative", "indptr with a negative entry", "read", "ValueError",
      ["{path}", "X/indptr", "row 6", "within [0, nnz"])
def _(p):
    write_h5ad(p)
    def fn(f):
        ptr = f["X/indptr"][:]
        ptr[7] = -5
        rewrite(f, "X/indptr", ptr)
    modify(p, fn)


@case("indptr_ends_beyond_nnz", "indptr ending beyond nnz", "open", "ValueError",
      ["{path}", "X/indptr", "ends at", "but data has"])
def _(p):
    write_h5ad(p)
    def fn(f):
        ptr = f["X/indptr"][:]
        ptr[-1] += 7
        rewrite(f, "X/indptr", ptr)
    modify(p, fn)


@case("indptr_middle_beyond_nnz", "an indptr entry beyond nnz (not the last)", "read",
      "ValueError", ["{path}", "X/indptr", "row 29", "within [0, nnz"])
def _(p):
    write_h5ad(p)
    def fn(f):
        ptr = f["X/indptr"][:]
        ptr[30] = ptr[-1] + 100
        rewrite(f, "X/indptr", ptr)
    modify(p, fn)


@case("indptr_raw_decreasing", "raw/X indptr decreasing", "read", "ValueError",
      ["{path}", "raw/X/indptr", "row 20", "non-decreasing"], layer="raw")
def _(p):
    write_h5ad(p, raw=True)
    def fn(f):
        ptr = f["raw/X/indptr"][:]
        ptr[20] = ptr[22] + 2
        rewrite(f, "raw/X/indptr", ptr)
    modify(p, fn)


@case("indptr_layer_starts_at_3", "indptr not starting at 0 in a layer", "open", "ValueError",
      ["{path}", "layers/counts/indptr", "starts at 3, expected 0"], layer="counts")
def _(p):
    write_h5ad(p, layers=True)
    def fn(f):
        ptr = f["layers/counts/indptr"][:]
        ptr[0] = 3
        rewrite(f, "layers/counts/indptr", ptr)
    modify(p, fn)


@case("shape_layer_cols", "layers/counts shape disagrees with var", "open", "ValueError",
      ["{path}", f"var has {N_VARS} rows", f"layers/counts has {N_VARS + 1} columns"],
      layer="counts")
def _(p):
    write_h5ad(p, layers=True)
    modify(p, lambda f: f["layers/counts"].attrs.__setitem__("shape",
                                                             np.array([N_OBS, N_VARS + 1])))


@case("indptr_wrong_length", "indptr length != n_obs + 1", "open", "ValueError",
      ["{path}", "X/indptr", "expected n_obs + 1"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "X/indptr", f["X/indptr"][:-3]))


def _bad_index(element: str, value: int, **kw):
    def fn(p):
        write_h5ad(p, **kw)
        row, pos = _first_nonempty_row(p, 10, element.rsplit("/", 1)[0])
        def edit(f):
            idx = f[element][:]
            idx[pos + 1] = value
            rewrite(f, element, idx)
        modify(p, edit)
    return fn


for element, value, layer, kw in [("X/indices", N_VARS + 3, "", {}),
                                  ("X/indices", -1, "", {}),
                                  ("raw/X/indices", N_VARS + 5 + 1, "raw", {"raw": True}),
                                  ("layers/counts/indices", N_VARS, "counts", {"layers": True})]:
    bound = N_VARS + 5 if layer == "raw" else N_VARS
    # Row 10 is the first non-empty row >= 10 (rows 4, 13, 22, 31 are empty): its values
    # start at 10 * 8 = 80 minus the values of the empty rows before it (one): 72 -> 73.
    case(f"index_{'neg' if value < 0 else 'big'}_{element.replace('/', '_').lower()}",
         f"indices out of [0, n_vars) in {element}", "read", "ValueError",
         ["{path}", element, f"value {value}", "at element 73 (row 10)", f"outside [0, {bound})"],
         layer=layer)(_bad_index(element, value, **kw))


@case("indices_float", "indices of a float dtype", "open", "ValueError",
      ["{path}", "X/indices", "dtype float32 is not an integer type"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "X/indices", f["X/indices"][:].astype(np.float32)))


@case("data_shorter_than_indices", "data length != indices length", "open", "ValueError",
      ["{path}", "X: data has", "but indices has"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "X/data", f["X/data"][:-5]))


@case("indices_shorter_than_data", "data length != indices length (raw/X)", "open",
      "ValueError", ["{path}", "raw/X: data has", "but indices has"], layer="raw")
def _(p):
    write_h5ad(p, raw=True)
    modify(p, lambda f: rewrite(f, "raw/X/indices", f["raw/X/indices"][:-1]))


@case("obs_fewer_rows", "obs length != n_obs", "open", "ValueError",
      ["{path}", f"obs has {N_OBS - 1} rows but X has {N_OBS}"])
def _(p):
    write_h5ad(p, n=N_OBS)
    def fn(f):
        for name in [*f["obs"].attrs["column-order"], "_index"]:
            node = f[f"obs/{name}"]
            if isinstance(node, h5py.Group):
                rewrite(f, f"obs/{name}/codes", node["codes"][:-1])
            else:
                rewrite(f, f"obs/{name}", node[:-1])
    modify(p, fn)


@case("obs_column_short", "an obs column shorter than the obs index", "open", "ValueError",
      ["{path}", "obs/score: has 35 rows", f"the obs index has {N_OBS}"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "obs/score", f["obs/score"][:35]))


@case("var_codes_short", "a var categorical shorter than var", "open", "ValueError",
      ["{path}", "var/chrom", "has 29 rows", f"the var index has {N_VARS}"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "var/chrom/codes", f["var/chrom/codes"][:-1]))


@case("codes_out_of_range", "categorical codes out of range", "obs:cell_type", "ValueError",
      ["{path}", "obs/cell_type/codes", "code 9 at row 7", "outside [-1, 4)"])
def _(p):
    write_h5ad(p)
    def fn(f):
        c = f["obs/cell_type/codes"][:]
        c[7] = 9
        rewrite(f, "obs/cell_type/codes", c)
    modify(p, fn)


@case("codes_below_minus_one", "categorical code < -1", "obs:batch", "ValueError",
      ["{path}", "obs/batch/codes", "code -3 at row 0", "outside [-1, 3)"])
def _(p):
    write_h5ad(p)
    def fn(f):
        c = f["obs/batch/codes"][:]
        c[0] = -3
        rewrite(f, "obs/batch/codes", c)
    modify(p, fn)


@case("var_codes_out_of_range", "categorical codes out of range in var", "var:chrom",
      "ValueError", ["{path}", "var/chrom/codes", "code 3 at row 11", "outside [-1, 3)"])
def _(p):
    write_h5ad(p)
    def fn(f):
        c = f["var/chrom/codes"][:]
        c[11] = 3
        rewrite(f, "var/chrom/codes", c)
    modify(p, fn)


@case("raw_var_codes_out_of_range", "categorical codes out of range in raw/var", "var:chrom",
      "ValueError", ["{path}", "raw/var/chrom/codes", "code 5 at row 33", "outside [-1, 3)"],
      layer="raw")
def _(p):
    write_h5ad(p, raw=True)
    def fn(f):
        c = f["raw/var/chrom/codes"][:]
        c[33] = 5
        rewrite(f, "raw/var/chrom/codes", c)
    modify(p, fn)


@case("codes_float", "categorical codes of a float dtype", "open", "ValueError",
      ["{path}", "obs/cell_type/codes", "expected signed integer codes, found float32"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "obs/cell_type/codes",
                                f["obs/cell_type/codes"][:].astype(np.float32)))


@case("encoding_attr_int", "encoding-type attribute that is not a string", "open", "ValueError",
      ["{path}", "X attribute 'encoding-type'", "expected strings"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__setitem__("encoding-type", 7))


# --------------------------------------------------------------------------------------
# 3. Unsupported encodings, dtypes, filters; genes that cannot be joined

def _csc(p: Path, element: str) -> None:
    write_h5ad(p, raw=element == "raw/X", layers=element.startswith("layers/"))
    def fn(f):
        m = ad.io.read_elem(f[element]).tocsc()
        del f[element]
        ad.io.write_elem(f, element, m)
    modify(p, fn)


for element, layer in [("X", ""), ("raw/X", "raw"), ("layers/counts", "counts")]:
    case(f"csc_{element.replace('/', '_').lower()}", f"csc_matrix in {element}", "open",
         "ValueError", ["{path}", f"{element}: csc_matrix is not supported"],
         layer=layer)(lambda p, e=element: _csc(p, e))


@case("coo_encoding", "unknown matrix encoding", "open", "ValueError",
      ["{path}", "X: matrix encoding 'coo_matrix' is not supported"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__setitem__("encoding-type", "coo_matrix"))


@case("h5sparse_legacy_no_shape", "anndata < 0.7 sparse layout without its shape", "open",
      "ValueError", ["{path}", "X attribute 'h5sparse_shape' is missing"])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: f["X"].attrs.__setitem__("h5sparse_format", "csr"))


@case("h5sparse_legacy_csc", "anndata < 0.7 sparse layout in CSC", "open", "ValueError",
      ["{path}", "X: csc_matrix is not supported", "tocsr()"])
def _(p):
    write_h5ad(p)
    def fn(f):
        f["X"].attrs["h5sparse_format"] = "csc"
        f["X"].attrs["h5sparse_shape"] = np.array([N_OBS, N_VARS])
    modify(p, fn)


# anndata < 0.7 obs: one compound dataset, categories in uns/<col>_categories.
def _compound_obs(p: Path, rec: np.ndarray, cats: dict | None = None) -> None:
    write_h5ad(p)
    def fn(f):
        del f["obs"]
        f["obs"] = rec
        for k, v in (cats or {}).items():
            f[f"uns/{k}_categories"] = np.array(v, dtype="S")
    modify(p, fn)


def _records(fields, n: int = N_OBS) -> np.ndarray:
    rec = np.zeros(n, dtype=[("index", "S8")] + fields)
    rec["index"] = [f"cell{i}".encode() for i in range(n)]
    return rec


@case("obs_compound_array_field", "anndata < 0.7 obs with a field holding an array per row",
      "open", "ValueError", ["{path}", "obs field 'pca'", "holds an array per row"])
def _(p):
    _compound_obs(p, _records([("score", "f8"), ("pca", "f4", (3,))]))


@case("obs_compound_numeric_index", "anndata < 0.7 obs whose first field is not strings",
      "open", "ValueError", ["{path}", "obs: compound dataframe", "string index field"])
def _(p):
    rec = np.zeros(N_OBS, dtype=[("n", "i8"), ("score", "f8")])
    _compound_obs(p, rec)


@case("obs_compound_bad_codes", "anndata < 0.7 categorical codes below -1", "open",
      "ValueError", ["{path}", "obs field 'label'", "code -3 at row 5", "uns/label_categories"])
def _(p):
    rec = _records([("label", "i1")])
    rec["label"] = np.arange(N_OBS) % 2
    rec["label"][5] = -3
    _compound_obs(p, rec, {"label": ["a", "b"]})


@case("obs_compound_wrong_length", "anndata < 0.7 obs with fewer records than X's rows",
      "open", "ValueError", ["{path}", f"obs has {N_OBS - 1} rows but X has {N_OBS}"])
def _(p):
    _compound_obs(p, _records([("score", "f8")], n=N_OBS - 1))


@case("obs_compound_complex_field", "anndata < 0.7 obs with a complex field", "open",
      "ValueError", ["{path}", "obs field 'z'", "complex numbers are not supported"])
def _(p):
    _compound_obs(p, _records([("z", "c8")]))


@case("obs_categories_not_a_reference", "anndata 0.7 categorical whose categories attribute "
      "is not an object reference", "open", "ValueError",
      ["{path}", "obs/label attribute 'categories'", "expected one HDF5 object reference"])
def _(p):
    write_h5ad(p)
    def fn(f):
        order = list(f["obs"].attrs["column-order"]) + ["label"]
        f["obs/label"] = (np.arange(N_OBS) % 2).astype("i1")
        f["obs/label"].attrs["categories"] = "obs/__categories/label"
        f["obs"].attrs["column-order"] = order
    modify(p, fn)


# Cell Ranger v3 matrices (genes x barcodes CSC), written with h5py as Cell Ranger lays
# them out; one thing broken in each.
def write_cellranger3(p: Path, *, n: int = N_OBS, g: int = N_VARS, shape=None,
                      n_barcodes=None, n_features=None, features: bool = True) -> None:
    rng = np.random.default_rng(3)
    m = _csr(rng, n, g)  # cells x genes CSR == genes x cells CSC
    with h5py.File(p, "w") as f:
        grp = f.create_group("matrix")
        grp["data"] = m.data.astype(np.int32)
        grp["indices"] = m.indices.astype(np.int64)
        grp["indptr"] = m.indptr.astype(np.int64)
        grp["shape"] = np.array(shape if shape is not None else [g, n], dtype=np.int32)
        grp["barcodes"] = np.array([f"AAAC{i:04d}-1" for i in range(n_barcodes or n)], dtype="S")
        if features:
            fe = grp.create_group("features")
            k = n_features or g
            fe["id"] = np.array([f"ENSG{i:05d}" for i in range(k)], dtype="S")
            fe["name"] = np.array([f"G{i}" for i in range(k)], dtype="S")
            fe["feature_type"] = np.array(["Gene Expression"] * k, dtype="S")
            fe["genome"] = np.array(["GRCh38"] * k, dtype="S")
            fe["_all_tag_keys"] = np.array([b"genome"])


@case("cellranger_shape_more_barcodes", "Cell Ranger matrix whose shape claims more barcodes "
      "than indptr has", "open", "ValueError",
      ["{path}", "matrix/indptr", f"expected n_obs + 1 = {N_OBS + 6}"])
def _(p):
    write_cellranger3(p, shape=[N_VARS, N_OBS + 5])


@case("cellranger_barcodes_short", "Cell Ranger matrix with fewer barcodes than columns",
      "open", "ValueError", ["{path}", "matrix/barcodes: has 39 entries",
                             f"the matrix shape says {N_OBS} barcodes"])
def _(p):
    write_cellranger3(p, n_barcodes=N_OBS - 1)


@case("cellranger_features_short", "Cell Ranger matrix with fewer features than rows",
      "open", "ValueError", ["{path}", "matrix/features/name: has 29 entries",
                             f"the matrix shape says {N_VARS} features"])
def _(p):
    write_cellranger3(p, n_features=N_VARS - 1)


@case("cellranger_no_features", "Cell Ranger v3 matrix without its features group", "open",
      "ValueError", ["{path}", "matrix/features: missing"])
def _(p):
    write_cellranger3(p, features=False)


@case("cellranger_index_past_genes", "Cell Ranger matrix with a gene index past the genes",
      "read", "ValueError", ["{path}", "matrix/indices", f"is outside [0, {N_VARS - 4})"])
def _(p):
    write_cellranger3(p, shape=[N_VARS - 4, N_OBS], n_features=N_VARS - 4)


def _filter(element: str, kw: dict | None = None, low_level: int | None = None):
    def fn(p):
        write_h5ad(p)
        def edit(f):
            values = f[element][:]
            if low_level is None:
                rewrite(f, element, values, **{"compression": None, "compression_opts": None, **kw})
                return
            # A filter id with no registered filter: optional, so HDF5 writes the chunks
            # raw (filter skipped) and the dataset still lists it.
            from h5py import h5d, h5p, h5s, h5t, h5z
            del f[element]
            dcpl = h5p.create(h5p.DATASET_CREATE)
            dcpl.set_chunk((CHUNK,))
            dcpl.set_filter(low_level, h5z.FLAG_OPTIONAL, (3,))
            sid = h5s.create_simple(values.shape, (h5s.UNLIMITED,))
            tid = h5t.py_create(values.dtype)
            dsid = h5d.create(f.id, element.encode(), tid, sid, dcpl=dcpl)
            h5py.Dataset(dsid)[...] = values
        modify(p, edit)
    return fn


case("filter_szip", "szip filter", "open", "ValueError",
     ["{path}", "X/data", "unsupported HDF5 filter szip"])(
    _filter("X/data", {"compression": "szip"}))
case("filter_scaleoffset", "scale-offset filter", "open", "ValueError",
     ["{path}", "X/indices", "unsupported HDF5 filter scale-offset"])(
    _filter("X/indices", {"scaleoffset": 0}))
case("filter_plugin_zstd", "unknown plugin filter id (zstd 32015)", "open", "ValueError",
     ["{path}", "X/data", "unsupported HDF5 filter id 32015"])(
    _filter("X/data", low_level=32015))
case("filter_plugin_obs", "unknown plugin filter id in an obs column", "open", "ValueError",
     ["{path}", "obs/score", "unsupported HDF5 filter id 32001"])(
    _filter("obs/score", low_level=32001))


def _dtype(element: str, dtype):
    def fn(p):
        write_h5ad(p)
        modify(p, lambda f: rewrite(f, element, f[element][:].astype(dtype)))
    return fn


case("dtype_float16", "float16 data", "open", "ValueError",
     ["{path}", "X/data", "float of 2 bytes is not supported"])(_dtype("X/data", np.float16))
case("dtype_big_endian", "big-endian data", "open", "ValueError",
     ["{path}", "X/data", "big-endian"])(_dtype("X/data", ">f4"))
case("dtype_complex", "complex data", "open", "ValueError",
     ["{path}", "X/data", "complex numbers are not supported"])(_dtype("X/data", np.complex64))
case("dtype_string_data", "string data", "open", "ValueError",
     ["{path}", "X/data", "string"])(_dtype("X/data", "S4"))
case("dtype_obs_float16", "float16 obs column", "open", "ValueError",
     ["{path}", "obs/score", "float of 2 bytes"])(_dtype("obs/score", np.float16))


@case("dense_3d", "3-D dense X", "open", "ValueError", ["{path}", "X", "3-D"])
def _(p):
    write_h5ad(p, x="dense")
    modify(p, lambda f: rewrite(f, "X", f["X"][:][:, :, None], chunks=(8, 8, 1),
                                maxshape=(None, None, None)))


@case("genes_disjoint", "var cannot be joined: no gene in common (inner join)", "open",
      "ValueError", ["no gene is common", "{path}"], extra_files=1, cli="bench")
def _(p, p2):
    write_h5ad(p, seed=1)
    write_h5ad(p2, seed=2, var=_var(N_VARS, np.random.default_rng(3), prefix="other"))


# --------------------------------------------------------------------------------------
# 4. Accepted as stored (documented in docs/ERRORS.md): these must read, and give exactly
#    what the file stores.

@case("accept_unsorted_indices", "unsorted indices within a row (accepted as stored)", "read",
      None, [])
def _(p):
    write_h5ad(p)
    def fn(f):
        ptr, idx = f["X/indptr"][:], f["X/indices"][:]
        for r in range(len(ptr) - 1):
            idx[ptr[r]:ptr[r + 1]] = idx[ptr[r]:ptr[r + 1]][::-1]
        rewrite(f, "X/indices", idx)
    modify(p, fn)


@case("accept_duplicate_indices", "duplicated indices within a row (accepted as stored)",
      "read", None, [])
def _(p):
    write_h5ad(p)
    def fn(f):
        ptr, idx = f["X/indptr"][:], f["X/indices"][:]
        for r in range(len(ptr) - 1):
            if ptr[r + 1] - ptr[r] >= 2:
                idx[ptr[r] + 1] = idx[ptr[r]]
        rewrite(f, "X/indices", idx)
    modify(p, fn)


def _set_values(element: str, changes: dict, **write_kw):
    """Writes a valid file, then sets data[index] = value for each of `changes` in `element`
    (a CSR group's data, or a dense array at [row, col] pairs)."""
    def fn(p):
        write_h5ad(p, **write_kw)
        def edit(f):
            if isinstance(f[element], h5py.Group):
                d = f[element + "/data"][:]
                for i, v in changes.items():
                    d[i] = v
                rewrite(f, element + "/data", d)
            else:
                for (r, c), v in changes.items():
                    f[element][r, c] = v
        modify(p, edit)
    return fn


# Element 37 of X/data lies in row 5 (8 values per row, row 4 empty) and chunk 2 (16 per chunk).
case("nan_in_x", "NaN count in X/data (gzip), default values='finite'", "read", "ValueError",
     ["{path}", "X/data: chunk 2", "value nan at element 37 (row 5) is NaN", "finite"])(
    _set_values("X", {37: np.nan, 200: np.nan}, compression=GZIP))
case("inf_in_raw_x", "infinite value in raw/X/data", "read", "ValueError",
     ["{path}", "raw/X/data: chunk", "is infinite", "values='finite'"], layer="raw")(
    _set_values("raw/X", {100: -np.inf}, raw=True))
case("nan_in_dense_x", "NaN in a dense X (gzip)", "read", "ValueError",
     ["{path}", "X: chunk", "(row 9) is NaN"])(
    _set_values("X", {(9, 3): np.nan}, x="dense", compression=GZIP))
case("nan_in_layer_uncompressed", "NaN in layers/counts (unfiltered, read in place)", "read",
     "ValueError", ["{path}", "layers/counts/data", "is NaN"], layer="counts")(
    _set_values("layers/counts", {3: np.nan}, layers=True))
case("negative_counts", "negative count with values='counts'", "read", "ValueError",
     ["{path}", "X/data: chunk 1", "value -2 at element 20 (row 2) is negative",
      "expected counts"], values="counts")(_set_values("X", {20: -2.0}, compression=GZIP))
case("fractional_counts", "fractional count with values='counts'", "read", "ValueError",
     ["{path}", "X/data", "value 2.5 at element 9 (row 1) is not a whole number"],
     values="counts")(_set_values("X", {9: 2.5}))
case("accept_negative_finite", "negative values (scaled data) under the default values='finite'",
     "read", None, [])(_set_values("X", {5: -1.5, 30: -0.25}, compression=GZIP))


@case("accept_nan_negative", "NaN, inf and negative counts (delivered as stored, values='any')",
      "read", None, [], values="any")
def _(p):
    write_h5ad(p)
    def fn(f):
        d = f["X/data"][:]
        d[::7] = np.nan
        d[3::11] = -2.5
        d[5] = np.inf
        d[6] = -np.inf
        rewrite(f, "X/data", d)
    modify(p, fn)


@case("accept_dense_unwritten_chunk", "dense X chunk with no address (fill value)", "read",
      None, [])
def _(p):
    write_h5ad(p, x="dense", compression=GZIP)
    def fn(f):
        x = f["X"][:]
        attrs = dict(f["X"].attrs)
        del f["X"]
        ds = f.create_dataset("X", shape=x.shape, dtype=x.dtype, chunks=(8, 8),
                              compression="gzip", fillvalue=0)
        for r in range(0, x.shape[0], 8):
            for c in range(0, x.shape[1], 8):
                if (r, c) != (8, 16):
                    ds[r:r + 8, c:c + 8] = x[r:r + 8, c:c + 8]
        for k, v in attrs.items():
            ds.attrs[k] = v
    modify(p, fn)


@case("accept_obs_unwritten_chunk", "obs column chunk with no address (fill value)",
      "obs:score", None, [])
def _(p):
    write_h5ad(p)
    modify(p, lambda f: rewrite(f, "obs/score", f["obs/score"][:], chunks=(16,),
                                maxshape=(None,), skip_chunks={1}, fillvalue=-1.0))


# --------------------------------------------------------------------------------------

def generate(outdir: os.PathLike | str, names: list[str] | None = None) -> dict:
    """Writes the corpus into outdir; returns the manifest (also written as manifest.json)."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for c in CASES:
        if names is not None and c.entry.name not in names:
            continue
        c.write(out)
        entries.append(asdict(c.entry))
    manifest = {"version": 1, "entries": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_bad_files.py OUTDIR")
    m = generate(sys.argv[1])
    print(f"{len(m['entries'])} files written to {sys.argv[1]}")
