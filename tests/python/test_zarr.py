"""zarr stores written by the real anndata and zarr-python, read by cellfeed and compared
value for value with anndata's own zarr reader (`anndata.read_zarr` of the same store).

- zarr v2 from anndata in this Python: every compressor numcodecs gives anndata (blosc
  with lz4 / zstd / zlib and byte / bit / no shuffle, zstd, gzip, zlib, lz4, none), both
  dimension separators, F order, several chunks, missing chunks, with and without
  consolidated metadata.
- zarr v3 from anndata 0.12 / zarr 3 in this Python: blosc, sharding (index at the end
  and at the start), big-endian bytes, crc32c, gzip, transpose, the v2 chunk key encoding.
- zip stores: zarr-python's ZipStore (STORED members) and `zip -r` style zips (DEFLATE
  members, a folder prefix).
- anndata >= 0.13 (sharded v3 by default, zipped) and annbatch 0.3.1 collections (a
  directory, annbatch writing into a ZipStore, the directory zipped), written
  in the separate Python 3.12 environment (docs/quickstart.md: scripts/install.sh makes it), whose
  own anndata.read_zarr writes the reference.
- the real pbmc68k store (data/pbmc68k), and collections mixing h5ad and zarr files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import numcodecs
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

import cellfeed
from test_formats import as_csr, assert_frames, assert_matrix, shuffled_rows
from zarr_fixtures import make_adata, write_store, zarr_zip_store, zip_store

REPO = Path(__file__).resolve().parents[2]
PBMC68K = REPO / "data" / "pbmc68k" / "10x_pbmc68k_reduced.zarr.zip"
B = numcodecs.Blosc


def read_zarr(path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_zarr(path)


def assert_store(store, adata, layers=("counts",), raw=True) -> None:
    """X, obs, var, each layer and raw/X of `store` equal the reference `adata`."""
    col = cellfeed.open(str(store))
    assert_matrix(col, adata.X)
    assert_frames(col, adata)
    for layer in layers:
        assert_matrix(cellfeed.open(str(store), layer=layer), adata.layers[layer])
    if raw:
        r = cellfeed.open(str(store), layer="raw")
        assert_matrix(r, adata.raw.X)
        assert list(r.var_names) == list(adata.raw.var_names)


# --------------------------------------------------------------------------------------
# zarr v2, written by anndata in this Python

V2_CODECS = {
    "anndata-default": None,  # blosc lz4, byte shuffle
    "blosc-lz4-bitshuffle": {"compressor": B("lz4", 5, B.BITSHUFFLE)},
    "blosc-zstd-shuffle": {"compressor": B("zstd", 3, B.SHUFFLE)},
    "blosc-zlib-noshuffle": {"compressor": B("zlib", 4, B.NOSHUFFLE)},
    "zstd": {"compressor": numcodecs.Zstd(3)},
    "gzip": {"compressor": numcodecs.GZip(5)},
    "zlib": {"compressor": numcodecs.Zlib(2)},
    "lz4": {"compressor": numcodecs.LZ4()},
    "none": {"compressor": None},
    "slash-separator": {"chunk_key_encoding": {"name": "v2", "separator": "/"}, "chunks": (37,)},
    "many-chunks": {"chunks": (50,)},
    "order-F": {"order": "F"},
}


@pytest.mark.parametrize("variant", list(V2_CODECS))
def test_zarr_v2_matches_anndata(tmp_path, variant):
    store = write_store(tmp_path / "a.zarr", 2, V2_CODECS[variant], dense_chunks=(37, 16))
    assert (store / ".zmetadata").exists()
    assert_store(store, read_zarr(store))


def test_zarr_v2_without_consolidated_metadata(tmp_path):
    store = write_store(tmp_path / "a.zarr", 2, {"chunks": (64,)}, consolidate=False)
    assert not (store / ".zmetadata").exists()
    assert_store(store, read_zarr(store))


def test_zarr_v2_slash_separator_keys_are_folders(tmp_path):
    store = write_store(tmp_path / "a.zarr", 2,
                        {"chunk_key_encoding": {"name": "v2", "separator": "/"}},
                        dense_chunks=(50, 25))
    assert (store / "layers" / "counts" / "1" / "2").is_file()
    assert_store(store, read_zarr(store))


def dense_with_missing_chunks(tmp_path, fill, fmt):
    """A dense X whose all-fill chunks zarr does not write (write_empty_chunks=False)."""
    a = make_adata(n_obs=100, n_vars=20)
    x = a.X.toarray()
    x[20:60] = fill
    a.X = x
    store = tmp_path / "dense.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(str(store), mode="w", zarr_format=fmt)
        ad.io.write_elem(g, "/", a[:, :0].copy() if False else a)
        del g["X"]
        g.create_array("X", shape=x.shape, dtype=x.dtype, chunks=(10, 20), fill_value=fill)
        g["X"][:] = x
        g["X"].attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        zarr.consolidate_metadata(str(store))
    return store


@pytest.mark.parametrize("fmt", [2, 3])
def test_missing_chunks_read_as_the_fill_value(tmp_path, fmt):
    store = dense_with_missing_chunks(tmp_path, 0.0, fmt)
    chunk = store / "X" / ("2.0" if fmt == 2 else "c/2/0")
    assert not chunk.exists()  # never written
    ref = read_zarr(store)
    assert_matrix(cellfeed.open(str(store)), ref.X)


@pytest.mark.parametrize("fmt", [2, 3])
def test_nan_fill_value(tmp_path, fmt):
    store = dense_with_missing_chunks(tmp_path, np.nan, fmt)
    meta = store / "X" / (".zarray" if fmt == 2 else "zarr.json")
    assert json.loads(meta.read_text())["fill_value"] == "NaN"
    ref = read_zarr(store)
    col = cellfeed.open(str(store), values="any")
    rows = shuffled_rows(ref.n_obs)
    got = col.read(rows).toarray()
    np.testing.assert_array_equal(got, np.asarray(ref.X)[rows])  # NaN == NaN here
    with pytest.raises(ValueError, match="NaN"):
        cellfeed.open(str(store)).read(np.arange(ref.n_obs))


@pytest.mark.parametrize("fmt,kwargs", [
    (2, {"compressor": B("lz4", 5, B.SHUFFLE), "chunks": (50,)}),
    (3, {"compressors": [zarr.codecs.BloscCodec(cname="lz4", shuffle="shuffle")],
         "shards": (400,), "chunks": (50,)})])
def test_rows_read_alone_from_small_blosc_chunks(tmp_path, fmt, kwargs):
    """Each row alone: a row whose values run into the next blosc chunk needs only that
    chunk's first items, which are decoded by themselves (the blosc prefix path)."""
    store = write_store(tmp_path / "a.zarr", fmt, kwargs)
    ref = as_csr(read_zarr(store).X)
    col = cellfeed.open(str(store))
    for r in range(ref.shape[0]):
        np.testing.assert_array_equal(col.read([r]).toarray(), ref[[r]].toarray())
    for r in range(0, ref.shape[0] - 3, 7):
        rows = [r + 3, r]
        np.testing.assert_array_equal(col.read(rows).toarray(), ref[rows].toarray())


