"""cellfeed.open(): one or many .h5ad files read as one row-concatenated AnnData."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _cellfeed
from ._columns import to_pandas


def _as_paths(path_or_paths) -> list[str]:
    if isinstance(path_or_paths, (str, os.PathLike)):
        return [os.fspath(path_or_paths)]
    paths = [os.fspath(p) for p in path_or_paths]
    if not paths:
        raise ValueError("cellfeed.open: no files given")
    return paths


def _as_rows(rows) -> np.ndarray:
    arr = np.asarray(rows)
    if arr.ndim != 1:
        raise ValueError(f"rows must be a 1-D sequence of integers, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"rows must be integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


class Collection:
    """Files opened with :func:`cellfeed.open`. Rows are cells, in file order."""

    def __init__(self, engine: _cellfeed.Collection):
        self._c = engine

    @property
    def n_obs(self) -> int:
        return self._c.n_obs

    @property
    def n_vars(self) -> int:
        return self._c.n_vars

    @property
    def shape(self) -> tuple[int, int]:
        return (self._c.n_obs, self._c.n_vars)

    @property
    def files(self) -> list[str]:
        return list(self._c.files)

    @property
    def file_offsets(self) -> np.ndarray:
        """First global row of each file, then n_obs."""
        return np.asarray(self._c.file_offsets, dtype=np.int64)

    @property
    def var_names(self) -> pd.Index:
        return pd.Index(self._c.var_names)

    @property
    def obs_columns(self) -> list[str]:
        return [name for name, _, _ in self._c.obs_columns]

    @property
    def var_columns(self) -> list[str]:
        return [name for name, _, _ in self._c.var_columns]

    @property
    def threads(self) -> int:
        return self._c.threads

    def summaries(self) -> list[dict]:
        """Per file: shape, encoding, dtypes, filters, chunking, columns."""
        return self._c.summaries()

    def read(self, rows) -> sp.csr_matrix:
        """The given rows (any order, duplicates allowed) as a float32 csr_matrix."""
        data, indices, indptr, shape = self._c.read(_as_rows(rows))
        return sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)

    def obs_names(self, rows=None) -> pd.Index:
        return pd.Index(self._c.obs_names(None if rows is None else _as_rows(rows)))

    def obs(self, columns: Sequence[str] | str | None = None, rows=None) -> pd.DataFrame:
        """obs columns (all when None) for the given rows (all when None), indexed by obs_names."""
        if columns is None:
            columns = self.obs_columns
        elif isinstance(columns, str):
            columns = [columns]
        r = None if rows is None else _as_rows(rows)
        data = {name: to_pandas(self._c.obs_column(name, r)) for name in columns}
        return pd.DataFrame(data, index=self.obs_names(r), columns=list(columns))

    def var(self, columns: Iterable[str] | None = None) -> pd.DataFrame:
        if columns is None:
            columns = self.var_columns
        columns = list(columns)
        data = {name: to_pandas(self._c.var_column(name)) for name in columns}
        return pd.DataFrame(data, index=self.var_names, columns=columns)

    def __len__(self) -> int:
        return self.n_obs

    def __repr__(self) -> str:
        return f"cellfeed.Collection({self.n_obs} cells x {self.n_vars} genes, {len(self.files)} file(s))"


def open(path_or_paths, layer: str | None = None, threads: int | None = None) -> Collection:  # noqa: A001
    """Open one .h5ad file or a list of them as one row-concatenated collection.

    layer: None reads X; "raw" reads raw/X (with raw/var); any other name reads layers/<name>.
    threads: worker threads for decoding (default: one per core).
    """
    engine = _cellfeed.Collection.open(_as_paths(path_or_paths), layer or "", threads or 0)
    return Collection(engine)
