"""`cellfeed inspect` (the installed command) against what h5py reports."""

from __future__ import annotations

import json
import shutil
import subprocess

import h5py
import pytest

from test_read import expected_summary_arrays

CASES = ["csr06_float64_uint16_int32_shuffle+gzip9+fletcher32_c3",
         "csr11_float64_uint32_int64_shuffle+lzf_c17", "h5_userblock_contig",
         "dense_float32_c7x5_gzip", "ad_csr_uint16_lzf_minidx", "real_pbmc68k"]


def cellfeed_cli(*args) -> subprocess.CompletedProcess:
    exe = shutil.which("cellfeed")
    assert exe, "the cellfeed command is not on PATH (pip install . puts it there)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=60)


def h5py_facts(path, element="X", var="var"):
    with h5py.File(path, "r") as f:
        X = f[element]
        sparse = isinstance(X, h5py.Group)
        shape = tuple(int(v) for v in X.attrs["shape"]) if sparse else X.shape
        return {
            "shape": shape,
            "encoding": X.attrs["encoding-type"],
            "nnz": X["data"].shape[0] if sparse else None,
            "obs_columns": list(f["obs"].attrs["column-order"]),
            "var_columns": list(f[var].attrs["column-order"]),
        }


@pytest.mark.parametrize("name", CASES)
def test_inspect_json(paths, name):
    r = cellfeed_cli("inspect", paths[name], "--json")
    assert r.returncode == 0, r.stderr
    (s,) = json.loads(r.stdout)
    facts = h5py_facts(paths[name])
    assert s["path"] == str(paths[name])
    assert (s["n_obs"], s["n_vars"]) == facts["shape"]
    assert s["encoding"] == facts["encoding"]
    assert s["element"] == "X"
    if facts["nnz"] is not None:
        assert s["nnz"] == facts["nnz"]
    got = [{k: a[k] for k in ("name", "dtype", "shape", "chunk_shape", "storage", "filters",
                              "num_chunks")} for a in s["arrays"]]
    assert got == expected_summary_arrays(paths[name])
    assert [c["name"] for c in s["obs_columns"]] == facts["obs_columns"]
    assert [c["name"] for c in s["var_columns"]] == facts["var_columns"]


@pytest.mark.parametrize("name", CASES)
def test_inspect_text(paths, name):
    r = cellfeed_cli("inspect", paths[name])
    assert r.returncode == 0, r.stderr
    facts = h5py_facts(paths[name])
    out = r.stdout
    assert str(paths[name]) in out
    assert f"{facts['shape'][0]} cells x {facts['shape'][1]} genes" in out
    assert facts["encoding"] in out
    if facts["nnz"] is not None:
        assert f"nnz {facts['nnz']}" in out
    for a in expected_summary_arrays(paths[name]):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(a["name"] + " "))
        assert a["dtype"] in line and f"filters: {a['filters']}" in line, line
    for c in facts["obs_columns"]:
        assert any(ln.strip().startswith(c + " ") for ln in out.splitlines()), c


def test_inspect_layer_raw(paths):
    path = paths["ad_layers_raw"]
    r = cellfeed_cli("inspect", path, "--json", "--layer", "raw")
    assert r.returncode == 0, r.stderr
    (s,) = json.loads(r.stdout)
    facts = h5py_facts(path, "raw/X", "raw/var")
    assert s["element"] == "raw/X"
    assert (s["n_obs"], s["n_vars"]) == facts["shape"]
    assert [a["name"] for a in s["arrays"]] == ["raw/X/data", "raw/X/indices", "raw/X/indptr"]
    assert [a["dtype"] for a in s["arrays"]] == [
        a["dtype"] for a in expected_summary_arrays(path, "raw/X")]


def test_inspect_several_files(paths):
    names = ["ad_csr_float32_plain", "ad_dense_float64_plain"]
    r = cellfeed_cli("inspect", *(paths[n] for n in names), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [s["path"] for s in out] == [str(paths[n]) for n in names]
    assert [s["encoding"] for s in out] == ["csr_matrix", "array"]


@pytest.mark.parametrize("bad", ["not_hdf5", "missing", "csc"])
def test_inspect_bad_file(generated, paths, bad):
    path = generated.errors[bad]
    r = cellfeed_cli("inspect", path)
    assert r.returncode != 0
    assert str(path) in r.stderr
    # A bad file does not hide the report on a good one, but the exit status says it.
    good = paths["ad_csr_float32_plain"]
    r = cellfeed_cli("inspect", path, good, "--json")
    assert r.returncode != 0
    assert str(path) in r.stderr
    assert [s["path"] for s in json.loads(r.stdout)] == [str(good)]


def test_inspect_usage_errors(paths):
    assert cellfeed_cli("inspect").returncode != 0
    r = cellfeed_cli("inspect", paths["ad_csr_float32_plain"], "--no-such-option")
    assert r.returncode != 0 and "--no-such-option" in r.stderr


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_bench_limit_replays_every_byte_of_the_epoch(tmp_path, compression):
    """`cellfeed bench --limit` over one whole epoch: the replay into fetch buffers delivers
    exactly the stored bytes of every row (data + indices, from scipy), as a loader must;
    compressed chunks are decoded, not delivered. The scratch replay is reported beside."""
    import anndata as ad
    import numpy as np
    import scipy.sparse as sp

    X = sp.random(3000, 500, density=0.05, format="csr", dtype=np.float32, random_state=1)
    path = tmp_path / "limit.h5ad"
    ad.AnnData(X).write_h5ad(path, compression=compression)
    r = cellfeed_cli("bench", path, "--batch-size", 32, "--block-size", 4, "--fetch-factor", 4,
                     "--epochs", 1, "--warmup", 0, "--seconds", 1000, "--limit", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["cells"] == X.shape[0]
    with h5py.File(path, "r") as f:
        stored = X.nnz * (f["X/data"].dtype.itemsize + f["X/indices"].dtype.itemsize)
    if compression is None:
        assert out["limit_bytes_delivered"] == stored
        assert out["limit_bytes_read"] >= stored  # plus the holes merged into runs
    else:
        assert out["limit_bytes_delivered"] == 0
        assert out["limit_bytes_decoded"] >= stored  # whole chunks
    assert out["limit_cells_per_second"] > 0 and out["scratch_limit_cells_per_second"] > 0
