"""cellfeed.Loader: epoch coverage, batch counts, determinism, values against anndata,
promptness of stopping, argument checks."""

from __future__ import annotations

import collections
import gc
import math
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp

import cellfeed
from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import (HERE, SAME_SIZES, expected_dense, expected_obs, fingerprint,
                            read_anndata, x_parts, x_to_dense)

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

OBS = ["cell_type", "n_counts", "score", "pct"]


def rows_of(loader) -> list[np.ndarray]:
    return [np.array(b.rows, dtype=np.int64) for b in loader]


# --------------------------------------------------------------------------------------
# 1. Coverage and batch counts

# (batch_size, block_size, fetch_factor): n = 131 is prime, so nothing divides it.
CONFIGS = [
    (1, 1, 1), (7, 3, 5), (8, 4, 16), (10, 1, 3), (13, 5, 2), (16, 8, 1), (32, 4, 2),
    (64, 4, 16), (64, 16, 1), (130, 2, 1), (131, 7, 3), (200, 4, 4), (3, 50, 2),
    (9, 131, 1), (5, 1000, 7),
]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("bs,b,ff", CONFIGS)
def test_every_cell_once_per_epoch(loader_files, bs, b, ff, shuffle):
    n = loader_files.n_same
    loader = cellfeed.Loader(loader_files.same, batch_size=bs, block_size=b, fetch_factor=ff,
                             shuffle=shuffle, seed=11, drop_last=False)
    batches = rows_of(loader)
    assert len(batches) == math.ceil(n / bs) == len(loader)
    assert all(len(r) == bs for r in batches[:-1])
    assert 1 <= len(batches[-1]) <= bs
    allrows = np.concatenate(batches)
    assert np.array_equal(np.sort(allrows), np.arange(n))
    if shuffle:
        if bs * ff < n:
            assert not np.array_equal(allrows, np.arange(n))
    else:
        assert np.array_equal(allrows, np.arange(n))  # streaming, in file order
    # the batch index counts from 0
    assert [bt.index for bt in loader] == list(range(len(batches)))


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("bs,b,ff", CONFIGS)
def test_drop_last(loader_files, bs, b, ff, shuffle):
    n = loader_files.n_same
    loader = cellfeed.Loader(loader_files.same, batch_size=bs, block_size=b, fetch_factor=ff,
                             shuffle=shuffle, seed=5, drop_last=True)
    batches = rows_of(loader)
    assert len(batches) == n // bs == len(loader)
    assert all(len(r) == bs for r in batches)
    allrows = np.concatenate(batches) if batches else np.zeros(0, np.int64)
    assert len(np.unique(allrows)) == len(allrows) == (n // bs) * bs
    assert allrows.size == 0 or (allrows.min() >= 0 and allrows.max() < n)


def test_single_file_and_small_epochs(loader_files):
    one = [loader_files.same[1]]  # a single cell
    assert [list(r) for r in rows_of(cellfeed.Loader(one, batch_size=4))] == [[0]]
    assert len(cellfeed.Loader(one, batch_size=4, drop_last=True)) == 0
    assert rows_of(cellfeed.Loader(one, batch_size=4, drop_last=True)) == []
    first = [loader_files.same[0]]
    batches = rows_of(cellfeed.Loader(first, batch_size=10, block_size=3, fetch_factor=2))
    assert [len(r) for r in batches] == [10, 10, 10, 7]
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(SAME_SIZES[0]))


def test_zero_cell_files(loader_files):
    assert len(cellfeed.Loader([loader_files.zero], batch_size=4)) == 0
    assert rows_of(cellfeed.Loader([loader_files.zero], batch_size=4)) == []
    paths = [loader_files.same[0], loader_files.zero, loader_files.same[2], loader_files.zero]
    n = SAME_SIZES[0] + SAME_SIZES[2]
    for shuffle in (True, False):
        loader = cellfeed.Loader(paths, batch_size=10, block_size=4, fetch_factor=2,
                                 shuffle=shuffle, obs=OBS)
        batches = rows_of(loader)
        assert len(batches) == len(loader) == math.ceil(n / 10)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(n))


@pytest.mark.parametrize("remainder", ["pad", "drop"])
def test_more_ranks_than_cells(loader_files, remainder):
    one = [loader_files.same[1]]  # a single cell, 3 ranks
    got = [rows_of(cellfeed.Loader(one, batch_size=2, rank=r, world_size=3,
                                   remainder=remainder)) for r in range(3)]
    if remainder == "pad":
        assert [[list(b) for b in g] for g in got] == [[[0]]] * 3
    else:
        assert got == [[], [], []]


