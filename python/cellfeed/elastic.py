"""Elastic resume and preemption for cellfeed.Loader under torch.distributed.

A Loader's state_dict() describes how far this rank got in the current epoch; under DDP
every rank is at the same batch (each step is a collective), so rank 0's state stands
for all of them and resumes at any world size. gather_state_dict() checks that, and keeps
each rank's point where they differ. Preemption turns SIGTERM / SIGUSR1 into a stop at a
batch boundary that every rank agrees on, and save_checkpoint() writes the state there.
See docs/PYTORCH.md (elastic resume, preemption).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

try:
    import torch
    import torch.distributed as dist
except ImportError:  # pragma: no cover
    torch = dist = None



def _distributed() -> bool:
    return dist is not None and dist.is_available() and dist.is_initialized()


def _mark(state: dict) -> list[int]:
    """Which batches of its pass a rank consumed: per DataLoader worker, the next one."""
    return [int(v) for v in (state.get("workers") or [state["batches_yielded"]])]


def gather_state_dict(state: dict, group=None) -> dict:
    """Every rank's ``Loader.state_dict()`` merged into one state that resumes the whole
    job at any world size (collective: call it on every rank; each gets the result).

    The ranks must be in the same epoch and pass, with the same configuration. Where they
    consumed the same batches (DDP: always), the result is rank 0's state; otherwise it
    also lists each rank's point under ``"ranks"``.

    Parameters
    ----------
    state : dict
        This rank's :meth:`cellfeed.Loader.state_dict`.
    group : torch.distributed.ProcessGroup, optional
        The process group (default: the world).

    Returns
    -------
    dict
        The merged state (``state`` itself without torch.distributed).

    Raises
    ------
    ValueError
        A rank is in another epoch, pass or configuration than rank 0.

    Examples
    --------
    Without torch.distributed the state comes back as it is:

    >>> import cellfeed, cellfeed.elastic
    >>> loader = cellfeed.Loader("data/real/pbmc68k_reduced_scanpy1.h5ad", batch_size=64)
    >>> state = loader.state_dict()
    >>> cellfeed.elastic.gather_state_dict(state) is state
    True
    """
    if not _distributed():
        return state
    states = [None] * dist.get_world_size(group)
    dist.all_gather_object(states, state, group=group)
    first = states[0]

    def fixed(s):
        return ({k: v for k, v in s["config"].items() if k not in ("rank",)},
                s["epoch"], s["seed"], s.get("passes", []))

    for r, s in enumerate(states):
        if fixed(s) != fixed(first):
            raise ValueError(f"rank {r}'s loader state is not in rank 0's epoch, pass or "
                             f"configuration: {s} vs {first}")
    merged = dict(first)
    marks = [_mark(s) for s in states]
    if any(m != marks[0] for m in marks):
        merged["ranks"] = marks
    return merged


class Preemption:
    """Turns the given signals (SIGTERM, SLURM's requeue signal SIGUSR1 by default) into a
    request to stop at the next batch boundary.

    A signal only sets a flag; :meth:`should_stop` is collective under torch.distributed
    (an all_reduce of one number, every ``every`` calls), so all ranks stop after the same
    step even when the signal reached them at different times. Under torchrun, SIGTERM
    sent to torchrun is forwarded to every rank (torchrun waits 30 s, then kills them);
    pass ``torchrun --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1`` for SIGUSR1
    too.

    Parameters
    ----------
    signals : sequence of signal.Signals
        The signals that request a stop.
    every : int
        Ranks agree every this many :meth:`should_stop` calls (fewer collectives).
    group : torch.distributed.ProcessGroup, optional
        The process group (default: the world).

    Examples
    --------
    In a training loop (``train_step``, ``path`` and ``model`` are yours)::

        stop = cellfeed.elastic.Preemption()
        for batch in loader:
            train_step(batch)
            if stop.should_stop():          # every rank gets the same answer
                cellfeed.elastic.save_checkpoint(path, loader, after=batch, model=model)
                sys.exit(0)

    Without torch.distributed a signal is seen at the next call:

    >>> import os, signal, cellfeed.elastic
    >>> stop = cellfeed.elastic.Preemption()
    >>> stop.should_stop()
    False
    >>> os.kill(os.getpid(), signal.SIGUSR1)
    >>> stop.should_stop()
    True
    >>> stop.close()
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGUSR1), every: int = 1, group=None):
        self.received: int | None = None
        self.every = max(1, int(every))
        self.group = group
        self._calls = 0
        self._previous = {}
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum

    @property
    def requested(self) -> bool:
        """A signal reached this process (no communication)."""
        return self.received is not None

    def should_stop(self) -> bool:
        """True on every rank once a signal reached any rank, checked every ``every`` calls."""
        self._calls += 1
        if not _distributed():
            return self.requested
        if self._calls % self.every:
            return False
        device = "cpu"
        if dist.get_backend(self.group) == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        flag = torch.tensor([1 if self.requested else 0], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return bool(flag.item())

    def close(self) -> None:
        """Restores the signal handlers that were there before."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def save_checkpoint(path, loader, after=None, **objects) -> dict:
    """Writes ``{"loader": the gathered loader state, **objects}`` to ``path`` (torch.save,
    by rank 0, atomically: a temporary file renamed into place). Collective under
    torch.distributed.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    loader : cellfeed.Loader
        The loader whose state is saved (gathered from every rank).
    after : cellfeed.Batch, optional
        The last batch the training loop consumed (needed under DataLoader workers).
    **objects
        Saved beside it; objects with a ``state_dict()`` (model, optimizer, scheduler) as
        their state_dict.

    Returns
    -------
    dict
        What was saved.

    Examples
    --------
    >>> import tempfile, cellfeed, cellfeed.elastic
    >>> loader = cellfeed.Loader("data/real/pbmc68k_reduced_scanpy1.h5ad", batch_size=64)
    >>> saved = cellfeed.elastic.save_checkpoint(tempfile.mkdtemp() + "/ckpt.pt", loader, step=0)
    >>> sorted(saved)
    ['loader', 'step']
    """
    state = gather_state_dict(loader.state_dict(after=after))
    payload = {"loader": state}
    for name, obj in objects.items():
        payload[name] = obj.state_dict() if hasattr(obj, "state_dict") else obj
    rank = dist.get_rank() if _distributed() else 0
    if rank == 0:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
    if _distributed():
        dist.barrier()
    return payload


__all__ = ["gather_state_dict", "Preemption", "save_checkpoint"]
