"""The naive loader a user would write with plain h5py.

Each epoch draws a random permutation of all cells of all files; every batch is 64 of
them, sorted; per file, the batch's indptr entries are read with one h5py fancy-index
read, then data and indices are read row by row (two slice reads per cell) and joined
into a scipy CSR matrix. Plate labels come from each file's obs/plate (categorical codes
and categories, read once at setup). Full random sampling, drop_last; block size, fetch
factor and worker count are ignored.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import scipy.sparse as sp


def effective_config(config: dict) -> dict:
    cfg = dict(config)
    cfg.update(block_size=1, fetch_factor=1, num_workers=0, sampling="random", drop_last=True)
    return cfg


def _read_labels(f: h5py.File, column: str) -> np.ndarray:
    node = f["obs"][column]
    if isinstance(node, h5py.Group):  # categorical: codes + categories
        cats = node["categories"].asstr()[...] if node["categories"].dtype.kind == "O" \
            else node["categories"][...]
        return np.asarray(cats, dtype=object)[node["codes"][...]]
    return node.asstr()[...] if node.dtype.kind == "O" else node[...]


class NaiveH5:
    def __init__(self, paths):
        self.files = [h5py.File(os.fspath(p), "r") for p in paths]
        self.X = [f["X"] for f in self.files]
        self.n_vars = int(self.X[0].attrs["shape"][1])
        sizes = [int(x.attrs["shape"][0]) for x in self.X]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.plates = np.concatenate([_read_labels(f, "plate") for f in self.files])

    @property
    def n_obs(self) -> int:
        return int(self.offsets[-1])

    def read(self, rows: np.ndarray) -> sp.csr_matrix:
        """rows: sorted global row ids."""
        datas, idxs, lengths = [], [], []
        fid = np.searchsorted(self.offsets, rows, side="right") - 1
        for k in np.unique(fid):
            local = rows[fid == k] - self.offsets[k]
            X = self.X[k]
            want = np.unique(np.concatenate([local, local + 1]))
            ip = X["indptr"][want]  # h5py fancy read: increasing, no duplicates
            starts = ip[np.searchsorted(want, local)]
            ends = ip[np.searchsorted(want, local + 1)]
            data, indices = X["data"], X["indices"]
            for s, e in zip(starts.tolist(), ends.tolist()):
                datas.append(data[s:e])
                idxs.append(indices[s:e])
                lengths.append(e - s)
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        return sp.csr_matrix((np.concatenate(datas).astype(np.float32, copy=False),
                              np.concatenate(idxs), indptr), shape=(len(rows), self.n_vars))


def make_iterator(paths, config: dict):
    cfg = effective_config(config)
    src = NaiveH5(paths)
    m = int(cfg["batch_size"])

    def epoch_fn(epoch: int):
        rng = np.random.default_rng([int(cfg["seed"]), epoch])
        perm = rng.permutation(src.n_obs)
        for i in range(0, src.n_obs - m + 1, m):
            rows = np.sort(perm[i:i + m])
            yield src.read(rows), src.plates[rows], rows

    return epoch_fn