@pytest.mark.parametrize("bs,b,ff", [(8, 4, 2), (4, 3, 3), (6, 2, 3), (16, 8, 1), (5, 5, 2)])
def test_blocks_stay_in_files_and_in_one_fetch(loader_files, bs, b, ff):
    """Full blocks (b consecutive rows of one file, starting at a multiple of b in that
    file) are read whole by one fetch when the fetch size is a multiple of b."""
    assert (bs * ff) % b == 0
    offsets = np.cumsum((0,) + SAME_SIZES)
    for seed in range(3):
        loader = cellfeed.Loader(loader_files.same, batch_size=bs, block_size=b,
                                 fetch_factor=ff, seed=seed)
        batches = rows_of(loader)
        fetch_of = {}
        for i, rows in enumerate(batches):
            for r in rows:
                fetch_of[int(r)] = i // ff
        for f, size in enumerate(SAME_SIZES):
            for start in range(0, size - size % b, b):
                block = range(offsets[f] + start, offsets[f] + start + b)
                assert len({fetch_of[r] for r in block}) == 1, (seed, f, start)


@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("remainder", ["pad", "drop"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_explicit_ranks_split_the_epoch(loader_files, world, remainder, shuffle):
    n = loader_files.n_same
    per_rank, lens = [], []
    for rank in range(world):
        loader = cellfeed.Loader(loader_files.same, batch_size=6, block_size=4, fetch_factor=3,
                                 seed=2, shuffle=shuffle, rank=rank, world_size=world,
                                 remainder=remainder)
        batches = rows_of(loader)
        lens.append((len(loader), len(batches)))
        per_rank.append(np.concatenate(batches))
    assert len({x for pair in lens for x in pair}) == 1  # same count on every rank
    slice_len = -(-n // world) if remainder == "pad" else n // world
    assert all(len(r) == slice_len for r in per_rank)
    mult = collections.Counter(int(c) for r in per_rank for c in r)
    if remainder == "pad":
        assert set(mult) == set(range(n))
        assert sum(v - 1 for v in mult.values()) == world * slice_len - n < world
    else:
        assert max(mult.values()) == 1 and n - len(mult) < world


# --------------------------------------------------------------------------------------
# 2. Determinism

def epoch_fingerprints(loader):
    return [fingerprint(b) for b in loader]


@pytest.mark.parametrize("output", ["scipy", "numpy"])
def test_same_seed_same_bytes_whatever_the_threads(loader_files, output):
    kw = dict(batch_size=9, block_size=3, fetch_factor=4, seed=123, obs=OBS, output=output)
    runs = {}
    for threads in (1, 2, 4):
        loader = cellfeed.Loader(loader_files.same, threads=threads, **kw)
        loader.set_epoch(2)
        runs[threads] = epoch_fingerprints(loader)
        # iterating the same epoch again gives the same batches (no hidden re-seeding)
        assert epoch_fingerprints(loader) == runs[threads]
    assert runs[1] == runs[2] == runs[4]
    assert len(runs[1]) == math.ceil(loader_files.n_same / 9)


def test_epoch_and_seed_change_the_order(loader_files):
    kw = dict(batch_size=9, block_size=3, fetch_factor=4)
    loader = cellfeed.Loader(loader_files.same, seed=1, **kw)
    e0 = [r.tolist() for r in rows_of(loader)]
    loader.set_epoch(1)
    e1 = [r.tolist() for r in rows_of(loader)]
    loader.set_epoch(0)
    assert [r.tolist() for r in rows_of(loader)] == e0
    other = [r.tolist() for r in rows_of(cellfeed.Loader(loader_files.same, seed=2, **kw))]
    assert e0 != e1 and e0 != other and e1 != other
    for e in (e1, other):  # still every cell once
        assert sorted(c for b in e for c in b) == list(range(loader_files.n_same))
    assert loader.epoch == 0
    # a fresh loader with the same seed and epoch reproduces the order
    again = cellfeed.Loader(loader_files.same, seed=1, **kw)
    again.set_epoch(1)
    assert [r.tolist() for r in rows_of(again)] == e1


# --------------------------------------------------------------------------------------
# 3. Values against anndata

OUTPUTS = ["scipy", "numpy", "torch", "torch-dense"]
JOINS = ["same", "inner", "outer", "list", "vocab_txt", "vocab_tsv"]


def _join_case(files, join):
    if join == "same":
        return files.same, "inner"
    arg = {"inner": "inner", "outer": "outer", "list": files.gene_list,
           "vocab_txt": str(files.vocab_txt), "vocab_tsv": files.vocab_tsv}[join]
    return files.diff, arg


@pytest.fixture(scope="module")
def anndatas(loader_files):
    return {"same": read_anndata(loader_files.same), "diff": read_anndata(loader_files.diff)}


def test_var_names_of_joins(loader_files, anndatas):
    names = [list(a.var_names) for a in anndatas["diff"]]
    common = set.intersection(*map(set, names))
    inner = [g for g in names[0] if g in common]
    outer = []
    for ns in names:
        outer += [g for g in ns if g not in outer]
    assert list(cellfeed.Loader(loader_files.diff, join="inner").var_names) == inner
    assert list(cellfeed.Loader(loader_files.diff, join="outer").var_names) == outer
    assert len(outer) > len(inner) > 0
    for join in ("list", "vocab_txt", "vocab_tsv"):
        paths, arg = _join_case(loader_files, join)
        assert list(cellfeed.Loader(paths, join=arg).var_names) == loader_files.gene_list
    assert cellfeed.read_gene_list(loader_files.vocab_tsv, column="symbol") == \
        [f"sym_{g}" for g in loader_files.gene_list]
    same = cellfeed.Loader(loader_files.same)
    assert list(same.var_names) == list(anndatas["same"][0].var_names)


@pytest.mark.parametrize("join", JOINS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_batches_equal_anndata(loader_files, anndatas, output, join):
    if output.startswith("torch") and torch is None:
        pytest.skip("torch is not installed")
    paths, arg = _join_case(loader_files, join)
    adatas = anndatas["same" if join == "same" else "diff"]
    loader = cellfeed.Loader(paths, batch_size=7, block_size=3, fetch_factor=3, seed=4,
                             join=arg, obs=OBS, output=output)
    var_names = list(loader.var_names)
    full = expected_dense(adatas, var_names)
    n = full.shape[0]
    labels = {c: expected_obs(adatas, c) for c in OBS}
    cats = list(loader.collection.obs(["cell_type"])["cell_type"].cat.categories)
    seen = []
    for batch in loader:
        rows = np.asarray(batch.rows)
        assert rows.dtype == np.int64
        X = batch.X
        if output == "scipy":
            assert sp.issparse(X) and X.format == "csr"
            # int32 index arrays, so scipy keeps the engine's arrays instead of copying them.
            assert X.indptr.dtype == np.int32 and X.indices.dtype == np.int32
            assert not any(a.flags.owndata for a in (X.indptr, X.indices, X.data))
        elif output == "numpy":
            assert isinstance(X, np.ndarray) and X.ndim == 2
        elif output == "torch":
            assert isinstance(X, torch.Tensor) and X.layout == torch.sparse_csr
            assert X.crow_indices().dtype == torch.int32 and X.col_indices().dtype == torch.int32
        else:
            assert isinstance(X, torch.Tensor) and X.layout == torch.strided
        dense = x_to_dense(X)
        assert dense.dtype == np.float32 and dense.shape == (len(rows), len(var_names))
        assert np.array_equal(dense, full[rows]), f"X differs for rows {rows}"
        assert set(batch.obs) == set(OBS)
        obs = {k: (v.numpy() if torch is not None and isinstance(v, torch.Tensor) else v)
               for k, v in batch.obs.items()}
        codes = np.asarray(obs["cell_type"])
        assert codes.dtype == np.int32
        got = [None if c < 0 else cats[c] for c in codes]
        assert got == list(labels["cell_type"][rows])
        for col, dtype in (("n_counts", np.int32), ("score", np.float64), ("pct", np.float32)):
            v = np.asarray(obs[col])
            assert v.dtype == dtype, col
            assert np.array_equal(v, np.asarray(labels[col][rows].tolist(), dtype=dtype)), col
        seen.append(rows)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(n))


def test_absent_genes_are_zero(loader_files):
    loader = cellfeed.Loader(loader_files.diff, join=loader_files.gene_list, output="numpy",
                             batch_size=50)
    col = list(loader.var_names).index("ABSENT")
    assert all(not b.X[:, col].any() for b in loader)
    outer = cellfeed.Loader(loader_files.diff, join="outer", output="numpy", batch_size=200,
                            shuffle=False)
    X = next(iter(outer)).X
    y1 = list(outer.var_names).index("Y1")  # only in the third file
    assert not X[:45 + 33, y1].any() and X[45 + 33:, y1].any()


# --------------------------------------------------------------------------------------
# 7. Stopping early

PROMPT_S = 5.0


def _medium_loader(files, **kw):
    kw = dict(dict(batch_size=32, block_size=4, fetch_factor=32, prefetch=3, threads=2), **kw)
    return cellfeed.Loader([files.medium], **kw)


def _timed(fn):
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


def test_break_early_is_prompt(loader_files):
    loader = _medium_loader(loader_files)
    for _ in range(3):
        def take_one():
            for batch in loader:
                return batch.rows.copy()
        rows, dt = _timed(take_one)
        assert len(rows) == 32 and dt < PROMPT_S
    # a full epoch afterwards still covers every cell once
    allrows = np.concatenate(rows_of(loader))
    assert np.array_equal(np.sort(allrows), np.arange(6000))


def test_delete_mid_epoch_is_prompt(loader_files):
    loader = _medium_loader(loader_files)
    it = iter(loader)
    next(it)
    time.sleep(0.2)  # let the producer fill its queue and block on it

    def drop():
        nonlocal it, loader
        del it, loader
        gc.collect()
    _, dt = _timed(drop)
    assert dt < PROMPT_S
    # a new loader works
    assert sum(len(r) for r in rows_of(_medium_loader(loader_files, batch_size=500))) == 6000


def test_new_iteration_while_one_is_in_progress(loader_files):
    kw = dict(batch_size=8, block_size=4, fetch_factor=2, seed=9)
    expected = epoch_fingerprints(cellfeed.Loader(loader_files.same, **kw))
    loader = cellfeed.Loader(loader_files.same, **kw)
    it1 = iter(loader)
    first = next(it1)
    assert fingerprint(first) == expected[0]
    it2, dt = _timed(lambda: iter(loader))
    got = [fingerprint(next(it2)) for _ in range(3)]
    assert dt < PROMPT_S
    # the older iteration goes away while the newer one is running
    del first
    it1.close()
    del it1
    gc.collect()
    got += [fingerprint(b) for b in it2]
    assert got == expected
    # and a later iteration still gives the whole epoch
    assert epoch_fingerprints(loader) == expected


def test_two_iterations_side_by_side(loader_files):
    """zip(loader, loader): two live iterations of one loader, each a whole epoch."""
    kw = dict(batch_size=8, block_size=4, fetch_factor=2, seed=9)
    expected = epoch_fingerprints(cellfeed.Loader(loader_files.same, **kw))
    loader = cellfeed.Loader(loader_files.same, **kw)
    pairs = [(fingerprint(a), fingerprint(b)) for a, b in zip(loader, loader)]
    assert [a for a, _ in pairs] == expected
    assert [b for _, b in pairs] == expected


def test_iteration_from_another_thread_stops(loader_files):
    """A consumer thread that stops mid-epoch leaves nothing blocked."""
    loader = _medium_loader(loader_files)
    done = threading.Event()

    def consume():
        for i, _ in enumerate(loader):
            if i == 2:
                break
        done.set()
    t = threading.Thread(target=consume)
    t.start()
    t.join(timeout=30)
    assert done.is_set() and not t.is_alive()


def test_interpreter_exits_with_a_running_producer(loader_files):
    proc = subprocess.run([sys.executable, str(HERE / "loader_helpers.py"), "abandon",
                           str(loader_files.medium)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "took one batch" in proc.stdout


# --------------------------------------------------------------------------------------
# 8. Bad arguments

@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-3), "batch_size"),
    (dict(block_size=0), "block_size"),
    (dict(fetch_factor=0), "fetch_factor"),
    (dict(output="tensorflow"), "output"),
    (dict(remainder="repeat"), "remainder"),
    (dict(rank=2, world_size=2), "rank"),
    (dict(rank=5, world_size=2), "rank"),
    (dict(rank=-1, world_size=2), "rank"),
    (dict(rank=0, world_size=0), "world_size"),
    (dict(prefetch=0), "prefetch"),
])
def test_bad_arguments(loader_files, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cellfeed.Loader(loader_files.same, **kwargs)


def test_unknown_obs_column_lists_the_columns(loader_files):
    with pytest.raises(ValueError) as err:
        cellfeed.Loader(loader_files.same, obs=["cell_type", "no_such_column"])
    msg = str(err.value)
    assert "no_such_column" in msg
    for col in OBS:
        assert col in msg
    with pytest.raises(ValueError, match="no_such_column"):
        cellfeed.Loader(loader_files.same, obs="no_such_column")


def test_scipy_batches_are_valid_csr_matrices(loader_files, anndatas):
    """Batches are built without scipy's constructor checks (docs/PYTORCH.md): scipy's own
    full format check passes, and scipy operations agree with anndata's X."""
    loader = cellfeed.Loader(loader_files.same, batch_size=9, block_size=3, fetch_factor=2,
                             output="scipy")
    full = expected_dense(anndatas["same"], loader.var_names)
    for b in loader:
        X = b.X
        assert type(X) is sp.csr_matrix and X.format == "csr"
        X.check_format(full_check=True)
        rows = np.asarray(b.rows)
        ref = sp.csr_matrix(full[rows])
        assert X.shape == ref.shape and X.nnz == ref.nnz
        v = np.arange(X.shape[1], dtype=np.float32)
        np.testing.assert_allclose(X @ v, ref @ v, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(X.sum(axis=0)), np.asarray(ref.sum(axis=0)))
        np.testing.assert_array_equal(X.tocsc().toarray(), full[rows])
        np.testing.assert_array_equal(X[1:3].toarray(), full[rows][1:3])
        import pickle
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(X)).toarray(), full[rows])