# --------------------------------------------------------------------------------------
# zarr v3, written by anndata 0.12 / zarr 3 in this Python

V3_CODECS = {
    "default": None,
    "blosc-lz4-shuffle": {"compressors": [zarr.codecs.BloscCodec(cname="lz4", shuffle="shuffle")]},
    "blosc-zstd-bitshuffle": {"compressors": [zarr.codecs.BloscCodec(cname="zstd",
                                                                     shuffle="bitshuffle")]},
    "gzip+crc32c": {"compressors": [zarr.codecs.GzipCodec(level=5), zarr.codecs.Crc32cCodec()]},
    "big-endian": {"serializer": zarr.codecs.BytesCodec(endian="big"),
                   "compressors": [zarr.codecs.ZstdCodec()]},
    "sharded": {"shards": (100,), "chunks": (25,)},
    "chunk-key-v2": {"chunk_key_encoding": {"name": "v2", "separator": "."}, "chunks": (64,)},
    "uncompressed": {"compressors": None, "chunks": (64,)},
}


@pytest.mark.parametrize("variant", list(V3_CODECS))
def test_zarr_v3_matches_anndata(tmp_path, variant):
    store = write_store(tmp_path / "a.zarr", 3, V3_CODECS[variant], dense_chunks=(40, 30))
    assert json.loads((store / "zarr.json").read_text())["zarr_format"] == 3
    assert_store(store, read_zarr(store))


