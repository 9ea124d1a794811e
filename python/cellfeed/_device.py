"""Loader(..., device="cuda:0"): batches moved to a GPU on a side stream, one batch ahead.

Each batch's tensors are copied into pinned host memory (torch's caching host allocator
reuses the pinned blocks), then to the device with non_blocking=True on a dedicated CUDA
stream, and an event is recorded. The batch is handed out only after the next one has
been queued, and the consumer's stream waits on its event (no host synchronisation), so
one batch's host-to-device copy overlaps the training step on the one before. The
tensors are marked as used by the consumer's stream (record_stream) so the caching
allocator does not reuse their memory early.

NOT RUN ON A GPU while written (the development machine had none): the tests of this path
skip where torch.cuda.is_available() is False.
"""

from __future__ import annotations

import dataclasses

import torch


def _tensors_to(batch, fn):
    def conv(v):
        if isinstance(v, torch.Tensor):
            return fn(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return dataclasses.replace(batch, X=conv(batch.X), obs=conv(batch.obs),
                               inputs=conv(batch.inputs),
                               _wire=None, _origin=batch._origin)


def _pin(t: torch.Tensor) -> torch.Tensor:
    if t.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(t.crow_indices().pin_memory(), t.col_indices().pin_memory(),
                                       t.values().pin_memory(), size=t.shape,
                                       check_invariants=False)
    return t.pin_memory()


class DeviceFeed:
    def __init__(self, device, pin_memory: bool = True):
        self.device = torch.device(device)
        self.pin = bool(pin_memory)
        self.stream = torch.cuda.Stream(device=self.device)

    def _launch(self, batch):
        if self.pin:
            batch = _tensors_to(batch, _pin)
        with torch.cuda.stream(self.stream):
            moved = _tensors_to(batch, lambda t: t.to(self.device, non_blocking=True))
            event = torch.cuda.Event()
            event.record(self.stream)
        return moved, event

    def _hand_out(self, moved, event):
        consumer = torch.cuda.current_stream(self.device)
        consumer.wait_event(event)

        def mark(t):
            if t.layout == torch.sparse_csr:
                for part in (t.crow_indices(), t.col_indices(), t.values()):
                    part.record_stream(consumer)
            else:
                t.record_stream(consumer)
            return t
        return _tensors_to(moved, mark)

    def __call__(self, batches):
        pending = None
        for batch in batches:
            launched = self._launch(batch)  # queued before the previous one is handed out
            if pending is not None:
                yield self._hand_out(*pending)
            pending = launched
        if pending is not None:
            yield self._hand_out(*pending)
