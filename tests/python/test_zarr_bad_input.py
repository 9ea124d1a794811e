"""Broken zarr stores: each gives a clear error naming the store, the array (and the chunk
or shard) and what was expected; never a crash, a hang or a silently wrong matrix.
Stores are written by anndata / zarr-python, then damaged the way disks and hand edits
damage them."""

from __future__ import annotations

import json
import os
import struct
import warnings
import zipfile
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

import cellfeed
from zarr_fixtures import write_store, zarr_zip_store


def read_all(path, **kw):
    col = cellfeed.open(str(path), **kw)
    return col.read(np.arange(col.n_obs))


def edit_json(path: Path, fn) -> None:
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


@pytest.fixture
def v2(tmp_path):
    return write_store(tmp_path / "v2.zarr", 2, {"chunks": (100,)}, consolidate=False)


@pytest.fixture
def v3_sharded(tmp_path):
    return write_store(tmp_path / "v3.zarr", 3, {"shards": (200,), "chunks": (50,)},
                       consolidate=False)


def test_broken_json(v2):
    (v2 / "X" / "data" / ".zarray").write_text('{"shape": [12, "chunks": ')
    with pytest.raises(ValueError, match=r"v2\.zarr: X/data/\.zarray: broken metadata"):
        cellfeed.open(str(v2))


def test_broken_consolidated_json(tmp_path):
    store = write_store(tmp_path / "c.zarr", 2)
    (store / ".zmetadata").write_text("{not json")
    with pytest.raises(ValueError, match=r"c\.zarr: \.zmetadata: broken metadata"):
        cellfeed.open(str(store))


def test_null_fill_value_reads_as_zero(v2):
    # A null fill_value is valid (zeros), not a type error.
    edit_json(v2 / "X" / "data" / ".zarray", lambda m: m.update(fill_value=None))
    ref = read_all(v2)
    assert ref.nnz > 0


@pytest.mark.parametrize("field,value,expected", [
    ("shape", "12", r"X/data: metadata field 'shape' must be a list of integers, found string"),
    ("chunks", [-1], r"X/data: metadata field 'chunks' must be a list of non-negative"),
    ("dtype", "<c8", r"X/data: dtype '<c8' is not supported"),
    ("fill_value", {"a": 1}, r"X/data: metadata field 'fill_value' must be a number"),
    ("compressor", {"id": "bz2"}, r"X/data: compressor 'bz2' is not supported"),
    ("filters", [{"id": "delta"}], r"X/data: filter 'delta' is not supported"),
    ("order", 7, r"X/data: metadata field 'order' must be a string"),
])
def test_wrong_metadata_types(v2, field, value, expected):
    edit_json(v2 / "X" / "data" / ".zarray", lambda m: m.update({field: value}))
    with pytest.raises(ValueError, match=expected) as e:
        cellfeed.open(str(v2))
    assert str(v2) in str(e.value)


@pytest.mark.parametrize("attr,value,expected", [
    ("column-order", 5, r"obs: attribute 'column-order' must be a list of strings"),
    ("_index", None, r"obs: attribute '_index' must be a string, found null"),
    ("encoding-type", ["dataframe"], r"obs: attribute 'encoding-type' must be a string"),
])
def test_wrong_attribute_types(v2, attr, value, expected):
    edit_json(v2 / "obs" / ".zattrs", lambda m: m.update({attr: value}))
    with pytest.raises(ValueError, match=expected):
        cellfeed.open(str(v2))


def test_wrong_shape_attribute(v2):
    edit_json(v2 / "X" / ".zattrs", lambda m: m.update(shape=[240]))
    with pytest.raises(ValueError, match=r"v2\.zarr: X: attribute 'shape' must hold 2 sizes"):
        cellfeed.open(str(v2))


def test_indptr_of_the_wrong_length(v2):
    edit_json(v2 / "X" / "indptr" / ".zarray", lambda m: m.update(shape=[200]))
    with pytest.raises(ValueError, match=r"X/indptr: has 200 entries, expected n_obs \+ 1 = 241"):
        cellfeed.open(str(v2))


def test_missing_chunk_of_csr_data(v2):
    os.remove(v2 / "X" / "data" / "1")
    with pytest.raises(ValueError, match=r"X/data: chunk 1 .*never written"):
        cellfeed.open(str(v2))


