"""Files that crash, hang or exhaust libhdf5 1.10 (fuzz/libhdf5-crashes: fuzzer finds, and
byte-flipped anndata files from scripts/make_flipped_files.py) opened and read through
cellfeed with its default isolation: each gives a ValueError / OSError naming the file, or
a read equal to anndata's (h5py's bundled HDF5), and the process survives. Both readers run
in subprocesses, so a crash fails the test instead of ending the session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CRASHES = REPO / "fuzz" / "libhdf5-crashes"
INPUTS = sorted(p for p in CRASHES.rglob("*") if p.is_file() and p.suffix not in (".md", ".json"))
HELPER = Path(__file__).with_name("libhdf5_inputs.py")
# Inputs whose corrupt global heap libhdf5 1.10 reads past its end without crashing
# (ASan reports it in the fuzzer): the probe succeeds and cellfeed returns strings that
# HDF5 2.0 (h5py) refuses to decode, so the read cannot be confirmed. Isolation cannot see
# an overread that does not crash; kept as strict expected failures (docs/RELIABILITY.md).
KNOWN_GAPS = {"crash-d7be993ef442a91a49d72ed6865cbba6d661b574"}


def _run(mode: str, out: Path, inputs) -> dict:
    out.mkdir(exist_ok=True)
    # A bound for the whole run, not a performance figure: every input either fails at
    # once or is stopped by its probe's 5 s open timeout.
    r = subprocess.run([sys.executable, str(HELPER), mode, str(out), *map(str, inputs)],
                       capture_output=True, text=True, timeout=120 + 30 * len(inputs))
    results, started = {}, None
    for line in r.stdout.splitlines():
        rec = json.loads(line)
        if "start" in rec:
            started = rec["start"]
        else:
            results[rec["name"]] = rec
    if r.returncode != 0 and started and started not in results:
        results[started] = {"name": started, "crash": r.returncode, "stderr": r.stderr[-2000:]}
    return results


@pytest.fixture(scope="module")
def cellfeed_results(tmp_path_factory):
    d = tmp_path_factory.mktemp("libhdf5") / "cellfeed"
    return d, _run("cellfeed", d, INPUTS)


def test_there_are_inputs():
    assert len(INPUTS) >= 6
    assert any(p.parent.name == "flipped" for p in INPUTS)


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="libhdf5 1.10 overreads a corrupt global heap without crashing"))
    if p.name in KNOWN_GAPS else p for p in INPUTS], ids=[str(p.relative_to(CRASHES)) for p in INPUTS])
def test_clear_error_or_correct_read(cellfeed_results, tmp_path, path):
    out, results = cellfeed_results
    rec = results.get(path.name)
    assert rec is not None, f"{path.name}: not reached (an earlier input killed the process)"
    assert "crash" not in rec, f"{path.name} killed the process (rc {rec['crash']}):\n{rec['stderr']}"
    if rec["error"] is not None:
        assert rec["oserror"] or rec["valueerror"], rec
        assert str(path) in rec["message"], rec["message"]
        return
    # cellfeed read it: it must have read what anndata reads.
    # (anndata only here, for the files cellfeed read: h5py's libhdf5 hangs on some others.)
    ref_dir = tmp_path / "reference"
    ref = _run("reference", ref_dir, [path]).get(path.name)
    assert ref is not None and "crash" not in ref and ref["error"] is None, (
        f"cellfeed read {path.name}, which anndata cannot read to compare: {ref}")
    got = np.load(out / f"{path.name}.npz", allow_pickle=True)
    want = np.load(ref_dir / f"{path.name}.npz", allow_pickle=True)
    assert sorted(got.files) == sorted(want.files)
    for k in want.files:
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"{path.name}: {k}")


def test_check_reports_every_file_of_a_directory(tmp_path):
    """`cellfeed check DIR` goes through every file, also past ones that crash or hang
    libhdf5, and reports each: good ones ok (with anndata's counts), the others as errors."""
    import shutil

    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng([17, 1])
    x = sp.random(50, 20, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 5)
    obs = pd.DataFrame({"t": pd.Categorical(rng.choice(["a", "b"], 50))},
                       index=[f"c{i}" for i in range(50)])
    d = tmp_path / "portal"
    (d / "sub").mkdir(parents=True)
    for name in ("a_good.h5ad", "sub/z_good.h5ad"):
        ad.AnnData(X=x, obs=obs).write_h5ad(d / name)
    bad = []
    for p in INPUTS:
        dst = d / ("sub" if p.parent.name == "flipped" else ".") / (p.name.removesuffix(".h5ad") + ".h5ad")
        shutil.copy(p, dst)
        bad.append(dst)
    # The CLI installed with this interpreter's cellfeed (then whatever is on PATH).
    beside = Path(sys.executable).parent / "cellfeed"
    exe = str(beside) if beside.exists() else shutil.which("cellfeed")
    assert exe, "the cellfeed CLI is not on PATH (pip install .)"
    r = subprocess.run([exe, "check", str(d), "--timeout", "5"], capture_output=True, text=True,
                       timeout=120 + 30 * len(INPUTS))
    assert r.returncode == 1, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    reported = {line.split()[1].rstrip(":"): line.split()[0] for line in lines}
    assert len(lines) == len(bad) + 2
    assert reported[str(d / "a_good.h5ad")] == "ok"
    assert reported[str(d / "sub/z_good.h5ad")] == "ok"
    assert f"{str(d / 'a_good.h5ad')}: 50 cells, {x.nnz} stored values" in r.stdout
    for p in bad:
        if p.name.removesuffix(".h5ad") in KNOWN_GAPS:
            assert reported[str(p)] in ("ok", "error")
            continue
        assert reported[str(p)] == "error", p
        assert f"cellfeed check: error: {p}" in r.stderr
    gaps = sum(reported[str(p)] == "ok" for p in bad)
    assert f"{len(bad) + 2} files: {2 + gaps} ok, {len(bad) - gaps} failed" in r.stderr


def _python(code: str, *args, env_extra=None):
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLFEED_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


_OBS_NAMES = ("import sys, cellfeed\n"
              "kw = {} if len(sys.argv) < 3 else {'isolate': sys.argv[2] == '1'}\n"
              "cellfeed.open(sys.argv[1], **kw).obs_names()\n")


def test_without_isolation_the_input_kills_the_process():
    # What the isolation prevents (the input is real): off by argument or by environment.
    p = CRASHES / "crash-H5HG_read_H5T__conv_vlen"
    assert _python(_OBS_NAMES, p, "0").returncode < 0
    assert _python(_OBS_NAMES, p, env_extra={"CELLFEED_ISOLATE": "0"}).returncode < 0
    r = _python(_OBS_NAMES, p)
    assert r.returncode == 1 and "ValueError" in r.stderr and "obs/_index" in r.stderr, r.stderr


def test_timeout_is_configurable():
    p = CRASHES / "timeout-H5C_protect_H5AC_protect"
    r = _python(_OBS_NAMES, p, env_extra={"CELLFEED_OPEN_TIMEOUT": "2"})
    assert r.returncode == 1 and "OSError" in r.stderr, r.stderr
    assert "within 2 s" in r.stderr and str(p) in r.stderr


def test_a_missing_probe_is_an_error_not_an_unprotected_open():
    p = CRASHES / "crash-H5HG_read_H5T__conv_vlen"
    r = _python(_OBS_NAMES, p, env_extra={"CELLFEED_PROBE": "/nonexistent/cellfeed-probe"})
    assert r.returncode == 1 and "OSError" in r.stderr and "cellfeed-probe" in r.stderr, r.stderr


_LOADER = ("import sys, cellfeed\n"
           "kw = dict(isolate=None if sys.argv[2] == '-' else sys.argv[2] == '1')\n"
           "if len(sys.argv) > 3: kw['open_timeout'] = float(sys.argv[3])\n"
           "cellfeed.Loader(sys.argv[1], **kw)\n")


def test_loader_takes_the_isolation_switches():
    # The Loader's own open: isolate=False lets libhdf5 kill the process, the default
    # turns the crash into a ValueError; open_timeout bounds a hang.
    p = CRASHES / "crash-H5C_protect_H5AC_protect"
    assert _python(_LOADER, p, "0").returncode < 0
    r = _python(_LOADER, p, "-")
    assert r.returncode == 1 and "ValueError" in r.stderr and "libhdf5 crashed" in r.stderr, r.stderr
    t = CRASHES / "timeout-H5C_protect_H5AC_protect"
    r = _python(_LOADER, t, "1", "2")
    assert r.returncode == 1 and "OSError" in r.stderr and "within 2 s" in r.stderr, r.stderr


def test_loader_refuses_isolation_switches_for_an_opened_collection(tmp_path):
    import anndata as ad
    import cellfeed
    a = ad.AnnData(np.ones((4, 3), np.float32))
    a.write_h5ad(tmp_path / "a.h5ad")
    with pytest.raises(ValueError, match="opened with"):
        cellfeed.Loader(cellfeed.open(tmp_path / "a.h5ad"), isolate=False)


def test_ctrl_c_during_a_hanging_probe_interrupts_it():
    # The timeout input hangs libhdf5 (and so its probe) until the 60 s limit: SIGINT two
    # seconds in must end the open with KeyboardInterrupt at once, its probe killed.
    import os
    import signal
    import time
    p = CRASHES / "timeout-H5C_protect_H5AC_protect"
    code = ("import sys, time, cellfeed\n"
            "print('opening', flush=True)\n"
            "t = time.monotonic()\n"
            "try:\n"
            "    cellfeed.open(sys.argv[1], open_timeout=60)\n"
            "except KeyboardInterrupt:\n"
            "    print(f'interrupted after {time.monotonic() - t:.1f}', flush=True)\n"
            "    sys.exit(7)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLFEED_")}
    proc = subprocess.Popen([sys.executable, "-c", code, str(p)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "opening"
    time.sleep(2.0)
    probes = subprocess.run(["pgrep", "-f", f"cellfeed-probe open {p}"], capture_output=True, text=True)
    assert probes.stdout.split(), "the probe is not running"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)  # far below the probe's 60 s
    assert proc.returncode == 7, (out, err)
    assert float(out.split()[-1]) < 20, out
    for pid in probes.stdout.split():  # killed and reaped, not left running
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
