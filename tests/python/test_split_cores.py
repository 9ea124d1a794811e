"""cellfeed.split_cores: how torch's threads and the engine's share the cores (issue 37,
defect 3). On a GPU the two pools fit the cores; on CPU torch takes every core and the
engine a quarter (measured in bench/threads_bench.py with OMP_WAIT_POLICY=PASSIVE)."""

import os

import pytest

import cellfeed


@pytest.mark.parametrize("workers", [0, 1, 2, 4])
@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64, 192])
def test_gpu_training_fits_the_cores(workers, cores):
    for device in ("cuda", "cuda:1"):
        t, e = cellfeed.split_cores(device, num_workers=workers, cores=cores)
        assert t >= 1 and e >= 1
        if cores >= 2 and workers < cores:
            assert t + e * max(1, workers) <= cores, (t, e)
        if cores >= 4 and workers == 0:
            assert e > t  # on a GPU the CPU's work is the loader's


@pytest.mark.parametrize("workers", [0, 1, 2, 4])
@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64, 192])
def test_cpu_training_gives_torch_the_cores_and_the_engine_a_quarter(workers, cores):
    t, e = cellfeed.split_cores("cpu", num_workers=workers, cores=cores)
    assert t == cores
    assert e >= 1
    assert e * max(1, workers) <= max(cores // 4, max(1, workers))


def test_default_is_this_process_cpus():
    assert cellfeed.split_cores("cpu") == cellfeed.split_cores("cpu", cores=len(os.sched_getaffinity(0)))
