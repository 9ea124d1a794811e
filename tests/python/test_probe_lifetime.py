"""An open probe (cellfeed-probe, io/hdf5/isolation.h) never outlives the process that
started it, however that process ends, and never runs past its own time limit when nobody
waits for it (issue 36). The input is a real file on which libhdf5 1.10 loops forever
(fuzz/libhdf5-crashes/timeout-H5C_protect_H5AC_protect), so its probe spins until something
stops it. Processes are found through /proc, not through cellfeed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cellfeed

REPO = Path(__file__).resolve().parents[2]
STUCK = REPO / "fuzz" / "libhdf5-crashes" / "timeout-H5C_protect_H5AC_protect"
PROBE = Path(cellfeed.__file__).parent / "cellfeed-probe"


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith("CELLFEED_")}


def _stat(pid: int):
    """(state, ppid) of a live process, None when it is gone (or a zombie: it ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[1]))


def _probes_of_file(path: Path) -> dict[int, int]:
    """pid -> ppid of every running cellfeed-probe whose command line names `path`."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"cellfeed-probe") and str(path).encode() in argv:
            st = _stat(int(d.name))
            if st is not None:
                out[int(d.name)] = st[1]
    return out


def _wait_for_probe(parent_pid: int, path: Path, within: float = 60.0) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for pid, ppid in _probes_of_file(path).items():
            if ppid == parent_pid:
                return pid
        time.sleep(0.1)
    raise AssertionError(f"no probe of {path} started by {parent_pid} within {within} s")


def _gone_within(pid: int, seconds: float) -> float | None:
    """Seconds until `pid` ended, None if it still ran after `seconds`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if _stat(pid) is None:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def _kill_leftover(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_OPEN = ("import sys, cellfeed\n"
         "print('opening', flush=True)\n"
         "cellfeed.open(sys.argv[1], open_timeout=600)\n")


def test_probe_ends_when_its_parent_is_killed():
    # The reproduction: a process opening a stuck file, SIGKILLed (a scheduler's
    # time limit). Before the fix its probe ran on with parent 1 for as long as anyone looked.
    parent = subprocess.Popen([sys.executable, "-c", _OPEN, str(STUCK)], stdout=subprocess.PIPE,
                              text=True, env=_env())
    probe = None
    try:
        assert parent.stdout.readline().strip() == "opening"
        probe = _wait_for_probe(parent.pid, STUCK)
        time.sleep(0.5)  # spinning inside libhdf5 by now
        assert _stat(probe) is not None
        parent.kill()
        parent.wait(timeout=30)
        took = _gone_within(probe, 10)
        assert took is not None, f"probe {probe} outlived its SIGKILLed parent by 10 s"
    finally:
        parent.kill()
        parent.wait(timeout=30)
        if probe is not None:
            _kill_leftover(probe)


_DATALOADER = """
import sys, torch, cellfeed

class OpensTheFile(torch.utils.data.IterableDataset):
    def __iter__(self):
        print('worker opening', flush=True)
        cellfeed.open(sys.argv[1], open_timeout=600)
        yield 0

dl = torch.utils.data.DataLoader(OpensTheFile(), batch_size=None, num_workers=1,
                                 multiprocessing_context='fork', timeout=600)
for _ in dl:
    pass
"""


def test_probe_ends_when_its_dataloader_worker_is_killed():
    # The probe's parent is a DataLoader worker; the OOM killer (or a test harness) SIGKILLs
    # that worker. Its probe must not spin on with parent 1.
    pytest.importorskip("torch")
    main = subprocess.Popen([sys.executable, "-c", _DATALOADER, str(STUCK)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=_env())
    probe = None
    try:
        assert main.stdout.readline().strip() == "worker opening"
        deadline = time.monotonic() + 60
        while probe is None and time.monotonic() < deadline:
            for pid, ppid in _probes_of_file(STUCK).items():
                st = _stat(ppid)
                if st is not None and st[1] == main.pid:  # the probe's parent is main's child
                    probe, worker = pid, ppid
            time.sleep(0.1)
        assert probe is not None, "no probe started by the DataLoader worker"
        os.kill(worker, signal.SIGKILL)
        took = _gone_within(probe, 10)
        assert took is not None, f"probe {probe} outlived its SIGKILLed DataLoader worker by 10 s"
    finally:
        main.kill()
        main.wait(timeout=30)
        if probe is not None:
            _kill_leftover(probe)


def test_probe_ends_by_its_own_limit_when_nobody_waits():
    # The parent lives on but never reads the pipe nor kills the probe (a parent stuck
    # elsewhere, or stopped): the probe's own wall-clock limit ends it. The arguments are
    # the ones the library passes (isolation.cc Spawn), with a 2 s limit.
    proc = subprocess.Popen([str(PROBE), "open", str(STUCK), "", "--memory-mb", "8192",
                             "--parent", str(os.getpid()), "--time-limit-s", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    try:
        t0 = time.monotonic()
        rc = proc.wait(timeout=30)
        took = time.monotonic() - t0
        # Its wall-clock alarm or its CPU limit (equal here; whichever the kernel delivers
        # first on a spinning probe): both are the probe's own limit.
        assert rc in (-signal.SIGALRM, -signal.SIGXCPU), (rc, took)
        assert took >= 1.5, took  # it did run into its limit, not fail at once
    finally:
        proc.kill()
        proc.wait()


def test_probe_whose_parent_died_before_it_could_watch_leaves_at_once():
    # The race the parent-death signal leaves open: the parent dies between spawning the
    # probe and the probe's prctl. The probe then finds another parent than the one it was
    # given and leaves (exit status 4) instead of spinning.
    not_my_parent = os.getpid() + 1_000_000  # no such process is this probe's parent
    proc = subprocess.Popen([str(PROBE), "open", str(STUCK), "", "--parent", str(not_my_parent),
                             "--time-limit-s", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    try:
        assert proc.wait(timeout=30) == 4
    finally:
        proc.kill()
        proc.wait()


def test_a_late_parent_still_reports_a_timeout():
    # A probe that ended by its own limit before the library's own deadline fired (the
    # library's thread descheduled for a while) is reported as the timeout it is, not as a
    # libhdf5 crash. Simulated with a probe wrapper that passes a 1 s limit of its own.
    # The open's timeout (30 s) is far above it, so the probe's own limit ends it first.
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        wrapper = Path(d) / "probe"
        wrapper.write_text(f'#!/bin/sh\nexec "{PROBE}" "$@" --time-limit-s 1\n')
        wrapper.chmod(0o755)
        env = _env() | {"CELLFEED_PROBE": str(wrapper)}
        r = subprocess.run([sys.executable, "-c",
                            "import sys, cellfeed\ncellfeed.open(sys.argv[1], open_timeout=30)",
                            str(STUCK)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "OSError" in r.stderr and "did not finish opening it within 30 s" in r.stderr, r.stderr
    assert "crashed" not in r.stderr, r.stderr
