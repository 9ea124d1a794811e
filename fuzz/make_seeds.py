#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (checked in; rerun to refresh):

  fuzz/corpus/decode/*.bin   real stored HDF5 chunks (read back with h5py's
                             read_direct_chunk) under every filter pipeline we decode,
                             in fuzz_decode.cc's input layout
  fuzz/corpus/h5ad/*.h5ad    small valid .h5ad files: anndata's writer (CSR, dense, raw,
                             layers, nullable and categorical columns) and h5py (filters)
  fuzz/corpus/h5ad_struct/   byte strings for the structure-aware target (any bytes do)
  fuzz/corpus/zarr/*.zip     small zipped zarr stores from anndata: v2 (blosc, zstd, lz4,
                             gzip; STORED and DEFLATE members) and v3 (sharded, crc32c)

    python fuzz/make_seeds.py
"""

from __future__ import annotations

import struct
import sys
import tempfile
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
CODES = {"deflate": 0, "shuffle": 1, "fletcher32": 2, "lzf": 3}


def decode_seeds(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "f4": rng.integers(0, 6, 200).astype(np.float32),
        "i4": np.sort(rng.integers(0, 3000, 200)).astype(np.int32),
        "i8": np.cumsum(rng.integers(0, 9, 100)).astype(np.int64),
        "u2": rng.integers(0, 300, 300).astype(np.uint16),
    }
    pipelines = {
        "deflate": ([("deflate",)], {"compression": "gzip", "compression_opts": 4}),
        "lzf": ([("lzf",)], {"compression": "lzf"}),
        "shuffle_deflate": ([("shuffle",), ("deflate",)], {"shuffle": True, "compression": "gzip"}),
        "shuffle_lzf": ([("shuffle",), ("lzf",)], {"shuffle": True, "compression": "lzf"}),
        "fletcher32": ([("fletcher32",)], {"fletcher32": True}),
        "shuffle_deflate_fletcher32": ([("shuffle",), ("deflate",), ("fletcher32",)],
                                       {"shuffle": True, "compression": "gzip",
                                        "fletcher32": True}),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chunks.h5"
        with h5py.File(path, "w") as f:
            for an, arr in arrays.items():
                for pn, (_, kw) in pipelines.items():
                    f.create_dataset(f"{an}_{pn}", data=arr, chunks=(64,), **kw)
        with h5py.File(path, "r") as f:
            for an, arr in arrays.items():
                for pn, (filters, _) in pipelines.items():
                    ds = f[f"{an}_{pn}"]
                    mask, raw = ds.id.read_direct_chunk((0,))
                    esize = arr.dtype.itemsize
                    head = bytes([len(filters)]) + bytes(CODES[x[0]] for x in filters)
                    head += bytes([{1: 0, 2: 1, 4: 2, 8: 3}[esize], mask])
                    head += struct.pack("<I", 64 * esize)[:3]
                    (out / f"{an}_{pn}.bin").write_bytes(head + raw)
    # No filters: a raw chunk; and an unknown plugin id.
    (out / "none.bin").write_bytes(bytes([0, 2, 0]) + struct.pack("<I", 16)[:3] + bytes(16))
    (out / "plugin.bin").write_bytes(bytes([1, 7, 2, 0]) + struct.pack("<I", 16)[:3] + bytes(8))


def _frames(n: int, g: int, rng):
    obs = pd.DataFrame(
        {"ct": pd.Categorical.from_codes(rng.integers(-1, 3, n), categories=["a", "b", "c"]),
         "x": rng.random(n).astype(np.float32),
         "k": pd.array([None if i % 3 == 0 else i for i in range(n)], dtype="Int32"),
         "s": np.array([f"s{i}" for i in range(n)], dtype=object)},
        index=pd.Index([f"c{i}" for i in range(n)], dtype=object))
    var = pd.DataFrame({"h": rng.random(g) < 0.5},
                       index=pd.Index([f"g{j}" for j in range(g)], dtype=object))
    return obs, var


def _csr(rng, n, g):
    m = sp.random(n, g, density=0.4, format="csr", random_state=1, dtype=np.float32)
    m.data[:] = rng.integers(1, 5, m.nnz)
    return m


def h5ad_seeds(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    n, g = 6, 5
    obs, var = _frames(n, g, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ad.AnnData(_csr(rng, n, g), obs=obs, var=var).write_h5ad(out / "csr.h5ad")
        ad.AnnData(_csr(rng, n, g).toarray(), obs=obs, var=var).write_h5ad(out / "dense.h5ad")
        a = ad.AnnData(_csr(rng, n, g), obs=obs, var=var)
        a.raw = a
        a.layers["counts"] = _csr(rng, n, g)
        a.write_h5ad(out / "raw_layers.h5ad")
        ad.AnnData(_csr(rng, n, g), obs=obs, var=var).write_h5ad(out / "gzip.h5ad",
                                                                  compression="gzip")
        ad.AnnData(_csr(rng, n, g), obs=obs, var=var).write_h5ad(out / "lzf.h5ad",
                                                                  compression="lzf")
        # h5py-written X: chunks of 4, shuffle+deflate+fletcher32, int64 indptr, uint16
        # indices; obs/var by anndata.
        with h5py.File(out / "filters.h5ad", "w") as f:
            ad.io.write_elem(f, "/", ad.AnnData(obs=obs, var=var))
            m = _csr(rng, n, g)
            x = f.create_group("X")
            x.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                            "shape": np.array([n, g])})
            kw = {"chunks": (4,), "maxshape": (None,), "shuffle": True,
                  "compression": "gzip", "fletcher32": True}
            x.create_dataset("data", data=m.data, **kw)
            x.create_dataset("indices", data=m.indices.astype(np.uint16), **kw)
            x.create_dataset("indptr", data=m.indptr.astype(np.int64), **kw)


def struct_seeds(out: Path) -> None:
    """fuzz_h5ad_struct reads its input as choices: any bytes are a valid input."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for i in range(8):
        (out / f"random{i}.bin").write_bytes(rng.integers(0, 256, 256 * (i + 1), np.uint8).tobytes())
    (out / "zeros.bin").write_bytes(bytes(512))
    (out / "ones.bin").write_bytes(bytes([1]) * 512)


def zarr_seeds(out: Path) -> None:
    """Small zipped AnnData zarr stores (tests/python/zarr_fixtures.py's writer)."""
    import numcodecs
    import zarr
    sys.path.insert(0, str(HERE.parent / "tests" / "python"))
    from zarr_fixtures import make_adata, write_store, zip_store
    out.mkdir(parents=True, exist_ok=True)
    small = make_adata(n_obs=24, n_vars=10)
    cases = {
        "v2_blosc": (2, None), "v2_zstd": (2, {"compressor": numcodecs.Zstd(1)}),
        "v2_lz4": (2, {"compressor": numcodecs.LZ4()}),
        "v2_gzip": (2, {"compressor": numcodecs.GZip(1), "chunks": (40,)}),
        "v3_sharded": (3, {"shards": (40,), "chunks": (10,)}),
        "v3_crc32c": (3, {"compressors": [zarr.codecs.Crc32cCodec()]}),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (fmt, kw) in cases.items():
            store = write_store(Path(tmp) / f"{name}.zarr", fmt, kw, adata=small.copy(),
                                dense_chunks=(12, 5))
            zip_store(store, out / f"{name}.zip")
        zip_store(Path(tmp) / "v2_blosc.zarr", out / "v2_deflated.zip", deflate=True)


if __name__ == "__main__":
    zarr_seeds(HERE / "corpus" / "zarr")
    decode_seeds(HERE / "corpus" / "decode")
    h5ad_seeds(HERE / "corpus" / "h5ad")
    struct_seeds(HERE / "corpus" / "h5ad_struct")
    for d in ("decode", "h5ad", "h5ad_struct", "zarr"):
        files = sorted((HERE / "corpus" / d).iterdir())
        print(d, len(files), "files,", sum(f.stat().st_size for f in files), "bytes",
              file=sys.stderr)
