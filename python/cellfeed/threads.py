"""Sharing a machine's cores between torch and cellfeed's engine.

torch's intra-op pool defaults to one thread per core, and so does cellfeed's engine (which
also runs the model-input transforms). What made the main job collapse on a busy 2-core
machine (issue 37) was not the count itself but OpenMP's spin-waiting: with another process
on a core, torch's threads spin at every barrier waiting for the preempted one.
bench/threads_bench.py (2 cores, one busy loop beside the job, 2026-12-07): both pools at
their defaults 61-67 cells/s; 1 torch + 1 engine thread 120-123; 2 torch + 1 engine with
OMP_WAIT_POLICY=PASSIVE 115; idle, the same settings gave 199-210, 123-126 and 192. So
`split_cores` gives torch every core for CPU training and the engine a quarter, and the
training script sets OMP_WAIT_POLICY=PASSIVE before importing torch (docs/PYTORCH.md).
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """The number of CPUs this process may run on (its affinity mask, as taskset or a
    cgroup cpuset sets it), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def split_cores(device: str = "cpu", num_workers: int = 0, cores: int | None = None) -> tuple[int, int]:
    """Threads for torch and for cellfeed's engine, sized together for this machine.

    CPU training: torch's kernels do the work, so torch gets every core and the engine a
    quarter of them (at least one; its threads sleep while the pipeline is ahead). Set
    ``OMP_WAIT_POLICY=PASSIVE`` before importing torch, so that torch's threads do not
    spin at barriers while an engine thread (or another job) holds a core. GPU training:
    torch's CPU threads mostly wait on the GPU, so they get at most 4 (a quarter of the
    cores) and the engine the rest. With DataLoader workers the engine share is divided
    among them, at least one thread each.

    Parameters
    ----------
    device : str
        Where the model trains: ``"cpu"``, or a GPU such as ``"cuda"`` or ``"cuda:1"``.
    num_workers : int
        DataLoader worker processes, each with an engine of its own; 0 when the Loader is
        iterated in the training process.
    cores : int, optional
        Cores to share; by default the CPUs this process may run on.

    Returns
    -------
    tuple of int
        ``(torch_threads, engine_threads)``: pass the first to ``torch.set_num_threads``
        and the second as ``threads=`` of ``cellfeed.Loader`` or ``cellfeed.Corpus`` (per
        worker when ``num_workers > 0``). Each is at least 1.

    Examples
    --------
    >>> import cellfeed
    >>> cellfeed.split_cores("cpu", cores=2)
    (2, 1)
    >>> cellfeed.split_cores("cpu", cores=16)
    (16, 4)
    >>> cellfeed.split_cores("cuda", cores=16)
    (4, 12)
    >>> cellfeed.split_cores("cuda", num_workers=4, cores=16)
    (4, 3)
    """
    n = max(1, int(cores) if cores is not None else available_cores())
    workers = max(0, int(num_workers))
    if str(device).startswith("cpu"):
        torch_threads = n
        engine = max(1, n // 4)
    else:
        torch_threads = max(1, min(4, n // 4))
        engine = max(1, n - torch_threads)
    return torch_threads, max(1, engine // max(1, workers))
