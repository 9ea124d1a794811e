"""cellfeed.open(): one or many AnnData files (.h5ad, zarr stores) read as one row-concatenated
AnnData.

Examples
--------
>>> import cellfeed
>>> col = cellfeed.open("data/real/pbmc68k_reduced_scanpy1.h5ad")
>>> col
cellfeed.Collection(700 cells x 765 genes, 1 file(s))
"""

from __future__ import annotations

import builtins
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


def _reopen(paths, layer, threads, join, values="finite", verify_whole_chunks=False,
            isolate=None, open_timeout=None):
    return open(paths, layer=layer, threads=threads, join=join, values=values,
                verify_whole_chunks=verify_whole_chunks, isolate=isolate,
                open_timeout=open_timeout)


class Collection:
    """Files opened with :func:`cellfeed.open`: their cells as the rows of one matrix.

    Rows are cells, file after file in the order given; columns are the joined gene space
    (``var_names``). Reads run on the engine's threads with the GIL released. A collection
    pickles by re-opening its files with the same settings (DataLoader workers do this).

    Parameters
    ----------
    engine : object
        The C++ engine's collection (an internal type). Not built by hand:
        :func:`cellfeed.open` makes it.

    See Also
    --------
    cellfeed.open : opens files as a collection.
    cellfeed.Loader : minibatches of a collection's cells.

    Examples
    --------
    >>> import cellfeed
    >>> col = cellfeed.open("data/pbmc68k/10x_pbmc68k_reduced.zarr.zip", layer="counts")
    >>> col.shape
    (700, 765)
    >>> col.obs(["bulk_labels", "n_counts"], rows=[0, 1])
                         bulk_labels  n_counts
    AAAGCCTGGCTAAC-1  CD14+ Monocyte    2557.0
    AAATTCGATGCACA-1       Dendritic    2695.0
    >>> m = col.read([5, 3, 3])          # any order, repeats allowed
    >>> m.shape, m.dtype
    ((3, 765), dtype('float32'))
    >>> m.sum(axis=1).A1.tolist()
    [876.0, 389.0, 389.0]
    """

    def __init__(self, engine: _cellfeed.Collection):
        self._c = engine
        self._open_args = None

    def __reduce__(self):
        # Engines hold threads and file handles: a pickled collection re-opens its files.
        if self._open_args is None:
            raise TypeError("this Collection cannot be pickled")
        return (_reopen, self._open_args)

    @property
    def n_obs(self) -> int:
        """Number of cells (rows) over all files."""
        return self._c.n_obs

    @property
    def n_vars(self) -> int:
        """Number of genes (columns) of the joined gene space."""
        return self._c.n_vars

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_obs, n_vars)``."""
        return (self._c.n_obs, self._c.n_vars)

    @property
    def files(self) -> list[str]:
        """The paths of the files, in row order."""
        return list(self._c.files)

    @property
    def file_offsets(self) -> np.ndarray:
        """First global row of each file, then ``n_obs`` (int64, length ``len(files) + 1``)."""
        return np.asarray(self._c.file_offsets, dtype=np.int64)

    @property
    def var_names(self) -> pd.Index:
        """Gene names of the joined gene space, in column order."""
        return pd.Index(self._c.var_names)

    @property
    def obs_columns(self) -> list[str]:
        """Names of the obs columns every file has."""
        return [name for name, _, _ in self._c.obs_columns]

    @property
    def var_columns(self) -> list[str]:
        """Names of the var columns (of the first file's var)."""
        return [name for name, _, _ in self._c.var_columns]

    @property
    def threads(self) -> int:
        """Engine threads that decode this collection's reads."""
        return self._c.threads

    def summaries(self) -> list[dict]:
        """What each file holds, from its metadata (what ``cellfeed inspect`` prints).

        Returns
        -------
        list of dict
            One per file: ``path``, ``n_obs``, ``n_vars``, ``nnz``, ``element`` (the matrix
            read), ``encoding``, ``arrays`` (dtype, filters and chunking of each stored
            array), ``obs_columns`` and ``var_columns``.
        """
        return self._c.summaries()

    def read(self, rows) -> sp.csr_matrix:
        """Read cells by global row id.

        Parameters
        ----------
        rows : sequence of int
            Global row ids (``0 <= row < n_obs``), in any order, repeats allowed.

        Returns
        -------
        scipy.sparse.csr_matrix
            float32, one row per id in the order given, ``n_vars`` columns.

        Raises
        ------
        ValueError
            A row out of range, or a stored value the collection's ``values=`` check
            rejects (the message names the file, element and row).
        """
        data, indices, indptr, shape = self._c.read(_as_rows(rows))
        return sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)

    @property
    def obsm_keys(self) -> dict:
        """obsm entries every file holds as a readable matrix with one width: key ->
        {"shape": (n_obs, n_cols), "dtype": stored dtype, "encoding": "array" | "csr_matrix"
        | "mixed"}, sorted by key."""
        return {k["key"]: {"shape": (self.n_obs, k["n_cols"]), "dtype": k["dtype"],
                           "encoding": k["encoding"]} for k in self._c.obsm_keys}

    def read_obsm(self, key: str, rows):
        """Rows of obsm[key] (any order, duplicates allowed), in that order, as float32.

        Parameters
        ----------
        key : str
            An obsm entry every file holds with one width (see :attr:`obsm_keys`), e.g.
            ``"X_pca"``, ``"X_hvg"``, ``"X_state"``.
        rows : sequence of int
            Global row ids.

        Returns
        -------
        numpy.ndarray or scipy.sparse.csr_matrix
            ``[len(rows), width]``: a csr_matrix when every file stores the entry as
            csr_matrix, else a dense array.

        Raises
        ------
        ValueError
            A file lacks the key (naming the file and its keys), widths differ between
            files, or the entry is not a 2-D matrix (a dataframe, csc, strings).

        Examples
        --------
        >>> import cellfeed
        >>> col = cellfeed.open("data/real/pbmc68k_reduced_scanpy1.h5ad")
        >>> col.obsm_keys["X_pca"]["shape"]
        (700, 50)
        >>> col.read_obsm("X_pca", [3, 0, 3]).shape
        (3, 50)
        """
        out = self._c.read_obsm(key, _as_rows(rows))
        if out[0] == "dense":
            return out[1].reshape(out[2])
        _, data, indices, indptr, shape = out
        return sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)

    def obs_names(self, rows=None) -> pd.Index:
        """Cell names (each file's obs index).

        Parameters
        ----------
        rows : sequence of int, optional
            Global row ids; all rows when None.

        Returns
        -------
        pandas.Index
        """
        return pd.Index(self._c.obs_names(None if rows is None else _as_rows(rows)))

    def obs(self, columns: Sequence[str] | str | None = None, rows=None) -> pd.DataFrame:
        """obs columns of the given cells.

        Parameters
        ----------
        columns : str or sequence of str, optional
            Column names; every column in ``obs_columns`` when None.
        rows : sequence of int, optional
            Global row ids; all rows when None.

        Returns
        -------
        pandas.DataFrame
            Indexed by obs names; categorical columns as :class:`pandas.Categorical` with
            the categories of all files merged.
        """
        if columns is None:
            columns = self.obs_columns
        elif isinstance(columns, str):
            columns = [columns]
        r = None if rows is None else _as_rows(rows)
        data = {name: to_pandas(self._c.obs_column(name, r)) for name in columns}
        return pd.DataFrame(data, index=self.obs_names(r), columns=list(columns))

    def var(self, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """var columns of the joined gene space.

        Parameters
        ----------
        columns : iterable of str, optional
            Column names; every column in ``var_columns`` when None.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``var_names``.
        """
        if columns is None:
            columns = self.var_columns
        columns = list(columns)
        data = {name: to_pandas(self._c.var_column(name)) for name in columns}
        return pd.DataFrame(data, index=self.var_names, columns=columns)

    def __len__(self) -> int:
        return self.n_obs

    def __repr__(self) -> str:
        return f"cellfeed.Collection({self.n_obs} cells x {self.n_vars} genes, {len(self.files)} file(s))"


def read_gene_list(path, column: str | int | None = None) -> list[str]:
    """Genes from a vocabulary file: one gene per line, or one column of a TSV/CSV.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Tab-separated if its first line has a tab, comma-separated if it ends
        in ``.csv``, else one gene per line.
    column : str or int, optional
        A header name, or a 0-based column index; by default the first column. A first
        line whose chosen field is ``gene``, ``genes``, ``gene_name``, ``gene_id``,
        ``symbol``, ``ensembl_id`` or ``token`` is taken as a header.

    Returns
    -------
    list of str
        The genes, in file order.

    Raises
    ------
    ValueError
        The file is empty, has no such column, or a line has too few columns.

    Examples
    --------
    >>> import cellfeed
    >>> genes = cellfeed.read_gene_list(cellfeed.vocab.SCFOUNDATION_FILE, column="gene_name")
    >>> len(genes), genes[:3]
    (19264, ['A1BG', 'A1CF', 'A2M'])
    """
    path = os.fspath(path)
    with builtins.open(path, encoding="utf-8") as fh:
        lines = [line.rstrip("\r\n") for line in fh if line.strip()]
    if not lines:
        raise ValueError(f"{path}: gene list is empty")
    sep = "\t" if "\t" in lines[0] else ("," if path.endswith(".csv") else None)
    rows = [line.split(sep) if sep else [line.strip()] for line in lines]
    header = rows[0]
    if isinstance(column, str):
        if column not in header:
            raise ValueError(f"{path}: no column {column!r} in header {header}")
        idx, rows = header.index(column), rows[1:]
    else:
        idx = column or 0
        if header[idx] in ("gene", "genes", "gene_name", "gene_id", "symbol", "ensembl_id", "token"):
            rows = rows[1:]
    try:
        genes = [r[idx].strip() for r in rows]
    except IndexError:
        raise ValueError(f"{path}: a line has fewer than {idx + 1} columns") from None
    return genes


def _join_args(join) -> tuple[str, list[str]]:
    if isinstance(join, str) and join in ("inner", "outer"):
        return join, []
    if isinstance(join, (str, os.PathLike)):
        return "genes", read_gene_list(join)
    genes = [str(g) for g in join]
    if not genes:
        raise ValueError("join: the gene list is empty")
    return "genes", genes


def open(path_or_paths, layer: str | None = None, threads: int | None = None,  # noqa: A001
         join="inner", values: str = "finite", verify_whole_chunks: bool = False,
         isolate: bool | None = None, open_timeout: float | None = None) -> Collection:
    """Open one AnnData file or a list of them as one row-concatenated collection.

    Each path is an .h5ad (or Cell Ranger .h5) file, a zarr store (v2 or v3; a directory or a
    .zip, sharded or not) or an annbatch collection's root (its dataset_<i> stores, in order);
    the format is told from the content, and formats may be mixed (docs/FORMATS.md).

    Parameters
    ----------
    path_or_paths : str, os.PathLike or sequence of them
        The files, in row order.
    layer : str or list of str, optional
        None reads X; ``"raw"`` reads raw/X (with raw/var); any other name reads
        layers/<name>. A list gives one such choice per file (None for X), e.g. for files
        that keep their counts in different places.
    threads : int, optional
        Worker threads for decoding (default: one per core).
    join : {"inner", "outer"}, list of str, str or os.PathLike, default "inner"
        The gene space when files have different var_names: ``"inner"`` (genes in every
        file), ``"outer"`` (all genes, absent ones are zero), a list of gene names, or the
        path of a vocabulary file (see :func:`read_gene_list`). Files are mapped onto it
        while reading.
    values : {"finite", "counts", "any"}, default "finite"
        Checks of X's values as they are read: ``"finite"`` (NaN or infinity raises a
        ValueError naming the file, element and row), ``"counts"`` (also negative or
        fractional values: for raw counts), ``"any"`` (delivered as stored).
    verify_whole_chunks : bool, default False
        Inflate every gzip chunk whole so its checksum is verified. By default a chunk
        whose needed rows lie in its first third is inflated only that far.
    isolate : bool, optional
        First do libhdf5's part of opening each file (and each first read of a string
        column or of obs names afterwards) in a short-lived probe process, so that a
        corrupt file that crashes libhdf5 raises ValueError, and one that hangs it
        OSError, naming the file and element instead of killing or stalling this process.
        Default: on, unless the environment sets ``CELLFEED_ISOLATE=0`` (see
        docs/RELIABILITY.md for the cost).
    open_timeout : float, optional
        Seconds each probe may take (default 60, or ``CELLFEED_OPEN_TIMEOUT``).

    Returns
    -------
    Collection
        The files as one collection.

    Raises
    ------
    ValueError
        No files, a file that is not a readable AnnData store, no genes in common under
        ``join="inner"``, or one layer per file given for another number of files; the
        message names the file and the element (docs/ERRORS.md).
    OSError
        A file that cannot be read, or a probe that timed out.

    Examples
    --------
    >>> import cellfeed
    >>> col = cellfeed.open(["data/real/pbmc68k_reduced_scanpy1.h5ad",
    ...                      "data/pbmc68k/10x_pbmc68k_reduced.zarr.zip"])
    >>> col
    cellfeed.Collection(1400 cells x 765 genes, 2 file(s))
    >>> col.file_offsets.tolist()
    [0, 700, 1400]
    """
    how, genes = _join_args(join)
    paths = _as_paths(path_or_paths)
    if isinstance(layer, (list, tuple)):
        if len(layer) != len(paths):
            raise ValueError(f"cellfeed.open: {len(layer)} layers for {len(paths)} files; give one per file")
        per_file, layer = [l or "" for l in layer], list(layer)
    else:
        per_file = []
    engine = _cellfeed.Collection.open(paths, "" if per_file else (layer or ""), threads or 0, how,
                                       genes, values, bool(verify_whole_chunks), per_file,
                                       None if isolate is None else bool(isolate),
                                       None if open_timeout is None else float(open_timeout))
    col = Collection(engine)
    col._open_args = (_as_paths(path_or_paths), layer, threads, join, values,
                      bool(verify_whole_chunks), isolate, open_timeout)
    return col
