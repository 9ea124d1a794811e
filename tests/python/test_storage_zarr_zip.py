"""A STORED zip zarr store (.zarr.zip) opened from an http:// URL (a range server of ours
on 127.0.0.1) reads the same as anndata's reader of the same store: X, obs, var, a layer
and raw. The only format that reads URLs so far (docs/STORAGE.md)."""

from __future__ import annotations

import pytest

import cellfeed
from storage_servers import RangeServer
from test_zarr import assert_store, read_zarr
from zarr_fixtures import write_store, zarr_zip_store, zip_store


@pytest.mark.parametrize("fmt", [2, 3])
def test_stored_zip_store_over_http_matches_anndata(tmp_path, fmt):
    kwargs = {"chunks": (64,)} if fmt == 2 else {"shards": (128,), "chunks": (32,)}
    src = write_store(tmp_path / "a.zarr", fmt, kwargs)
    local = zip_store(src, tmp_path / "a.zarr.zip")
    server = RangeServer({"/a.zarr.zip": local.read_bytes()})
    try:
        url = f"{server.url}/a.zarr.zip"
        assert_store(url, read_zarr(src))
        assert any(r[0] == "GET" and r[2] for r in server.requests)  # read by ranges
    finally:
        server.close()


def test_zarr_python_zipstore_over_http_matches_local(tmp_path):
    src = write_store(tmp_path / "a.zarr", 3, {"shards": (100,), "chunks": (25,)})
    z = zarr_zip_store(src, tmp_path / "z.zarr.zip")
    server = RangeServer({"/z.zarr.zip": z.read_bytes()})
    try:
        remote = cellfeed.open(f"{server.url}/z.zarr.zip")
        here = cellfeed.open(str(z))
        assert remote.shape == here.shape
        rows = list(range(0, remote.shape[0], 7))
        a, b = remote.read(rows), here.read(rows)
        assert (a != b).nnz == 0 and a.dtype == b.dtype
    finally:
        server.close()


def test_missing_object_names_the_url(tmp_path):
    server = RangeServer({})
    try:
        url = f"{server.url}/nothing.zarr.zip"
        with pytest.raises(OSError, match=f"{url}.*HTTP 404"):
            cellfeed.open(url)
    finally:
        server.close()
