"""The `cellfeed` command (the installed program): `inspect` against what h5py reports,
`check --json` against its text output and h5py, and the command line's own help: --help
for every command, usage errors that name what is valid, progress on a terminal only."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import h5py
import pytest

from test_read import expected_summary_arrays

CASES = ["csr06_float64_uint16_int32_shuffle+gzip9+fletcher32_c3",
         "csr11_float64_uint32_int64_shuffle+lzf_c17", "h5_userblock_contig",
         "dense_float32_c7x5_gzip", "ad_csr_uint16_lzf_minidx", "real_pbmc68k"]


def cellfeed_exe() -> str:
    # The program installed with this interpreter's cellfeed (a venv's bin/), then PATH's.
    beside = Path(sys.executable).parent / "cellfeed"
    exe = str(beside) if beside.exists() else shutil.which("cellfeed")
    assert exe, "the cellfeed command is not on PATH (pip install . puts it there)"
    return exe


def cellfeed_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([cellfeed_exe(), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


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


# --------------------------------------------------------------------------------------
# check --json: the same facts as the text lines, and as h5py

def _write_h5ad(path, n=300, genes=40, nan_row=None):
    import anndata as ad
    import numpy as np
    import scipy.sparse as sp

    X = sp.random(n, genes, density=0.2, format="csr", dtype=np.float32, random_state=n)
    if nan_row is not None:
        X.data[X.indptr[nan_row]] = np.nan
    ad.AnnData(X).write_h5ad(path)
    return path


def _stored(path):
    with h5py.File(path, "r") as f:
        return len(f["X/indptr"]) - 1, len(f["X/data"])


def test_check_json_matches_the_text_report(tmp_path):
    good = _write_h5ad(tmp_path / "good.h5ad")
    other = _write_h5ad(tmp_path / "other.h5ad", n=120)
    bad = _write_h5ad(tmp_path / "bad.h5ad", nan_row=7)
    files = [good, bad, other]
    text = cellfeed_cli("check", *files)
    js = cellfeed_cli("check", *files, "--json")
    assert text.returncode == js.returncode == 1
    rep = json.loads(js.stdout)
    assert rep["values"] == "finite"
    assert [f["path"] for f in rep["files"]] == [str(p) for p in files]
    assert [f["ok"] for f in rep["files"]] == [True, False, True]
    assert rep["summary"] == {"files": 3, "ok": 2, "failed": 1}
    lines = text.stdout.splitlines()
    for f, line in zip(rep["files"], lines):
        if f["ok"]:
            n, nnz = _stored(f["path"])
            assert (f["cells"], f["stored_values"]) == (n, nnz)
            assert line == f"ok     {f['path']}: {n} cells, {nnz} stored values (values='finite')"
        else:
            assert line == f"error  {f['path']}"
            assert str(bad) in f["error"] and "row 7" in f["error"], f["error"]
            # stderr is the same in both modes: the error, then the totals
            assert f"cellfeed check: error: {f['error']}" in js.stderr.splitlines()
    assert js.stderr == text.stderr
    assert text.stderr.splitlines()[-1] == "cellfeed check: 3 files: 2 ok, 1 failed"


# --------------------------------------------------------------------------------------
# The command line's help and usage errors

# Every option each command documents; what scripts, tests and docs call it with.
OPTIONS = {
    "inspect": ["--json", "--layer"],
    "check": ["--json", "--layer", "--values", "--threads", "--rows", "--timeout"],
    "bench": ["--json", "--batch-size", "--block-size", "--fetch-factor", "--seed", "--label",
              "--seconds", "--warmup", "--epochs", "--min-fetches", "--limit", "--threads",
              "--layer", "--values"],
    "corpus": ["--json", "--plot", "--columns", "--split", "--world-size", "--batch-size",
               "--block-size", "--fetch-factor", "--epoch"],
}


def test_help_lists_the_commands():
    for args in (["--help"], ["-h"], ["help"]):
        r = cellfeed_cli(*args)
        assert r.returncode == 0, (args, r.stderr)
        for cmd in OPTIONS:
            assert f"\n  {cmd} " in r.stdout, (cmd, r.stdout)
    r = cellfeed_cli()  # no command: the same help, as a usage error
    assert r.returncode == 2 and all(cmd in r.stderr for cmd in OPTIONS)


@pytest.mark.parametrize("cmd", sorted(OPTIONS))
def test_command_help(cmd):
    r = cellfeed_cli(cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert f"cellfeed {cmd}" in r.stdout
    lines = r.stdout.splitlines()
    for opt in OPTIONS[cmd]:
        # the option, then a description (on its line or the next one)
        i = next((i for i, ln in enumerate(lines) if ln.strip().startswith(opt + " ")
                  or ln.strip() == opt or ln.strip().startswith(opt + "=")), None)
        assert i is not None, (opt, r.stdout)
        described = " ".join(lines[i:i + 2]).replace(opt, "", 1)
        assert sum(c.isalpha() for c in described) > 8, (opt, lines[i:i + 2])
    assert cellfeed_cli(cmd, "-h").stdout == r.stdout
    assert cellfeed_cli("help", cmd).stdout == r.stdout


@pytest.mark.parametrize("cmd", ["inspect", "check", "bench"])
def test_unknown_option_names_the_valid_ones(tmp_path, cmd):
    f = _write_h5ad(tmp_path / "a.h5ad")
    r = cellfeed_cli(cmd, f, "--no-such-option")
    assert r.returncode == 2, r.stderr
    assert f"cellfeed {cmd}: unknown option '--no-such-option'" in r.stderr
    valid = next(ln for ln in r.stderr.splitlines() if ln.startswith(f"valid options of cellfeed {cmd}:"))
    listed = [w.split()[0] for w in valid.split(":", 1)[1].split(", ")]
    assert sorted(listed) == sorted(OPTIONS[cmd] + ["--help"])
    assert r.stdout == ""


def test_unknown_option_suggests_the_closest():
    r = cellfeed_cli("bench", "x.h5ad", "--batchsize", "8")
    assert r.returncode == 2
    assert "unknown option '--batchsize' (did you mean --batch-size?)" in r.stderr
    r = cellfeed_cli("corpus", "x.toml", "--no-such-option")  # argparse's own message
    assert r.returncode == 2 and "--no-such-option" in r.stderr and "usage: cellfeed corpus" in r.stderr


def test_unknown_command():
    r = cellfeed_cli("insepct", "x.h5ad")
    assert r.returncode == 2
    assert "unknown command 'insepct' (did you mean inspect?)" in r.stderr
    assert "commands: inspect, check, bench, corpus" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["bench", "F", "--batch-size", "abc"], "--batch-size: 'abc' is not an integer"),
    (["bench", "F", "--batch-size", "0"], "--batch-size: '0' is less than 1"),
    (["bench", "F", "--block-size", "chunky"], "--block-size: 'chunky' is not an integer or 'chunk'"),
    (["bench", "F", "--seconds", "soon"], "--seconds: 'soon' is not a number"),
    (["bench", "F", "--batch-size"], "--batch-size needs a value (N)"),
    (["check", "F", "--rows", "1.5"], "--rows: '1.5' is not an integer"),
    (["check", "F", "--values", "fin"], "--values: fin not in {finite,counts,any}"),
    (["check", "F", "--layer"], "--layer needs a value (NAME)"),
    (["check"], "FILE is required"),
    (["inspect"], "FILE is required"),
])
def test_bad_values_are_usage_errors(tmp_path, args, message):
    f = _write_h5ad(tmp_path / "a.h5ad")
    r = cellfeed_cli(*[str(f) if a == "F" else a for a in args])
    assert r.returncode == 2, r.stderr
    assert f"cellfeed {args[0]}: error: {message}" in r.stderr, r.stderr
    assert f"valid options of cellfeed {args[0]}:" in r.stderr
    assert r.stdout == ""


def test_block_size_chunk_equals_form_and_repeats(tmp_path):
    f = _write_h5ad(tmp_path / "a.h5ad")
    # a repeated option: the last one counts
    r = cellfeed_cli("bench", f, "--block-size", "chunk", "--batch-size", 4, "--batch-size=16", "--epochs", 1,
                     "--warmup", 0, "--seconds", 1000, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["block_size"] == "chunk" and out["batch_size"] == 16 and out["cells"] == 300


# --------------------------------------------------------------------------------------
# Progress: on a terminal only

def _run_with_tty_stderr(args, columns=500):
    """Runs the program with stderr on a pseudo-terminal of `columns` columns (stdout a
    pipe); returns (exit status, stdout, everything written to the terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([cellfeed_exe(), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    tty = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the program closed the terminal
            break
        if not chunk:
            break
        tty += chunk
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=120), out, tty.decode()


def test_check_progress_on_a_terminal_only(tmp_path):
    good = _write_h5ad(tmp_path / "good.h5ad", n=2000)
    bad = _write_h5ad(tmp_path / "bad.h5ad", nan_row=3)
    args = ["check", good, bad, "--rows", 100]
    piped = cellfeed_cli(*args)
    assert "\r" not in piped.stderr and "check 1/2" not in piped.stderr
    assert piped.stderr.splitlines()[-1] == "cellfeed check: 2 files: 1 ok, 1 failed"
    assert len(piped.stderr.splitlines()) == 2  # the error, the totals: nothing else
    rc, out, tty = _run_with_tty_stderr(args)
    assert rc == piped.returncode == 1
    assert out == piped.stdout  # stdout is the same whatever stderr is
    # the first draw of each file is due at once: its open
    assert f"\rcheck 1/2 {good}: opening" in tty and f"\rcheck 2/2 {bad}: opening" in tty
    # every line is erased before anything else is printed, and at the end
    kept = [ln.split("\r")[-1] for ln in tty.replace("\r\n", "\n").split("\n")]
    assert [ln for ln in kept if ln.strip()] == [ln for ln in piped.stderr.splitlines()]


def test_progress_line_fits_the_terminal(tmp_path):
    long = tmp_path / ("a_long_file_name_" * 6 + ".h5ad")
    _write_h5ad(long)
    rc, _, tty = _run_with_tty_stderr(["check", long], columns=40)
    assert rc == 0
    drawn = [seg for seg in tty.replace("\r\n", "\n").replace("\n", "\r").split("\r") if seg.strip()]
    assert any(seg.startswith("check 1/1 ") for seg in drawn)
    assert all(len(seg) <= 39 for seg in drawn if seg.startswith("check ")), drawn


def test_bench_progress_on_a_terminal_only(tmp_path):
    f = _write_h5ad(tmp_path / "a.h5ad")
    args = ["bench", f, "--epochs", 2, "--warmup", 0, "--seconds", 1000, "--json"]
    piped = cellfeed_cli(*args)
    assert piped.returncode == 0 and piped.stderr == ""
    rc, out, tty = _run_with_tty_stderr(args)
    assert rc == 0
    assert json.loads(out).keys() == json.loads(piped.stdout).keys()
    assert json.loads(out)["cells"] == json.loads(piped.stdout)["cells"] == 600
    assert tty.startswith("\rbench: opening 1 file(s)")
    assert re.search(r"\rbench: \d+\.\d / 1000 s, 0 cells, ", tty), tty
    assert tty.endswith("\r") and tty.split("\r")[-2].strip() == ""  # erased at the end


def test_bench_counts_each_epochs_fetch(paths):
    """--min-fetches counts fetches, also when each epoch is one fetch whose memory the
    next epoch's reuses (they were told apart by address: the run went on for minutes)."""
    path = paths["real_pbmc68k"]
    with h5py.File(path, "r") as f:
        X = f["X"]
        n = X.shape[0] if isinstance(X, h5py.Dataset) else len(X["indptr"]) - 1
    assert n < 64 * 16  # one fetch per epoch
    r = cellfeed_cli("bench", path, "--seconds", 0, "--warmup", 0, "--min-fetches", 8, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # measuring stops at the first batch past the 8th fetch: the 9th epoch's first
    assert out["epochs_started"] == 9
    assert out["cells"] == 8 * n + 64
