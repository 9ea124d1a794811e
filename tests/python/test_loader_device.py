"""Loader(device="cuda:N"): batches in pinned memory, moved on a side stream. The GPU
tests skip where torch.cuda.is_available() is False (as on the development machine:
this path was not run on a GPU when written)."""

from __future__ import annotations

import numpy as np
import pytest

import cellfeed
from conftest_loader import loader_files  # noqa: F401  (fixture)
from loader_helpers import expected_dense, read_anndata, x_to_dense

torch = pytest.importorskip("torch")
KW = dict(batch_size=8, block_size=4, fetch_factor=2, seed=2, obs=["n_counts"])
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("output,device", [("scipy", "cuda:0"), ("numpy", "cuda:0"),
                                           ("torch", "cpu")])
def test_device_needs_torch_output_and_cuda(loader_files, output, device):
    with pytest.raises(ValueError, match="device="):
        cellfeed.Loader(loader_files.same, output=output, device=device, **KW)


@cuda
@pytest.mark.parametrize("output", ["torch", "torch-dense"])
@pytest.mark.parametrize("pin", [True, False])
def test_batches_arrive_on_the_device_equal_to_anndata(loader_files, output, pin):
    full = expected_dense(read_anndata(loader_files.same),
                          cellfeed.Loader(loader_files.same).var_names)
    loader = cellfeed.Loader(loader_files.same, output=output, device="cuda:0",
                             pin_memory=pin, **KW)
    host = cellfeed.Loader(loader_files.same, output=output, **KW)
    n = 0
    for b, h in zip(loader, host, strict=True):
        assert b.X.device.type == "cuda" and b.obs["n_counts"].device.type == "cuda"
        assert b.index == h.index
        np.testing.assert_array_equal(x_to_dense(b.X.cpu()), full[np.asarray(b.rows)])
        n += len(b)
    assert n == loader_files.n_same
