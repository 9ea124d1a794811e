"""The bad-input corpus (scripts/make_bad_files.py): every malformed, corrupt or
unsupported file gives the exception and message its manifest entry says, through the
Python API and the CLI, and none crashes the interpreter. Plus files that change or
disappear while open. Decisions behind the accepted files: docs/ERRORS.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import cellfeed

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import make_bad_files as mbf  # noqa: E402

ENTRIES = {c.entry.name: c.entry for c in mbf.CASES}
ERRORS = [n for n, e in ENTRIES.items() if e.error]
ACCEPTED = [n for n, e in ENTRIES.items() if not e.error]
CLI_CASES = [n for n, e in ENTRIES.items() if e.cli]
# `cellfeed check` opens each file alone: every single-file entry, bad or accepted.
CHECK_CASES = [n for n, e in ENTRIES.items() if len(e.files) == 1]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    mbf.generate(d)
    return d


def paths_of(corpus: Path, name: str) -> list[str]:
    return [str(corpus / f) for f in ENTRIES[name].files]


def expected_substrings(corpus: Path, name: str) -> list[str]:
    p = paths_of(corpus, name)
    subs = {"{path}": p[0], "{path2}": p[-1]}
    return [subs.get(m, m) for m in ENTRIES[name].message]


def trigger(paths: list[str], entry) -> object:
    """Does what the entry's `call` says; returns what it read."""
    col = cellfeed.open(paths if len(paths) > 1 else paths[0], layer=entry.layer or None,
                        threads=2, join=entry.join, values=entry.values)
    if entry.call == "open":
        return col
    if entry.call == "read":
        return col.read(np.arange(col.n_obs))
    if entry.call.startswith("obs:"):
        return col.obs(entry.call[4:])
    if entry.call.startswith("var:"):
        return col.var([entry.call[4:]])
    if entry.call == "obs_names":
        return col.obs_names()
    raise AssertionError(entry.call)


