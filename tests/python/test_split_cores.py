"""cellfeed.split_cores: torch's threads and the engine's never oversubscribe the cores
(issue 37, defect 3), and each pool gets at least one thread."""

import os

import pytest

import cellfeed


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
@pytest.mark.parametrize("workers", [0, 1, 2, 4])
@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64, 192])
def test_the_pools_fit_the_cores(device, workers, cores):
    t, e = cellfeed.split_cores(device, num_workers=workers, cores=cores)
    assert t >= 1 and e >= 1
    if cores >= 2 and workers < cores:
        assert t + e * max(1, workers) <= cores, (t, e)
    if device == "cpu" and cores >= 4 and workers == 0:
        assert t > e  # torch's kernels do the training on CPU
    if device != "cpu" and cores >= 4 and workers == 0:
        assert e > t  # on a GPU the CPU's work is the loader's


def test_default_is_this_process_cpus():
    assert cellfeed.split_cores("cpu") == cellfeed.split_cores("cpu", cores=len(os.sched_getaffinity(0)))
