"""Files that crash, hang or exhaust libhdf5 1.10 (fuzz/libhdf5-crashes: fuzzer finds, and
byte-flipped anndata files from scripts/make_flipped_files.py) opened and read through
cellfeed with its default isolation: each gives a ValueError / OSError naming the file, or
a read equal to anndata's (h5py's bundled HDF5), and the process survives. Both readers run
in subprocesses, so a crash fails the test instead of ending the session. Where HDF5 2.0
refuses a damaged global heap as a whole but libhdf5 1.10 reads the strings the file
uses, cellfeed's read is compared with an independent reader of the heap's bytes
(hdf5_heap_reference.py, itself checked against anndata on good files here)."""

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
# Inputs with a global heap collection one of whose objects claims to run past the
# collection's end (a fuzzed size field; here var's encoding-type value, whose reference
# asks for its first 9 bytes, "dataframe"). libhdf5 1.10 reads every object (ASan sees its
# parser read past the collection buffer, without a crash: the probe succeeds) and the
# strings the references ask for; HDF5 2.0 refuses every string
# of the collection ("ran off end of input buffer while decoding"), so anndata cannot read
# the file to compare. cellfeed's read is compared with the heap reference instead.
HEAP_REFUSED_BY_HDF5_2 = {"crash-d7be993ef442a91a49d72ed6865cbba6d661b574"}


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


@pytest.mark.parametrize("path", INPUTS, ids=[str(p.relative_to(CRASHES)) for p in INPUTS])
def test_clear_error_or_correct_read(cellfeed_results, tmp_path, path):
    out, results = cellfeed_results
    rec = results.get(path.name)
    assert rec is not None, f"{path.name}: not reached (an earlier input killed the process)"
    assert "crash" not in rec, f"{path.name} killed the process (rc {rec['crash']}):\n{rec['stderr']}"
    if rec["error"] is not None:
        assert rec["oserror"] or rec["valueerror"], rec
        assert str(path) in rec["message"], rec["message"]
        return
    # cellfeed read it: it must have read what anndata reads (or, where HDF5 2.0 refuses
    # the damaged heap, what the independent heap reader reads).
    # (anndata only here, for the files cellfeed read: h5py's libhdf5 hangs on some others.)
    ref_dir = tmp_path / "reference"
    mode = "heap" if path.name in HEAP_REFUSED_BY_HDF5_2 else "reference"
    ref = _run(mode, ref_dir, [path]).get(path.name)
    assert ref is not None and "crash" not in ref and ref["error"] is None, (
        f"cellfeed read {path.name}, which the {mode} reader cannot read to compare: {ref}")
    got = np.load(out / f"{path.name}.npz", allow_pickle=True)
    want = np.load(ref_dir / f"{path.name}.npz", allow_pickle=True)
    assert sorted(got.files) == sorted(want.files)
    for k in want.files:
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"{path.name}: {k}")


def _heap_reference():
    sys.path.insert(0, str(HELPER.parent))
    import hdf5_heap_reference
    return hdf5_heap_reference


def test_the_heap_reference_reads_what_anndata_reads(tmp_path):
    """The independent heap reader used above, on good anndata-written files (LZF and
    gzip chunks; categorical, string and nullable columns): equal to anndata's read."""
    ref = _heap_reference()  # puts the helpers' folder on sys.path
    from libhdf5_inputs import read_reference
    sys.path.insert(0, str(REPO / "scripts"))
    from make_flipped_files import write_base

    write_base(tmp_path / "base.h5ad")
    files = [REPO / "fuzz" / "corpus" / "h5ad" / n for n in ("lzf.h5ad", "gzip.h5ad")]
    for path in files + [tmp_path / "base.h5ad"]:
        got, want = ref.read_with_heap_reference(str(path)), read_reference(str(path))
        assert sorted(got) == sorted(want) and any(k.startswith("obs:") for k in want), path
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{path.name}: {k}")


def test_the_heap_reference_refuses_a_damaged_string(tmp_path):
    """A string whose heap object claims to run past its collection is an error in the
    heap reader, as in HDF5 2.0, not bytes."""
    import struct

    import h5py

    ref = _heap_reference()
    src = REPO / "fuzz" / "corpus" / "h5ad" / "lzf.h5ad"
    data = bytearray(src.read_bytes())
    with h5py.File(src, "r") as f:
        _length, address, index = struct.unpack_from("<IQI", ref.raw_elements(f["obs/_index"], 16, bytes(data)), 0)
    size = struct.unpack_from("<Q", data, address + 8)[0]
    pos = address + 16
    while struct.unpack_from("<H", data, pos)[0] != index:
        pos += 16 + (struct.unpack_from("<Q", data, pos + 8)[0] + 7) // 8 * 8
    struct.pack_into("<Q", data, pos + 8, size)  # past the collection's end
    bad = tmp_path / "bad.h5ad"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        ref.read_with_heap_reference(str(bad))
    with h5py.File(bad, "r") as f, pytest.raises(OSError):
        f["obs/_index"][:]


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
        if p.name.removesuffix(".h5ad") in HEAP_REFUSED_BY_HDF5_2:
            assert reported[str(p)] == "ok", p  # read, and read right (above)
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
