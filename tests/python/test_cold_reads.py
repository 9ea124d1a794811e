"""Reads from a cold page cache: the files are synced and evicted (posix_fadvise
DONTNEED, checked with mincore), so the loader's reads find no page cached and take the
read-ahead path (every byte range of a fetch advised to the kernel before it is read).
What comes out must equal anndata's rows, as warm reads do."""

from __future__ import annotations

import ctypes
import mmap
import os

import numpy as np
import pytest
import scipy.sparse as sp

import cellfeed
from loader_helpers import epoch_rows_and_x

_libc = ctypes.CDLL(None, use_errno=True)


def resident_pages(path) -> int:
    """Pages of the file in the page cache (mincore over a private mapping, which
    starts no I/O)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        addr = ctypes.addressof(ctypes.c_char.from_buffer(mm))
        if _libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        return int(sum(v & 1 for v in vec))
    finally:
        mm.close()


def evict(paths) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    left = {p: resident_pages(p) for p in paths}
    if any(left.values()):
        pytest.skip(f"this file system keeps pages cached after DONTNEED: {left}")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(11)
    root = tmp_path_factory.mktemp("cold")
    paths, mats = [], []
    for i, comp in enumerate(["gzip", None, "gzip"]):
        n, g = 1500 + 400 * i, 400
        dense = (rng.random((n, g)) < 0.2) * rng.integers(1, 30, (n, g))
        X = sp.csr_matrix(dense.astype(np.float32))
        a = ad.AnnData(X, obs=pd.DataFrame(index=[f"f{i}_{k}" for k in range(n)]),
                       var=pd.DataFrame(index=[f"g{j}" for j in range(g)]))
        p = root / f"cold{i}.h5ad"
        a.write_h5ad(p, compression=comp)
        paths.append(str(p))
        mats.append(X)
    return paths, sp.vstack(mats).tocsr()


@pytest.mark.parametrize("block_size,fetch_factor", [(1, 4), (4, 8), ("chunk", 2)])
def test_cold_loader_matches_anndata(files, block_size, fetch_factor):
    paths, X = files
    evict(paths)
    loader = cellfeed.Loader(paths, batch_size=32, block_size=block_size,
                             fetch_factor=fetch_factor, seed=5)
    rows, got = epoch_rows_and_x(loader)
    assert np.array_equal(np.sort(rows), np.arange(X.shape[0]))
    assert np.array_equal(got, X[rows].toarray())
    assert all(resident_pages(p) > 0 for p in paths)  # the reads did go to the files


def test_cold_random_rows_match_anndata(files):
    paths, X = files
    evict(paths)
    rows = np.random.default_rng(2).permutation(X.shape[0])[:700]
    got = cellfeed.open(paths).read(rows)
    assert np.array_equal(got.toarray(), X[rows].toarray())