# One subprocess runs every entry first: a crash (segfault, abort) there is reported as a
# failure of that entry instead of taking the test session down with it.
_CANARY = r"""
import json, sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import test_bad_input as t
corpus = __import__("pathlib").Path(sys.argv[3])
for name in t.ENTRIES:
    print(json.dumps({"start": name}), flush=True)
    try:
        t.trigger(t.paths_of(corpus, name), t.ENTRIES[name])
        out = {"name": name, "error": None}
    except Exception as e:
        out = {"name": name, "error": type(e).__name__, "message": str(e)}
    print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="session")
def canary(corpus) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", _CANARY, str(Path(__file__).parent), str(REPO / "scripts"),
         str(corpus)], capture_output=True, text=True, timeout=600)
    results, started = {}, None
    for line in r.stdout.splitlines():
        rec = json.loads(line)
        if "start" in rec:
            started = rec["start"]
        else:
            results[rec["name"]] = rec
    if r.returncode != 0 and started and started not in results:
        results[started] = {"name": started, "crash": r.returncode, "stderr": r.stderr[-3000:]}
    return results


def _no_crash(canary, name):
    rec = canary.get(name)
    assert rec is not None, f"{name}: not reached (an earlier entry crashed the interpreter)"
    assert "crash" not in rec, f"{name} crashed the interpreter (rc {rec['crash']}):\n{rec['stderr']}"


@pytest.mark.parametrize("name", ERRORS)
def test_bad_file_raises(corpus, canary, name):
    _no_crash(canary, name)
    entry = ENTRIES[name]
    exc_type = {"ValueError": ValueError, "OSError": OSError}[entry.error]
    with pytest.raises(Exception) as info:
        trigger(paths_of(corpus, name), entry)
    # Exactly the promised type (OSError must not be a ValueError and vice versa).
    assert isinstance(info.value, exc_type), f"{type(info.value).__name__}: {info.value}"
    other = OSError if exc_type is ValueError else ValueError
    assert not isinstance(info.value, other)
    msg = str(info.value)
    for s in expected_substrings(corpus, name):
        assert s in msg, f"{s!r} not in {msg!r}"


def test_manifest_written(corpus):
    m = json.loads((corpus / "manifest.json").read_text())
    assert [e["name"] for e in m["entries"]] == list(ENTRIES)
    for e in m["entries"]:
        for f in e["files"]:
            assert (corpus / f).exists(), f
        if e["error"]:
            assert "{path}" in e["message"] or "{path2}" in e["message"], e["name"]


# --------------------------------------------------------------------------------------
# Files accepted as stored (docs/ERRORS.md)

def _stored_csr(path: str):
    with h5py.File(path, "r") as f:
        return f["X/data"][:], f["X/indices"][:], f["X/indptr"][:]


@pytest.mark.parametrize("name", ["accept_unsorted_indices", "accept_duplicate_indices",
                                  "accept_nan_negative", "accept_negative_finite"])
def test_csr_delivered_as_stored(corpus, canary, name):
    _no_crash(canary, name)
    (path,) = paths_of(corpus, name)
    data, indices, indptr = _stored_csr(path)
    col = cellfeed.open(path, values=ENTRIES[name].values)
    m = col.read(np.arange(col.n_obs))
    np.testing.assert_array_equal(m.indptr, indptr)
    np.testing.assert_array_equal(m.indices, indices)  # order and repeats kept
    np.testing.assert_array_equal(m.data, data)  # NaN == NaN here, signs kept
    # Rows in any order give the same rows.
    rows = np.array([7, 0, 39, 7, 12])
    sub = col.read(rows)
    for k, r in enumerate(rows):
        a, b = indptr[r], indptr[r + 1]
        np.testing.assert_array_equal(sub.indices[sub.indptr[k]:sub.indptr[k + 1]], indices[a:b])
        np.testing.assert_array_equal(sub.data[sub.indptr[k]:sub.indptr[k + 1]], data[a:b])


def test_nan_negative_really_there(corpus):
    (path,) = paths_of(corpus, "accept_nan_negative")
    m = cellfeed.open(path, values="any").read(np.arange(mbf.N_OBS))
    assert np.isnan(m.data).any() and (m.data < 0).any() and np.isinf(m.data).any()
    with pytest.raises(ValueError, match="is NaN"):
        cellfeed.open(path).read(np.arange(mbf.N_OBS))  # the default checks


def test_values_option_is_validated(corpus):
    (path,) = paths_of(corpus, "accept_nan_negative")
    with pytest.raises(ValueError, match="values must be 'finite', 'counts' or 'any'"):
        cellfeed.open(path, values="strict")


def test_dense_unwritten_chunk_is_fill(corpus, canary):
    _no_crash(canary, "accept_dense_unwritten_chunk")
    (path,) = paths_of(corpus, "accept_dense_unwritten_chunk")
    with h5py.File(path, "r") as f:
        ref = f["X"][:]
        assert f["X"].id.get_chunk_info_by_coord((8, 16)).byte_offset is None
    assert not ref[8:16, 16:24].any()
    col = cellfeed.open(path)
    np.testing.assert_array_equal(col.read(np.arange(col.n_obs)).toarray(), ref)


def test_obs_unwritten_chunk_is_fill(corpus, canary):
    _no_crash(canary, "accept_obs_unwritten_chunk")
    (path,) = paths_of(corpus, "accept_obs_unwritten_chunk")
    with h5py.File(path, "r") as f:
        ref = f["obs/score"][:]
    assert (ref[16:32] == -1.0).all()
    np.testing.assert_array_equal(cellfeed.open(path).obs("score")["score"].to_numpy(), ref)


# --------------------------------------------------------------------------------------
# The CLI

def _cli(*args, timeout=120):
    exe = shutil.which("cellfeed")
    assert exe, "the cellfeed CLI is not on PATH (pip install .)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_fails_with_message(corpus, canary, name):
    _no_crash(canary, name)
    entry = ENTRIES[name]
    paths = paths_of(corpus, name)
    layer = ["--layer", entry.layer] if entry.layer else []
    if entry.cli == "inspect":
        r = _cli("inspect", *paths, *layer)
    else:
        label = ["--label", entry.call[4:]] if entry.call.startswith("obs:") else []
        r = _cli("bench", *paths, "--seconds", "0.2", "--warmup", "0", "--threads", "1",
                 "--values", entry.values, *layer, *label)
    assert r.returncode not in (0, 2) and r.returncode > 0, (r.returncode, r.stderr)
    for s in expected_substrings(corpus, name):
        assert s in r.stderr, f"{s!r} not in {r.stderr!r}"


@pytest.mark.parametrize("name", CHECK_CASES)
def test_check_command_validates_the_whole_file(corpus, canary, name):
    _no_crash(canary, name)
    entry = ENTRIES[name]
    (path,) = paths_of(corpus, name)
    layer = ["--layer", entry.layer] if entry.layer else []
    r = _cli("check", path, "--values", entry.values, *layer)
    if entry.error is None:
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"ok     {path}:")
        return
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.strip() == f"error  {path}"
    for s in expected_substrings(corpus, name):
        assert s in r.stderr, f"{s!r} not in {r.stderr!r}"


def test_check_command_reports_each_file(corpus):
    good = paths_of(corpus, "accept_unsorted_indices")[0]
    bad = paths_of(corpus, "nan_in_x")[0]
    with h5py.File(good, "r") as f:
        n, nnz = len(f["X/indptr"]) - 1, len(f["X/data"])
    r = _cli("check", good, bad, good)
    assert r.returncode == 1
    ok = f"ok     {good}: {n} cells, {nnz} stored values (values='finite')"
    assert r.stdout.splitlines() == [ok, f"error  {bad}", ok]
    assert r.stderr.count("cellfeed check: error:") == 1


# --------------------------------------------------------------------------------------
# Files that change or disappear while open

@pytest.fixture
def good_file(tmp_path) -> Path:
    return mbf.write_h5ad(tmp_path / "good.h5ad", compression=mbf.GZIP)


def _bump_mtime(path: Path) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_truncated_after_open(good_file):
    col = cellfeed.open(good_file)
    size = good_file.stat().st_size
    with open(good_file, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(OSError) as e:
        col.read(np.arange(col.n_obs))
    assert str(good_file) in str(e.value) and "changed" in str(e.value)
    with pytest.raises(OSError) as e:
        col.obs("score")
    assert str(good_file) in str(e.value)
    with pytest.raises(OSError) as e:
        col.obs_names()
    assert str(good_file) in str(e.value)


def test_rewritten_after_open(good_file, tmp_path):
    col = cellfeed.open(good_file)
    # Same size, other content (a file written with another seed), in place.
    other = mbf.write_h5ad(tmp_path / "other.h5ad", compression=mbf.GZIP, seed=5)
    raw = other.read_bytes()
    raw = raw[: good_file.stat().st_size].ljust(good_file.stat().st_size, b"\0")
    with open(good_file, "r+b") as fh:
        fh.write(raw)
    _bump_mtime(good_file)  # coarse timestamps: make the change visible
    with pytest.raises(OSError) as e:
        col.read([0, 1, 2])
    assert str(good_file) in str(e.value) and "changed" in str(e.value)
    with pytest.raises(OSError) as e:
        col.obs("cell_type")
    assert str(good_file) in str(e.value)


def test_touched_after_open(good_file):
    col = cellfeed.open(good_file)
    _bump_mtime(good_file)
    with pytest.raises(OSError, match="changed"):
        col.read([3])


def test_deleted_after_open_keeps_reading(good_file):
    ref_col = cellfeed.open(good_file)
    rows = np.arange(ref_col.n_obs)
    ref = ref_col.read(rows).toarray()
    ref_obs = ref_col.obs()
    col = cellfeed.open(good_file)
    os.unlink(good_file)
    assert not good_file.exists()
    np.testing.assert_array_equal(col.read(rows).toarray(), ref)
    np.testing.assert_array_equal(col.read(rows[::-3]).toarray(), ref[::-3])
    got = col.obs()
    assert got.index.equals(ref_obs.index)
    for c in ref_obs.columns:
        assert got[c].equals(ref_obs[c]), c
    with h5py.File(mbf.write_h5ad(good_file.with_name("again.h5ad")), "r") as f:
        assert f["X/data"].shape[0] > 0  # the directory is still usable


def test_replaced_by_rename_after_open(good_file, tmp_path):
    """A new file renamed over the path: the open collection keeps the old inode (POSIX)
    and keeps giving the old values."""
    col = cellfeed.open(good_file)
    ref = col.read(np.arange(col.n_obs)).toarray()
    other = mbf.write_h5ad(tmp_path / "other.h5ad", seed=9)
    os.replace(other, good_file)
    np.testing.assert_array_equal(col.read(np.arange(col.n_obs)).toarray(), ref)


# --------------------------------------------------------------------------------------
# Prefix inflation and verify_whole_chunks (docs/ERRORS.md)

def test_checksum_verified_when_whole_chunks_are_asked_for(tmp_path):
    """A gzip chunk whose Adler-32 trailer is wrong: rows in the chunk's first third are
    inflated alone by default (the trailer is not reached); verify_whole_chunks=True
    inflates the whole chunk and reports it; rows further in always do."""
    path = mbf.write_h5ad(tmp_path / "adler.h5ad", compression=mbf.GZIP, n=400)
    with h5py.File(path, "r+") as f:
        d = f["X/data"]
        data = d[:]
        del f["X/data"]
        f["X"].create_dataset("data", data=data, chunks=(len(data),), compression="gzip")
    with h5py.File(path, "r") as f:
        info = f["X/data"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:  # flip a bit of the stream's last byte (Adler-32)
        fh.seek(info.byte_offset + info.size - 1)
        b = fh.read(1)
        fh.seek(info.byte_offset + info.size - 1)
        fh.write(bytes([b[0] ^ 1]))
    with h5py.File(path, "r") as f:
        with pytest.raises(OSError):
            f["X/data"][:5]  # libhdf5 (via zlib) rejects the chunk
        ref = f["X/indptr"][:]
    first_rows = np.arange(5)
    m = cellfeed.open(path).read(first_rows)
    assert m.indptr[-1] == ref[5]  # read: only the chunk's first bytes were inflated
    with pytest.raises(ValueError, match=r"X/data: chunk 0 .*corrupt deflate"):
        cellfeed.open(path, verify_whole_chunks=True).read(first_rows)
    with pytest.raises(ValueError, match=r"X/data: chunk 0 .*corrupt deflate"):
        cellfeed.open(path).read([399])  # the chunk's end: inflated whole
    r = _cli("check", path)  # validates whole chunks
    assert r.returncode == 1 and "X/data: chunk 0" in r.stderr and "corrupt deflate" in r.stderr
