"""Sharing a machine's cores between torch and cellfeed's engine.

torch's intra-op pool defaults to one thread per core, and so does cellfeed's engine (which
also runs the model-input transforms). Together they run 2x the cores: on a small node,
or one shared with other jobs, both pools then wait on each other's preempted threads
(the main job on 2 busy cores trained ~9x slower that way). `split_cores` gives each pool
its share so that torch threads + engine threads x processes never exceed the cores.
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
    """Threads for torch and for cellfeed's engine that together fit the cores.

    Parameters
    ----------
    device : str
        Where the model trains: ``"cpu"`` (torch's kernels need most of the cores) or a GPU
        such as ``"cuda"`` (torch's CPU threads mostly wait on the GPU, so the engine gets
        most of the cores).
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
    (1, 1)
    >>> cellfeed.split_cores("cpu", cores=16)
    (12, 4)
    >>> cellfeed.split_cores("cuda", cores=16)
    (4, 12)
    >>> cellfeed.split_cores("cuda", num_workers=4, cores=16)
    (4, 3)
    """
    n = max(1, int(cores) if cores is not None else available_cores())
    workers = max(0, int(num_workers))
    if str(device).startswith("cpu"):
        # the engine's share, at least one thread per engine (each worker has its own)
        engine = min(max(1, n // 4, workers), max(1, n - 1))
        torch_threads = max(1, n - engine)
    else:
        torch_threads = max(1, min(4, n // 4))
        engine = max(1, n - torch_threads)
    return torch_threads, max(1, engine // max(1, workers))