def corrupt(path: Path, at: int = 20, n: int = 16) -> None:
    b = bytearray(path.read_bytes())
    for i in range(at, min(at + n, len(b))):
        b[i] ^= 0x5A
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("codec,expected", [
    (numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE), r"corrupt blosc frame"),
    (numcodecs.Zstd(3), r"corrupt zstd frame"),
    (numcodecs.LZ4(), r"corrupt lz4"),
    (numcodecs.GZip(4), r"corrupt gzip stream"),
])
def test_corrupt_frames_name_the_chunk(tmp_path, codec, expected):
    store = write_store(tmp_path / "a.zarr", 2, {"compressor": codec, "chunks": (200,)})
    chunk = store / "X" / "data" / "0"
    if "blosc" in expected:
        corrupt(chunk, at=4, n=8)  # the header's sizes
    elif "lz4" in expected:
        corrupt(chunk, at=0, n=4)  # the size header
    else:
        corrupt(chunk, at=len(chunk.read_bytes()) // 2, n=32)
    with pytest.raises(ValueError, match=r"a\.zarr: X/data: chunk 0 \(.*\): " + expected):
        read_all(store)


def shard_of(store: Path) -> Path:
    return store / "X" / "data" / "c" / "0"


def test_truncated_shard_index(v3_sharded):
    shard = shard_of(v3_sharded)
    shard.write_bytes(shard.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"X/data: shard X/data/c/0: truncated shard index: the "
                                         r"shard has 20 bytes, its index needs 68"):
        cellfeed.open(str(v3_sharded))


def test_bad_crc32c_of_a_shard_index(v3_sharded):
    shard = shard_of(v3_sharded)
    size = len(shard.read_bytes())
    corrupt(shard, at=size - 20, n=2)  # inside the index (the last 16 * 4 + 4 bytes)
    with pytest.raises(ValueError, match=r"X/data: shard X/data/c/0: shard index: crc32c mismatch"):
        cellfeed.open(str(v3_sharded))


def test_shard_index_pointing_past_the_shard(v3_sharded):
    shard = shard_of(v3_sharded)
    b = bytearray(shard.read_bytes())
    n = 4  # inner chunks per shard
    index = b[-(16 * n + 4):-4]
    index[0:8] = struct.pack("<Q", 10**9)
    b[-(16 * n + 4):-4] = index
    b[-4:] = struct.pack("<I", _crc32c(bytes(index)))
    shard.write_bytes(bytes(b))
    with pytest.raises(ValueError, match=r"shard X/data/c/0: inner chunk 0 at bytes "
                                         r"\[1000000000, .*runs past the shard"):
        cellfeed.open(str(v3_sharded))


def _crc32c(data: bytes) -> int:
    import google_crc32c  # zarr's own crc32c dependency: an independent implementation
    return int.from_bytes(google_crc32c.Checksum(data).digest(), "big")


def test_bad_crc32c_of_a_chunk(tmp_path):
    store = write_store(tmp_path / "a.zarr", 3,
                        {"compressors": [zarr.codecs.Crc32cCodec()], "chunks": (200,)})
    corrupt(store / "X" / "data" / "c" / "0", at=8, n=1)
    with pytest.raises(ValueError, match=r"a\.zarr: X/data: chunk 0 \(crc32c\): crc32c mismatch"):
        read_all(store)


def zip_of(tmp_path) -> Path:
    src = write_store(tmp_path / "a.zarr", 2, {"chunks": (200,)})
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as f:
        for root, _, files in sorted(os.walk(src)):
            for name in sorted(files):
                full = Path(root) / name
                f.write(full, str(full.relative_to(src)))
    return z


def patch_central_entry(z: Path, member: str, offset_in_entry: int, value: int) -> None:
    b = bytearray(z.read_bytes())
    name = member.encode()
    at = 0
    while True:
        at = b.index(b"PK\x01\x02", at)
        n = struct.unpack_from("<H", b, at + 28)[0]
        if bytes(b[at + 46:at + 46 + n]) == name:
            struct.pack_into("<I", b, at + offset_in_entry, value)
            break
        at += 4
    z.write_bytes(bytes(b))


def test_zip_member_that_lies_about_its_size(tmp_path):
    z = zip_of(tmp_path)
    patch_central_entry(z, "X/data/0", 20, 10**8)  # compressed size
    patch_central_entry(z, "X/data/0", 24, 10**8)  # uncompressed size
    with pytest.raises(ValueError, match=r"a\.zip: zip member 'X/data/0': its 100000000 bytes "
                                         r"at byte \d+ run past the end of the file"):
        cellfeed.open(str(z))


def test_stored_zip_member_with_differing_sizes(tmp_path):
    z = zip_of(tmp_path)
    patch_central_entry(z, "X/data/0", 24, 5)
    with pytest.raises(ValueError, match=r"zip member 'X/data/0': a STORED member whose sizes "
                                         r"differ"):
        cellfeed.open(str(z))


def test_truncated_zip(tmp_path):
    z = zip_of(tmp_path)
    z.write_bytes(z.read_bytes()[:-30])
    with pytest.raises(ValueError, match=r"a\.zip: not a zip file|zip central directory"):
        cellfeed.open(str(z))


def test_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: a directory, but not a zarr store"):
        cellfeed.open(str(tmp_path / "empty"))


def test_csc_says_how_to_convert(tmp_path):
    import anndata as ad
    from zarr_fixtures import make_adata
    a = make_adata()
    a.X = a.X.tocsc()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.write_zarr(tmp_path / "csc.zarr")
    with pytest.raises(ValueError, match=r"csc\.zarr: X: csc_matrix is not supported.*tocsr\(\)"):
        cellfeed.open(str(tmp_path / "csc.zarr"))
