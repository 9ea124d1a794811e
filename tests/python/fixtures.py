"""Generator of the .h5ad files the Python tests read.

Files are written by the real anndata writer (``AnnData.write_h5ad`` and
``anndata.io.write_elem``) and, for the layouts anndata cannot produce (unsigned
indices, int64 indptr on a small file, chosen chunk sizes and filter pipelines, a
contiguous sparse matrix, unwritten chunks), by h5py following the anndata on-disk spec
(``encoding-type`` / ``encoding-version`` attributes, a ``shape`` attribute on sparse
groups, ``dataframe`` groups with ``_index`` and ``column-order``).

``generate(outdir)`` writes everything into ``outdir`` (a temporary directory, never the
repository) and returns a ``Generated`` record. The names of the single-file cases are
known before generation (``SINGLE``), so that tests can be parametrized at collection.

Every generated file can be read by anndata: the tests compare cellfeed against
``anndata.read_h5ad`` of the same file, never against the arrays used to write it.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
REAL_PBMC = REPO / "data" / "real" / "pbmc68k_reduced_scanpy1.h5ad"

# h5py keyword arguments of each filter pipeline under test.
FILTERS: dict[str, dict] = {
    "none": {},
    "gzip": {"compression": "gzip", "compression_opts": 4},
    "lzf": {"compression": "lzf"},
    "shuffle+gzip": {"shuffle": True, "compression": "gzip", "compression_opts": 1},
    "shuffle+lzf": {"shuffle": True, "compression": "lzf"},
    "fletcher32": {"fletcher32": True},
    "shuffle+gzip9+fletcher32": {
        "shuffle": True, "compression": "gzip", "compression_opts": 9, "fletcher32": True},
}
DATA_DTYPES = ["float32", "float64", "int32", "int64", "uint16"]
INDEX_DTYPES = ["int32", "int64", "uint16", "uint32"]
INDPTR_DTYPES = ["int32", "int64"]
# Chunk length of data/indices/indptr; None = contiguous when unfiltered, h5py's
# automatic chunking otherwise (filters need chunks). 3 values is far less than a row
# (rows hold ~20 values here).
CHUNKS = [3, 17, 256, 4096, None]


@dataclass(frozen=True)
class Case:
    """One single-file test case."""

    name: str
    layers: tuple[str, ...] = ()  # layers tested besides X: "raw", or a layers/<name>
    writer: str = "anndata"  # "anndata", "h5py" (X written by h5py), "real"


@dataclass
class Generated:
    single: dict[str, Path] = field(default_factory=dict)
    multi: list[Path] = field(default_factory=list)  # 3 files, same genes
    multi_with_empty: list[Path] = field(default_factory=list)  # a zero-cell file inside
    errors: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# Content builders

def make_obs(n: int, rng: np.random.Generator, *, prefix: str = "cell",
             cell_types=("T", "B", "NK", "Mono"), nullable_strings: bool = True,
             n_counts_dtype=np.int32) -> pd.DataFrame:
    """obs with every column kind anndata writes."""
    idx = [f"{prefix}_{i:05d}" + ("-ü" if i % 97 == 5 else "") for i in range(n)]
    cols = {
        # string categories with -1 (missing) codes, unordered
        "cell_type": pd.Categorical.from_codes(
            rng.integers(-1, len(cell_types), n), categories=list(cell_types)),
        # ordered, with missing values
        "grade": pd.Categorical.from_codes(
            rng.integers(-1, 3, n), categories=["low", "mid", "high"], ordered=True),
        # numeric categories (int64 and float64)
        "batch": pd.Categorical.from_codes(rng.integers(0, 3, n), categories=[3, 7, 11]),
        "dose": pd.Categorical.from_codes(rng.integers(-1, 2, n), categories=[0.5, 2.25]),
        "n_genes": rng.integers(0, 5000, n).astype(np.int64),
        "n_counts": rng.integers(0, 50000, n).astype(n_counts_dtype),
        "pct_mito": rng.random(n).astype(np.float32),
        "score": rng.standard_normal(n),  # float64
        "is_doublet": rng.random(n) < 0.1,
        "small": rng.integers(0, 200, n).astype(np.uint8),
        # unique strings (string-array), with a non-ASCII and an empty one
        "barcode": np.array([("" if i == 3 else f"ACGT{i:06d}" + ("γ" if i % 11 == 0 else ""))
                             for i in range(n)], dtype=object),
        # repeating strings: a string-array when strings are not made categoricals
        "sample": np.array([f"sample{i % 3}" for i in range(n)], dtype=object),
        "n_int": pd.array([None if i % 7 == 0 else int(v) for i, v in
                           enumerate(rng.integers(-5, 5, n))], dtype="Int64"),
        "n_int32": pd.array([None if i % 5 == 1 else int(v) for i, v in
                             enumerate(rng.integers(0, 100, n))], dtype="Int32"),
        "flag": pd.array([None if i % 6 == 2 else bool(v) for i, v in
                          enumerate(rng.random(n) < 0.5)], dtype="boolean"),
    }
    if nullable_strings:
        cols["note"] = pd.array([None if i % 4 == 1 else f"n{i % 9}" for i in range(n)],
                                dtype="string")
    return pd.DataFrame(cols, index=pd.Index(idx, dtype=object))


def make_var(n_vars: int, rng: np.random.Generator, *, prefix: str = "gene") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gene_symbol": np.array([f"SYM{j}" for j in range(n_vars)], dtype=object),
            "highly_variable": rng.random(n_vars) < 0.3,
            "means": rng.random(n_vars).astype(np.float32),
            "chrom": pd.Categorical.from_codes(rng.integers(0, 3, n_vars),
                                               categories=["chr1", "chr2", "chrX"]),
        },
        index=pd.Index([f"{prefix}{j}" for j in range(n_vars)], dtype=object),
    )


def random_values(rng: np.random.Generator, size: int, dtype: str) -> np.ndarray:
    """Stored values; zeros avoided so that dense and sparse agree on the pattern."""
    dt = np.dtype(dtype)
    if dt == np.float32:
        return (rng.gamma(1.5, 3.0, size) + 0.01).astype(np.float32)
    if dt == np.float64:  # not float32-representable: tests the float64 -> float32 rounding
        return rng.standard_normal(size) * 100.0 + 0.5
    if dt == np.uint16:
        return rng.integers(1, 65535, size, endpoint=True).astype(dt)
    if dt.kind == "i":  # signed, negative values too, all exact in float32
        v = rng.integers(-(1 << 20), 1 << 20, size)
        v[v == 0] = 1
        return v.astype(dt)
    raise ValueError(dtype)


def random_csr(rng: np.random.Generator, n_obs: int, n_vars: int, dtype: str = "float32",
               mean_nnz: int = 20, empty_every: int = 9,
               sort_indices: bool = True) -> sp.csr_matrix:
    """A CSR matrix with ~mean_nnz values per row and empty rows (first, last, and every
    `empty_every`-th)."""
    counts = rng.integers(mean_nnz // 2, mean_nnz * 3 // 2 + 1, n_obs)
    counts = np.minimum(counts, n_vars)
    if n_obs:
        counts[::empty_every] = 0
        counts[-1] = 0
    indptr = np.zeros(n_obs + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    for r in range(n_obs):
        cols = rng.choice(n_vars, int(counts[r]), replace=False)
        indices[indptr[r]:indptr[r + 1]] = np.sort(cols) if sort_indices else cols
    data = random_values(rng, indices.size, dtype)
    m = sp.csr_matrix((data, indices, indptr), shape=(n_obs, n_vars))
    m.has_sorted_indices = sort_indices
    return m


def random_dense(rng: np.random.Generator, n_obs: int, n_vars: int, dtype: str) -> np.ndarray:
    m = random_csr(rng, n_obs, n_vars, dtype, mean_nnz=max(1, n_vars // 3)).toarray()
    return m.astype(dtype)


# --------------------------------------------------------------------------------------
# Writers

def write_anndata(path: Path, adata: ad.AnnData, **kwargs) -> Path:
    """The real anndata writer; nullable string columns are opted in (anndata 0.12
    refuses them otherwise) and strings are kept as strings unless asked."""
    kwargs.setdefault("convert_strings_to_categoricals", False)
    with ad.settings.override(allow_write_nullable_strings=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_h5ad(path, **kwargs)
    return path


def write_frame_file(path: Path, obs: pd.DataFrame, var: pd.DataFrame,
                     userblock_size: int = 0) -> h5py.File:
    """An h5ad file with obs/var (anndata's write_elem) and no X yet; returns it open."""
    kw = {"userblock_size": userblock_size} if userblock_size else {}
    f = h5py.File(path, "w", **kw)
    with ad.settings.override(allow_write_nullable_strings=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ad.io.write_elem(f, "/", ad.AnnData(obs=obs, var=var))
    return f


def _chunk_kwargs(length: int, chunk: int | None, filters: dict) -> dict:
    if chunk is None:
        return {"chunks": True, "maxshape": (None,)} if filters else {}
    return {"chunks": (chunk,), "maxshape": (None,)}


def write_csr_h5py(group: h5py.Group, name: str, m: sp.csr_matrix, *, data_dtype: str,
                   indices_dtype: str, indptr_dtype: str, chunk: int | None,
                   filters: str) -> h5py.Group:
    """A csr_matrix element per the anndata spec, with chosen dtypes and storage."""
    fkw = FILTERS[filters]
    g = group.create_group(name)
    g.attrs["encoding-type"] = "csr_matrix"
    g.attrs["encoding-version"] = "0.1.0"
    g.attrs["shape"] = np.array(m.shape, dtype=np.int64)
    for part, arr, dt in (("data", m.data, data_dtype), ("indices", m.indices, indices_dtype),
                          ("indptr", m.indptr, indptr_dtype)):
        arr = np.asarray(arr)
        cast = arr.astype(dt)
        assert np.array_equal(cast.astype(np.float64), arr.astype(np.float64)) or part == "data"
        g.create_dataset(part, data=cast, **_chunk_kwargs(len(arr), chunk, fkw), **fkw)
    return g


def write_dense_h5py(group: h5py.Group, name: str, x: np.ndarray, *, chunks, filters: str,
                     fillvalue=None, skip_zero_chunks: bool = False) -> h5py.Dataset:
    """A dense `array` element. skip_zero_chunks: chunks that are all zero are never
    written (they read as the fill value)."""
    fkw = FILTERS[filters]
    kw = dict(fkw)
    if chunks is not None:
        kw["chunks"] = chunks
        if any(c > n for c, n in zip(chunks, x.shape)):
            kw["maxshape"] = (None, None)  # chunks larger than the array need this
    if fillvalue is not None:
        kw["fillvalue"] = fillvalue
    if skip_zero_chunks:
        ds = group.create_dataset(name, shape=x.shape, dtype=x.dtype, **kw)
        cr, cc = ds.chunks
        for r0 in range(0, x.shape[0], cr):
            for c0 in range(0, x.shape[1], cc):
                block = x[r0:r0 + cr, c0:c0 + cc]
                if block.any():
                    ds[r0:r0 + cr, c0:c0 + cc] = block
    else:
        ds = group.create_dataset(name, data=x, **kw)
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "0.2.0"
    return ds


# --------------------------------------------------------------------------------------
# The cases

def _csr_grid() -> list[tuple[str, dict]]:
    """35 CSR files: every (filter, chunk) pair once, every (data, indices) dtype pair at
    least once, both indptr dtypes."""
    out = []
    fnames = list(FILTERS)
    for k in range(len(FILTERS) * len(CHUNKS)):
        spec = dict(data_dtype=DATA_DTYPES[k % 5], indices_dtype=INDEX_DTYPES[k % 4],
                    indptr_dtype=INDPTR_DTYPES[k % 2], filters=fnames[k % 7],
                    chunk=CHUNKS[k // 7])
        chunk = "contig" if spec["chunk"] is None else f"c{spec['chunk']}"
        name = (f"csr{k:02d}_{spec['data_dtype']}_{spec['indices_dtype']}_"
                f"{spec['indptr_dtype']}_{spec['filters']}_{chunk}")
        if spec["chunk"] is None and spec["filters"] != "none":
            name = name.replace("contig", "autochunk")
        out.append((name, spec))
    return out


CSR_GRID = _csr_grid()

DENSE_GRID = [
    # name, dtype, chunks, filters
    ("dense_float32_c7x5_gzip", "float32", (7, 5), "gzip"),
    ("dense_float64_row_lzf", "float64", (1, None), "lzf"),  # one row per chunk
    ("dense_int32_c64x13_shuffle+gzip", "int32", (64, 13), "shuffle+gzip"),
    ("dense_int64_contig", "int64", None, "none"),
    ("dense_uint16_big_fletcher32", "uint16", (1000, 1000), "fletcher32"),  # > shape
    ("dense_float32_c3x1_shuffle+lzf", "float32", (3, 1), "shuffle+lzf"),
    ("dense_float64_c16x8_fill", "float64", (16, 8), "gzip"),  # unwritten chunks, fill 2.5
]

SINGLE: list[Case] = [
    Case("ad_csr_float32_plain"),
    Case("ad_csr_float64_gzip"),
    Case("ad_csr_int32_lzf_categoricals"),
    Case("ad_csr_int64_gzip9_minidx"),
    Case("ad_csr_uint16_lzf_minidx"),
    Case("ad_dense_float32_gzip"),
    Case("ad_dense_float64_plain"),
    Case("ad_dense_int32_lzf"),
    Case("ad_layers_raw", layers=("raw", "counts", "scaled")),
    Case("ad_zero_cells", layers=("counts",)),
    Case("ad_userblock_gzip", layers=("raw",)),
    Case("h5_userblock_contig", writer="h5py"),
    Case("h5_unsorted_indices", writer="h5py"),
    Case("h5_nullable_string_index", writer="h5py"),
    *[Case(name, writer="h5py") for name, _ in CSR_GRID],
    *[Case(name[0], writer="h5py") for name in DENSE_GRID],
    Case("real_pbmc68k", layers=("raw",), writer="real"),
]
SINGLE_NAMES = [c.name for c in SINGLE]
LAYER_CASES = [(c.name, layer) for c in SINGLE for layer in c.layers]


def _adata(rng, n_obs, n_vars, X, **obs_kw) -> ad.AnnData:
    return ad.AnnData(X, obs=make_obs(n_obs, rng, **obs_kw), var=make_var(n_vars, rng))


def _write_singles(out: Path, gen: Generated) -> None:
    rng = np.random.default_rng(20240611)

    def put(name: str, path: Path) -> None:
        gen.single[name] = path

    n, g = 400, 120
    put("ad_csr_float32_plain", write_anndata(
        out / "ad_csr_float32_plain.h5ad", _adata(rng, n, g, random_csr(rng, n, g, "float32"))))
    put("ad_csr_float64_gzip", write_anndata(
        out / "ad_csr_float64_gzip.h5ad", _adata(rng, 300, g, random_csr(rng, 300, g, "float64")),
        compression="gzip"))
    # Default anndata behaviour: repeated strings become categoricals.
    a = _adata(rng, 350, g, random_csr(rng, 350, g, "int32"), nullable_strings=False)
    put("ad_csr_int32_lzf_categoricals", write_anndata(
        out / "ad_csr_int32_lzf_categoricals.h5ad", a, compression="lzf",
        convert_strings_to_categoricals=True))
    with ad.settings.override(write_csr_csc_indices_with_min_possible_dtype=True):
        put("ad_csr_int64_gzip9_minidx", write_anndata(
            out / "ad_csr_int64_gzip9_minidx.h5ad",
            _adata(rng, 250, g, random_csr(rng, 250, g, "int64")),
            compression="gzip", compression_opts=9))
        put("ad_csr_uint16_lzf_minidx", write_anndata(
            out / "ad_csr_uint16_lzf_minidx.h5ad",
            _adata(rng, 260, 300, random_csr(rng, 260, 300, "uint16")),
            compression="lzf"))
    put("ad_dense_float32_gzip", write_anndata(
        out / "ad_dense_float32_gzip.h5ad",
        _adata(rng, 300, 90, random_csr(rng, 300, 90, "float32", mean_nnz=30)),
        compression="gzip", as_dense=("X",)))
    put("ad_dense_float64_plain", write_anndata(
        out / "ad_dense_float64_plain.h5ad",
        _adata(rng, 220, 80, random_dense(rng, 220, 80, "float64"))))
    put("ad_dense_int32_lzf", write_anndata(
        out / "ad_dense_int32_lzf.h5ad",
        _adata(rng, 210, 64, random_dense(rng, 210, 64, "int32")), compression="lzf"))

    # X normalized, layers/counts (int CSR), layers/scaled (dense), raw with MORE genes.
    n, g_raw, g = 300, 200, 120
    counts_all = random_csr(rng, n, g_raw, "uint16").astype(np.int32)
    full = ad.AnnData(counts_all.astype(np.float32), obs=make_obs(n, rng),
                      var=make_var(g_raw, rng))
    full.raw = full
    keep = np.sort(rng.choice(g_raw, g, replace=False))
    a = full[:, keep].copy()
    a.layers["counts"] = counts_all[:, keep].astype(np.int32)
    a.X = sp.csr_matrix(np.log1p(a.X.toarray()).astype(np.float32))
    a.layers["scaled"] = (a.X.toarray() * 2.0 - 1.0).astype(np.float32)
    put("ad_layers_raw", write_anndata(out / "ad_layers_raw.h5ad", a, compression="gzip"))

    z = _adata(rng, 0, 50, sp.csr_matrix((0, 50), dtype=np.float32))
    z.layers["counts"] = sp.csr_matrix((0, 50), dtype=np.int64)
    put("ad_zero_cells", write_anndata(out / "ad_zero_cells.h5ad", z))

    # User block (512 bytes of anything before the HDF5 superblock), anndata writer.
    n, g = 280, 100
    a = _adata(rng, n, g, random_csr(rng, n, g, "float32"))
    a.raw = ad.AnnData(random_csr(rng, n, g + 30, "float64"), obs=a.obs,
                       var=make_var(g + 30, rng, prefix="rawgene"))
    path = out / "ad_userblock_gzip.h5ad"
    with h5py.File(path, "w", userblock_size=512) as f, \
            ad.settings.override(allow_write_nullable_strings=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ad.io.write_elem(f, "/", a, dataset_kwargs={"compression": "gzip"})
    with open(path, "r+b") as fh:  # user block content is the application's
        fh.write(b"cellfeed test user block\n")
    put("ad_userblock_gzip", path)

    # User block with contiguous (unchunked, unfiltered) X/data, X/indices, X/indptr.
    n, g = 240, 90
    path = out / "h5_userblock_contig.h5ad"
    with write_frame_file(path, make_obs(n, rng), make_var(g, rng), userblock_size=1024) as f:
        write_csr_h5py(f, "X", random_csr(rng, n, g, "float32"), data_dtype="float32",
                       indices_dtype="int32", indptr_dtype="int64", chunk=None, filters="none")
    put("h5_userblock_contig", path)

    # Indices not sorted within rows (as in scanpy's pbmc68k raw/X).
    n, g = 200, 150
    path = out / "h5_unsorted_indices.h5ad"
    with write_frame_file(path, make_obs(n, rng), make_var(g, rng)) as f:
        write_csr_h5py(f, "X", random_csr(rng, n, g, "float32", sort_indices=False),
                       data_dtype="float32", indices_dtype="int32", indptr_dtype="int32",
                       chunk=64, filters="gzip")
    put("h5_unsorted_indices", path)

    # obs/var index stored as a nullable-string-array group (what anndata 0.13 writes with
    # pandas 3); anndata 0.12 reads it.
    n, g = 150, 60
    path = out / "h5_nullable_string_index.h5ad"
    with write_frame_file(path, make_obs(n, rng), make_var(g, rng)) as f:
        for df in ("obs", "var"):
            names = f[f"{df}/_index"][...]
            del f[f"{df}/_index"]
            grp = f.create_group(f"{df}/_index")
            grp.attrs["encoding-type"] = "nullable-string-array"
            grp.attrs["encoding-version"] = "0.1.0"
            v = grp.create_dataset("values", data=names, dtype=h5py.string_dtype())
            v.attrs["encoding-type"] = "string-array"
            v.attrs["encoding-version"] = "0.2.0"
            m = grp.create_dataset("mask", data=np.zeros(len(names), dtype=bool))
            m.attrs["encoding-type"] = "array"
            m.attrs["encoding-version"] = "0.2.0"
        write_csr_h5py(f, "X", random_csr(rng, n, g, "float32"), data_dtype="float32",
                       indices_dtype="int32", indptr_dtype="int32", chunk=100, filters="lzf")
    put("h5_nullable_string_index", path)

    for name, spec in CSR_GRID:
        n, g = int(rng.integers(150, 260)), int(rng.integers(60, 140))
        if spec["indices_dtype"] == "uint16":
            g = min(g, 65535)
        path = out / f"{name}.h5ad"
        with write_frame_file(path, make_obs(n, rng), make_var(g, rng)) as f:
            write_csr_h5py(f, "X", random_csr(rng, n, g, spec["data_dtype"]), **spec)
        put(name, path)

    for name, dtype, chunks, filters in DENSE_GRID:
        n, g = int(rng.integers(100, 180)), int(rng.integers(30, 70))
        x = random_dense(rng, n, g, dtype)
        if chunks is not None and chunks[1] is None:
            chunks = (chunks[0], g)
        fill = None
        if name.endswith("_fill"):
            x[16:48, :] = 0  # whole chunk rows never written
            x[:, 8:16] = 0
            fill = 2.5
        path = out / f"{name}.h5ad"
        with write_frame_file(path, make_obs(n, rng), make_var(g, rng)) as f:
            write_dense_h5py(f, "X", x, chunks=chunks, filters=filters, fillvalue=fill,
                             skip_zero_chunks=fill is not None)
        put(name, path)

    put("real_pbmc68k", REAL_PBMC)


def _write_multi(out: Path, gen: Generated) -> None:
    """Three files with the same genes but different encodings, dtypes and categories."""
    rng = np.random.default_rng(7)
    g = 110
    var = make_var(g, rng)
    d = out / "multi"
    d.mkdir()
    a0 = ad.AnnData(random_csr(rng, 150, g, "float32"), var=var,
                    obs=make_obs(150, rng, prefix="p0", cell_types=("T", "B")))
    a1 = ad.AnnData(random_dense(rng, 200, g, "float64"), var=var,
                    obs=make_obs(200, rng, prefix="p1", cell_types=("B", "NK", "Mono"),
                                 n_counts_dtype=np.int64))
    a1.obs["only_in_p1"] = np.arange(200)  # not in every file: not an obs column
    a2 = ad.AnnData(random_csr(rng, 120, g, "int32"), var=var,
                    obs=make_obs(120, rng, prefix="p2", cell_types=("Mono", "T", "γδ T")))
    # numeric categories that differ from the other files' [3, 7, 11] and [0.5, 2.25]
    a2.obs["batch"] = pd.Categorical.from_codes(rng.integers(-1, 3, 120), categories=[7, 11, 13])
    a2.obs["dose"] = pd.Categorical.from_codes(rng.integers(0, 2, 120), categories=[2.25, 4.0])
    p0 = write_anndata(d / "part0.h5ad", a0, compression="gzip")
    p1 = write_anndata(d / "part1.h5ad", a1, compression="lzf")
    with ad.settings.override(write_csr_csc_indices_with_min_possible_dtype=True):
        p2 = write_anndata(d / "part2.h5ad", a2)
    empty = ad.AnnData(sp.csr_matrix((0, g), dtype=np.float32), var=var,
                       obs=make_obs(0, rng, prefix="e"))
    pe = write_anndata(d / "empty.h5ad", empty)
    gen.multi = [p0, p1, p2]
    gen.multi_with_empty = [p0, pe, p2]


def _write_errors(out: Path, gen: Generated) -> None:
    rng = np.random.default_rng(11)
    d = out / "errors"
    d.mkdir()
    n, g = 120, 50

    a = _adata(rng, n, g, sp.csc_matrix(random_csr(rng, n, g, "float32")))
    gen.errors["csc"] = write_anndata(d / "csc.h5ad", a)

    # gzip X with many chunks: one chunk of X/data gets flipped bytes later.
    path = d / "corrupt_gzip.h5ad"
    with write_frame_file(path, make_obs(n, rng), make_var(g, rng)) as f:
        ad.io.write_elem(f, "X", random_csr(rng, n, g, "float32", mean_nnz=30),
                         dataset_kwargs={"compression": "gzip", "chunks": (256,)})
    gen.errors["corrupt_gzip_clean"] = shutil.copy(path, d / "corrupt_gzip_clean.h5ad")
    gen.errors["corrupt_gzip"] = path
    corrupt_chunk(path, "X/data", chunk=2)

    # Unfiltered but checksummed X/indices: a flipped byte breaks fletcher32.
    path = d / "corrupt_fletcher32.h5ad"
    with write_frame_file(path, make_obs(n, rng), make_var(g, rng)) as f:
        write_csr_h5py(f, "X", random_csr(rng, n, g, "float32"), data_dtype="float32",
                       indices_dtype="int32", indptr_dtype="int32", chunk=200,
                       filters="fletcher32")
    gen.errors["corrupt_fletcher32"] = path
    corrupt_chunk(path, "X/indices", chunk=1)

    # A well-formed file whose X/indices hold a column outside [0, n_vars).
    path = d / "bad_indices.h5ad"
    m = random_csr(rng, n, g, "float32")
    m.indices[m.indptr[5] + 1] = g + 3
    with write_frame_file(path, make_obs(n, rng), make_var(g, rng)) as f:
        write_csr_h5py(f, "X", m, data_dtype="float32", indices_dtype="int32",
                       indptr_dtype="int32", chunk=64, filters="gzip")
    gen.errors["bad_indices"] = path

    # indptr decreasing in the middle.
    path = d / "bad_indptr.h5ad"
    m = random_csr(rng, n, g, "float32")
    with write_frame_file(path, make_obs(n, rng), make_var(g, rng)) as f:
        write_csr_h5py(f, "X", m, data_dtype="float32", indices_dtype="int32",
                       indptr_dtype="int64", chunk=64, filters="none")
        f["X/indptr"][10] = f["X/indptr"][12] + 5
    gen.errors["bad_indptr"] = path

    path = d / "not_hdf5.h5ad"
    path.write_bytes(b"this is not an HDF5 file\n" * 100)
    gen.errors["not_hdf5"] = path

    gen.errors["missing"] = d / "does_not_exist.h5ad"

    # Two files whose genes differ (same count, one name changed).
    var = make_var(g, rng)
    a = ad.AnnData(random_csr(rng, 30, g), obs=make_obs(30, rng), var=var)
    gen.errors["genes_a"] = write_anndata(d / "genes_a.h5ad", a)
    var2 = var.copy()
    var2.index = pd.Index([*var.index[:7], "OTHER", *var.index[8:]], dtype=object)
    b = ad.AnnData(random_csr(rng, 30, g), obs=make_obs(30, rng), var=var2)
    gen.errors["genes_b"] = write_anndata(d / "genes_b.h5ad", b)
    c = ad.AnnData(random_csr(rng, 30, g - 1), obs=make_obs(30, rng), var=var.iloc[:-1])
    gen.errors["genes_c"] = write_anndata(d / "genes_c.h5ad", c)
    # No gene in common with genes_a.
    e = ad.AnnData(random_csr(rng, 30, g), obs=make_obs(30, rng),
                   var=make_var(g, rng, prefix="other"))
    gen.errors["genes_disjoint"] = write_anndata(d / "genes_disjoint.h5ad", e)
    # A gene name twice: cannot be joined by name.
    var3 = var.copy()
    var3.index = pd.Index([*var.index[:-1], var.index[0]], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = ad.AnnData(random_csr(rng, 30, g), obs=make_obs(30, rng), var=var3)
    gen.errors["genes_dup"] = write_anndata(d / "genes_dup.h5ad", h)

    # Truncated: the last third of a valid file cut off.
    src = gen.errors["corrupt_gzip_clean"]
    raw = Path(src).read_bytes()
    path = d / "truncated.h5ad"
    path.write_bytes(raw[: len(raw) * 2 // 3])
    gen.errors["truncated"] = path


def corrupt_chunk(path: Path, dataset: str, chunk: int) -> int:
    """Flips bytes in the middle of one stored chunk; returns its file offset."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
    offset, size = int(info.byte_offset), int(info.size)
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        b = bytearray(fh.read(4))
        fh.seek(offset + size // 2)
        fh.write(bytes(x ^ 0xA5 for x in b))
    return offset


# --------------------------------------------------------------------------------------
# Helpers for the tests: row sets and the anndata reference of a matrix / dataframe

ROW_SETS = ["sorted", "unsorted", "duplicates", "empty", "single", "all", "reversed", "edges"]


def row_set(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """Row indices of one kind for a collection of n rows (empty when n == 0)."""
    rng = np.random.default_rng(seed)
    if n == 0 or kind == "empty":
        return np.array([], dtype=np.int64)
    if kind == "sorted":
        return np.sort(rng.choice(n, max(1, n // 3), replace=False))
    if kind == "unsorted":
        return rng.choice(n, max(1, n // 2), replace=False)
    if kind == "duplicates":  # repeats, adjacent and apart, in any order
        r = rng.integers(0, n, max(2, n // 2))
        return np.concatenate([r, r[:5], [r[0], r[0]], r[::-3]])
    if kind == "single":
        return np.array([int(rng.integers(n))])
    if kind == "all":
        return np.arange(n)
    if kind == "reversed":
        return np.arange(n)[::-1].copy()
    if kind == "edges":
        return np.array([0, n - 1, 0, n - 1, n // 2, n - 1])
    raise ValueError(kind)


def reference_matrix(adata: ad.AnnData, layer: str | None):
    """The matrix anndata gives for X / raw / layers/<name>."""
    if layer is None:
        return adata.X
    if layer == "raw":
        return adata.raw.X
    return adata.layers[layer]


def reference_var(adata: ad.AnnData, layer: str | None) -> pd.DataFrame:
    return adata.raw.var if layer == "raw" else adata.var


def as_plain_index(df: pd.DataFrame) -> pd.DataFrame:
    """anndata-read frame with the index cellfeed gives: unnamed, dtype object.

    Two documented representation choices of cellfeed: (1) anndata names the index after
    the `_index` attribute when it is not "_index" (scanpy's files say "index"); cellfeed
    does not name it. (2) anndata 0.12 turns an index stored as nullable-string-array
    into a StringDtype index; cellfeed always gives obs/var names as plain str objects.
    The labels themselves are compared exactly.
    """
    out = df.copy()
    out.index = pd.Index(np.asarray(out.index, dtype=object), dtype=object, name=None)
    return out


def generate(outdir: os.PathLike | str) -> Generated:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    gen = Generated()
    _write_singles(out, gen)
    _write_multi(out, gen)
    _write_errors(out, gen)
    missing = set(SINGLE_NAMES) - set(gen.single)
    assert not missing, missing
    return gen


if __name__ == "__main__":  # python tests/python/fixtures.py OUTDIR
    import sys
    import time

    t = time.time()
    generate(sys.argv[1])
    print(f"generated in {time.time() - t:.1f} s")