def sharded_dense(tmp_path, index_location="end", transpose=False):
    a = make_adata()
    store = write_store(tmp_path / "a.zarr", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(str(store), mode="r+", use_consolidated=False)
        x = a.layers["counts"]
        del g["layers/counts"]
        kw = {}
        if transpose:
            kw["filters"] = [zarr.codecs.TransposeCodec(order=(1, 0))]
        codecs = [zarr.codecs.ShardingCodec(
            chunk_shape=(20, 15), index_location=index_location,
            codecs=[zarr.codecs.BytesCodec(), zarr.codecs.ZstdCodec()])]
        arr = zarr.create_array(store=str(store), name="layers/counts", shape=x.shape,
                                dtype=x.dtype, chunks=(80, 30), serializer=codecs[0],
                                compressors=None, zarr_format=3, **kw) \
            if not transpose else \
            zarr.create_array(store=str(store), name="layers/counts", shape=x.shape,
                              dtype=x.dtype, chunks=(40, 20), zarr_format=3,
                              compressors=[zarr.codecs.ZstdCodec()], **kw)
        arr[:] = x
        arr.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        zarr.consolidate_metadata(str(store))
    return store


@pytest.mark.parametrize("where", ["end", "start"])
def test_sharded_dense_layer_index_at_either_end(tmp_path, where):
    store = sharded_dense(tmp_path, index_location=where)
    meta = json.loads((store / "layers/counts/zarr.json").read_text())
    assert meta["codecs"][0]["configuration"]["index_location"] == where
    ref = read_zarr(store)
    assert_matrix(cellfeed.open(str(store), layer="counts"), ref.layers["counts"])


def test_transposed_chunks(tmp_path):
    store = sharded_dense(tmp_path, transpose=True)
    meta = json.loads((store / "layers/counts/zarr.json").read_text())
    assert meta["codecs"][0]["name"] == "transpose"
    ref = read_zarr(store)
    assert_matrix(cellfeed.open(str(store), layer="counts"), ref.layers["counts"])


# --------------------------------------------------------------------------------------
# zip stores


def test_zarr_zipstore_matches_anndata(tmp_path):
    src = write_store(tmp_path / "a.zarr", 3, {"shards": (100,), "chunks": (25,)})
    z = zarr_zip_store(src, tmp_path / "a.zarr.zip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ad.read_zarr(zarr.storage.ZipStore(str(z), mode="r"))
    assert_store(z, ref)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("deflate", [False, True], ids=["stored", "deflated"])
def test_hand_made_zip_with_folder_prefix(tmp_path, fmt, deflate):
    src = write_store(tmp_path / "a.zarr", fmt, {"chunks": (64,)})
    z = zip_store(src, tmp_path / "a.zip", deflate=deflate, prefix="a.zarr/")
    assert_store(z, read_zarr(src))


def test_format_is_told_from_content_not_name(tmp_path):
    src = write_store(tmp_path / "a.zarr", 2)
    z = zip_store(src, tmp_path / "looks_like.h5ad")
    assert_store(z, read_zarr(src))
    plain = tmp_path / "plain_dir.h5ad"
    shutil.copytree(src, plain)
    assert_store(plain, read_zarr(src))


# --------------------------------------------------------------------------------------
# collections mixing formats


def test_collection_mixing_h5ad_and_zarr_is_the_concatenation(tmp_path):
    parts = [make_adata(n_obs=120 + 40 * i, seed=i) for i in range(3)]
    for p in parts:  # as write_h5ad does to its own copy: the same column kinds everywhere
        p.strings_to_categoricals()
    paths = [tmp_path / "p0.h5ad", tmp_path / "p1.zarr", tmp_path / "p2.zarr"]
    parts[0].write_h5ad(paths[0])
    write_store(paths[1], 2, adata=parts[1])
    write_store(paths[2], 3, {"shards": (200,), "chunks": (50,)}, adata=parts[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refs = [ad.read_h5ad(paths[0]), read_zarr(paths[1]), read_zarr(paths[2])]
        cat = ad.concat(refs)
    col = cellfeed.open([str(p) for p in paths])
    assert col.n_obs == cat.n_obs
    assert_matrix(col, cat.X)
    assert list(col.obs_names()) == list(cat.obs_names)
    for name in ["cell_type", "donor", "n_counts", "batch"]:
        got = col.obs(name)[name]
        exp = cat.obs[name]
        if isinstance(exp.dtype, pd.CategoricalDtype):
            assert list(got.astype(str)) == list(exp.astype(str))
        else:
            np.testing.assert_array_equal(np.asarray(got), np.asarray(exp))


def test_loader_reads_a_zarr_store_like_the_h5ad(tmp_path):
    a = make_adata()
    a.write_h5ad(tmp_path / "a.h5ad")
    write_store(tmp_path / "a.zarr", 3, {"shards": (100,), "chunks": (25,)}, adata=a)
    batches = []
    for p in ["a.h5ad", "a.zarr"]:
        loader = cellfeed.Loader(str(tmp_path / p), batch_size=32, seed=3, output="scipy")
        batches.append([b for b in loader])
    assert len(batches[0]) == len(batches[1]) > 0
    for x, y in zip(*batches):
        np.testing.assert_array_equal(x.rows, y.rows)
        np.testing.assert_array_equal(as_csr(x.X).toarray(), as_csr(y.X).toarray())


# --------------------------------------------------------------------------------------
# the real pbmc68k store (anndata 0.13, zipped zarr v3, sharded, zstd)


def test_pbmc68k_real_store(modern):
    ref = ad.read_h5ad(modern["pbmc68k"][1])
    col = cellfeed.open(str(PBMC68K), values="any")
    assert_matrix(col, ref.X)
    assert_frames(col, ref)
    assert_matrix(cellfeed.open(str(PBMC68K), layer="counts"), ref.layers["counts"])


# --------------------------------------------------------------------------------------
# Python 3.12: anndata >= 0.13 defaults, and annbatch

PY312_DEFAULT = REPO / ".venv-zarr312" / "bin" / "python"


@pytest.fixture(scope="session")
def modern(tmp_path_factory):
    py = os.environ.get("CELLFEED_ZARR312_PYTHON", str(PY312_DEFAULT))
    if not Path(py).exists():
        pytest.skip(f"no Python 3.12 environment with anndata >= 0.13 at {py} (scripts/install.sh "
                    "makes .venv-zarr312; or set CELLFEED_ZARR312_PYTHON)")
    out = tmp_path_factory.mktemp("modern")
    script = Path(__file__).with_name("zarr_fixtures.py")
    res = subprocess.run([py, str(script), str(out), str(PBMC68K)], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["sharded", "unsharded", "zipped"])
def test_anndata013_stores_match_anndata013(modern, name):
    store, ref = modern[name][:2]
    if name == "sharded":
        meta = json.loads((Path(store) / "X" / "data" / "zarr.json").read_text())
        assert meta["codecs"][0]["name"] == "sharding_indexed"
    assert_store(store, ad.read_h5ad(ref))


def assert_collection(root, refs) -> None:
    """cellfeed's collection at `root` is the reference datasets concatenated, in order."""
    assert len(refs) > 1, "the fixture should make several dataset_<i> groups"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [ad.read_h5ad(r) for r in refs]
        cat = ad.concat(parts)
    col = cellfeed.open(str(root))
    assert col.files == [f"{root}/dataset_{i}" for i in range(len(refs))]
    assert col.n_obs == cat.n_obs
    assert_matrix(col, cat.X)
    assert list(col.obs_names()) == list(cat.obs_names)
    for name in ["cell_type", "donor", "batch", "src_path"]:
        got = col.obs(name)[name]
        assert list(got.astype(str)) == list(cat.obs[name].astype(str))
    assert list(col.var_names) == list(parts[0].var_names)


def annbatch_fixture(modern, name="annbatch"):
    if name not in modern:
        pytest.skip("annbatch is not installed in the Python 3.12 environment")
    return modern[name][0], modern[name][1:]


def test_annbatch_collection_is_its_datasets_in_order(modern):
    root, refs = annbatch_fixture(modern)
    assert_collection(root, refs)


def test_annbatch_collection_written_into_a_zip_store(modern):
    # annbatch's add_adatas into zarr-python's ZipStore; references read back by annbatch.
    root, refs = annbatch_fixture(modern, "annbatch_zip")
    assert_collection(root, refs)
    # A dataset of the zip, addressed below it, opens alone as that dataset.
    one = cellfeed.open(f"{root}/dataset_1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_matrix(one, ad.read_h5ad(refs[1]).X)


@pytest.mark.parametrize("prefix", ["", "annbatch_collection.zarr/"])
def test_annbatch_collection_zipped_stored(modern, tmp_path, prefix):
    # The directory collection zipped with Python's zipfile (STORED), with and without the
    # folder prefix `zip -r` gives: the same rows as annbatch's directory.
    root, refs = annbatch_fixture(modern)
    z = zip_store(root, tmp_path / "coll.zip", prefix=prefix)
    assert_collection(z, refs)


def test_annbatch_collection_zipped_deflate_is_refused(modern, tmp_path):
    # annbatch shards X; a DEFLATEd shard cannot be read in parts: a clear error that says
    # to zip STORED instead (zarr-python reads it by inflating whole shards).
    root, _ = annbatch_fixture(modern)
    z = zip_store(root, tmp_path / "coll.zip", deflate=True)
    with pytest.raises(Exception) as e:
        cellfeed.open(str(z))
    msg = str(e.value)
    assert str(z) in msg and "dataset_0" in msg and "DEFLATE" in msg, msg


def test_cli_inspects_a_zarr_store(tmp_path):
    exe = shutil.which("cellfeed")
    assert exe, "the cellfeed command is not on PATH (pip install . puts it there)"
    store = write_store(tmp_path / "a.zarr", 3, {"shards": (100,), "chunks": (25,)})
    res = subprocess.run([exe, "inspect", str(store), "--json"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    info = info[0] if isinstance(info, list) else info
    ref = read_zarr(store)
    text = json.dumps(info)
    assert str(ref.n_obs) in text and "zarr v3" in text


@pytest.mark.parametrize("fmt", [2, 3])
def test_nullable_string_column(tmp_path, fmt):
    a = make_adata()
    a.obs["note"] = pd.array([None if i % 6 == 0 else f"n{i}" for i in range(a.n_obs)],
                             dtype="string")
    with ad.settings.override(allow_write_nullable_strings=True):
        store = write_store(tmp_path / "a.zarr", fmt, adata=a)
    attrs = store / "obs" / "note" / (".zattrs" if fmt == 2 else "zarr.json")
    assert "nullable-string-array" in attrs.read_text()
    ref = read_zarr(store)
    assert_frames(cellfeed.open(str(store)), ref)
