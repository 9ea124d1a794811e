"""Loader(block_size="chunk"): one block per storage chunk of X.

The files are written by anndata, then X's data/indices rewritten by h5py with small
explicit chunks (gzip, and a file whose indices chunks are shorter than its data's),
so the expected blocks can be derived here from h5py's view of chunks and indptr."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import cellfeed
from loader_helpers import epoch_rows_and_x

N_GENES = 40


def _write(path, n, rng, data_chunk, indices_chunk, compression="gzip"):
    import anndata as ad
    import h5py
    import pandas as pd

    dense = (rng.random((n, N_GENES)) < rng.uniform(0.05, 0.6, (n, 1))) * rng.integers(1, 9, (n, N_GENES))
    X = sp.csr_matrix(dense.astype(np.float32))
    a = ad.AnnData(X, obs=pd.DataFrame(index=[f"{path.stem}_{i}" for i in range(n)]),
                   var=pd.DataFrame(index=[f"g{j}" for j in range(N_GENES)]))
    a.write_h5ad(path)
    with h5py.File(path, "r+") as f:
        for name, values, chunk in (("data", X.data, data_chunk), ("indices", X.indices, indices_chunk)):
            del f["X"][name]
            kw = {"chunks": (chunk,)} if chunk else {}
            if chunk and compression:
                kw["compression"] = compression
            f["X"].create_dataset(name, data=values, **kw)
    return path, X


def expected_starts(paths) -> np.ndarray:
    """First global row of each block: rows grouped by the chunk their values start in."""
    import h5py

    starts, offset = [], 0
    for p in paths:
        with h5py.File(p, "r") as f:
            g = f["X"]
            indptr = g["indptr"][:]
            per = max(g[k].chunks[0] if g[k].chunks else 65536 for k in ("data", "indices"))
            n = len(indptr) - 1
            chunk_of = indptr[:-1] // per
            local = np.flatnonzero(np.r_[True, chunk_of[1:] != chunk_of[:-1]])
            starts.append(local + offset)
            offset += n
    return np.concatenate(starts)


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("chunked")
    specs = [(450, 97, 97, "gzip"), (301, 120, 50, "gzip"), (233, 64, 64, None), (5, 16, 16, "gzip")]
    files, mats = [], []
    for i, (n, dc, ic, comp) in enumerate(specs):
        p, X = _write(root / f"c{i}.h5ad", n, rng, dc, ic, comp)
        files.append(str(p))
        mats.append(X)
    return files, sp.vstack(mats).tocsr()


@pytest.mark.parametrize("bs,ff", [(1, 1), (16, 4), (64, 8), (7, 3)])
def test_every_cell_once_with_its_values(chunked, bs, ff):
    files, X = chunked
    loader = cellfeed.Loader(files, batch_size=bs, block_size="chunk", fetch_factor=ff, seed=4)
    rows, got = epoch_rows_and_x(loader)
    assert np.array_equal(np.sort(rows), np.arange(X.shape[0]))
    assert np.array_equal(got, X[rows].toarray())


def test_fetches_hold_whole_chunk_blocks(chunked):
    files, X = chunked
    starts = expected_starts(files)
    block_of = np.searchsorted(starts, np.arange(X.shape[0]), side="right") - 1
    sizes = np.diff(np.r_[starts, X.shape[0]])
    bs, ff = 16, 4
    loader = cellfeed.Loader(files, batch_size=bs, block_size="chunk", fetch_factor=ff, seed=9)
    rows = np.concatenate([np.asarray(b.rows) for b in loader])
    fetch = bs * ff
    partial_total = 0
    for k in range(0, len(rows), fetch):
        ids, counts = np.unique(block_of[rows[k:k + fetch]], return_counts=True)
        partial = int(np.sum(counts != sizes[ids]))
        assert partial <= 2, f"fetch {k // fetch} cuts {partial} blocks"  # only at its two ends
        partial_total += partial
    # Blocks are whole in all but the fetch edges, and many blocks span several rows.
    assert partial_total <= 2 * (len(rows) // fetch + 1)
    assert np.mean(sizes) > 3


def test_block_order_is_shuffled_and_seeded(chunked):
    files, _ = chunked

    def order(seed, epoch=0):
        loader = cellfeed.Loader(files, batch_size=32, block_size="chunk", fetch_factor=2, seed=seed)
        loader.set_epoch(epoch)
        return np.concatenate([np.asarray(b.rows) for b in loader])

    assert np.array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))
    assert not np.array_equal(order(1), order(1, epoch=1))


def test_sharded_ranks_cover_the_collection(chunked):
    files, X = chunked
    seen = []
    lengths = set()
    for r in range(3):
        loader = cellfeed.Loader(files, batch_size=8, block_size="chunk", fetch_factor=2, seed=2,
                                 rank=r, world_size=3)
        lengths.add(len(loader))
        seen.append(np.concatenate([np.asarray(b.rows) for b in loader]))
    assert len(lengths) == 1
    allrows = np.concatenate(seen)
    assert set(allrows.tolist()) == set(range(X.shape[0]))
    assert len(allrows) - X.shape[0] == (3 - X.shape[0] % 3) % 3  # padding only


def test_state_dict_resumes_with_chunk_blocks(chunked):
    files, _ = chunked
    a = cellfeed.Loader(files, batch_size=16, block_size="chunk", fetch_factor=2, seed=6)
    full = [np.asarray(b.rows) for b in a]
    it = iter(a)
    for _ in range(5):
        next(it)
    state = a.state_dict()
    b = cellfeed.Loader(files, batch_size=16, block_size="chunk", fetch_factor=2, seed=0)
    b.load_state_dict(state)
    rest = [np.asarray(x.rows) for x in b]
    assert all(np.array_equal(x, y) for x, y in zip(rest, full[5:])) and len(rest) == len(full) - 5


def test_bad_block_size_names_the_choices(chunked):
    files, _ = chunked
    with pytest.raises(ValueError, match="'chunk'"):
        cellfeed.Loader(files, block_size="chunks")
