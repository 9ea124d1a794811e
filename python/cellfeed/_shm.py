"""Batches from DataLoader workers to the training process through shared memory.

torch's DataLoader pickles what a worker yields through a pipe: for a batch of 256
Tahoe-like cells that is ~3 MB copied four times (pickle, pipe, unpickle), several ms
per batch against ~0.7 ms to decode it, and torch tensors are moved into a fresh shared
segment each. Here each worker owns a ring of slabs (memfd segments, created once and
reused): it copies a batch's arrays into a free slab once, and only a small ticket
crosses the queue. The training process maps the slab (through /proc/<pid>/fd, cached)
and builds numpy views on it, with no copy.

A slab is reused only when free: its flag in the worker's control segment is set by
the worker before the ticket leaves and cleared by the training process when the last
view of that batch dies (a finalizer on the lease object every view keeps alive). A
consumer that holds many batches makes the worker create more slabs, up to SLOTS; past
that the arrays travel inline in the pickle (slow, never wrong, never blocking).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import secrets
import threading

import numpy as np

SLOTS = 64  # slabs per worker
_ALIGN = 64
_MIN_SLAB = 1 << 20


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _arrays(tree, out):
    """The numpy arrays of a nested tuple/list/dict, in a fixed order."""
    if isinstance(tree, np.ndarray):
        out.append(tree)
    elif isinstance(tree, (tuple, list)):
        for t in tree:
            _arrays(t, out)
    elif isinstance(tree, dict):
        for t in tree.values():
            _arrays(t, out)
    return out


class _Ref:
    """Where one array of a ticket lies in its slab."""

    __slots__ = ("offset", "dtype", "shape")

    def __init__(self, offset, dtype, shape):
        self.offset, self.dtype, self.shape = offset, dtype, shape

    def __reduce__(self):
        return (_Ref, (self.offset, self.dtype, self.shape))


def _replace(tree, fn):
    if isinstance(tree, (np.ndarray, _Ref)):
        return fn(tree)
    if isinstance(tree, tuple):
        return tuple(_replace(t, fn) for t in tree)
    if isinstance(tree, list):
        if tree and not isinstance(tree[0], (np.ndarray, _Ref, tuple, list, dict)):
            return tree  # a list of strings or None (obs string columns)
        return [_replace(t, fn) for t in tree]
    if isinstance(tree, dict):
        return {k: _replace(v, fn) for k, v in tree.items()}
    return tree


class Ring:
    """The slabs of one worker process (worker side)."""

    def __init__(self):
        self.pid = os.getpid()
        self.token = secrets.token_hex(8)  # a pid may be reused by a later worker
        self.ctrl_fd = os.memfd_create("cellfeed-ctrl")
        os.ftruncate(self.ctrl_fd, SLOTS * 8)
        self._ctrl_map = mmap.mmap(self.ctrl_fd, SLOTS * 8)
        self.ctrl = np.frombuffer(self._ctrl_map, np.int64)  # 1 = held by a consumer
        self.slabs: list[list] = []  # [fd, size, mmap, uint8 view]

    def _slab(self, nbytes: int):
        free = [i for i in range(len(self.slabs)) if self.ctrl[i] == 0]
        for i in free:
            if self.slabs[i][1] >= nbytes:
                return i
        size = max(_MIN_SLAB, _aligned(nbytes + nbytes // 4))
        if free:  # grow a free slab: no view of it exists anywhere
            i = free[0]
            fd = self.slabs[i][0]
        elif len(self.slabs) < SLOTS:
            i = len(self.slabs)
            fd = os.memfd_create(f"cellfeed-slab{i}")
            self.slabs.append(None)
        else:
            return None
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
        self.slabs[i] = [fd, size, mm, np.frombuffer(mm, np.uint8)]
        return i

    def pack(self, tree):
        """(tree with its arrays copied into a slab, ticket), or (tree, None) when every
        slab is held by the consumer."""
        arrays = _arrays(tree, [])
        nbytes = sum(_aligned(a.nbytes) for a in arrays)
        i = self._slab(nbytes)
        if i is None:
            return tree, None
        self.ctrl[i] = 1
        fd, size, _, base = self.slabs[i]
        pos = [0]

        def put(a):
            a = np.ascontiguousarray(a)
            o = pos[0]
            view = base[o:o + a.nbytes].view(a.dtype).reshape(a.shape)
            view[...] = a
            pos[0] = o + _aligned(a.nbytes)
            return view

        views = _replace(tree, put)
        refs = _replace(views, lambda v: _Ref(int(v.__array_interface__["data"][0]
                                                   - base.__array_interface__["data"][0]),
                                              v.dtype.str, v.shape))
        return views, (self.pid, self.token, self.ctrl_fd, i, fd, size, refs)


# -- consumer side ----------------------------------------------------------------
_LOCK = threading.Lock()
_CTRL: dict[str, np.ndarray] = {}           # token -> control flags
_MAPS: dict[tuple[str, int], tuple] = {}    # (token, slot) -> (size, lease type, mmap)
_LEASE_TYPES: dict[int, type] = {}


def _open_fd(pid: int, fd: int, size: int) -> mmap.mmap:
    path = f"/proc/{pid}/fd/{fd}"
    try:
        f = os.open(path, os.O_RDWR)
    except OSError as e:
        raise RuntimeError(f"cellfeed: cannot map the shared batch memory of DataLoader worker "
                           f"{pid} ({path}): {e}. Pass Loader(..., worker_transport='pickle') "
                           "to send batches through the pipe instead") from e
    try:
        return mmap.mmap(f, size)
    finally:
        os.close(f)


def _lease_type(size: int) -> type:
    t = _LEASE_TYPES.get(size)
    if t is None:
        def __del__(self):
            self._ctrl[self._slot] = 0  # the last view of this batch is gone
        t = type("SlabLease", (ctypes.c_char * size,), {"__del__": __del__})
        _LEASE_TYPES[size] = t
    return t


def _forget_dead_workers() -> None:
    # Mappings of workers that exited (non-persistent workers, each epoch) are dropped;
    # views still alive keep their own mapping.
    live = {}
    for (token, slot), v in _MAPS.items():
        live.setdefault(token, v[3])
    for token, pid in live.items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _CTRL.pop(token, None)
            for k in [k for k in _MAPS if k[0] == token]:
                del _MAPS[k]


def unpack(ticket):
    """The tree of a ticket, its arrays as views on the worker's slab (consumer side)."""
    pid, token, ctrl_fd, slot, fd, size, refs = ticket
    if pid == os.getpid():  # a copy made inside the worker (deepcopy): copy out, keep held
        mm = _open_fd(pid, fd, size)
        return _replace(refs, lambda r: np.frombuffer(mm, np.dtype(r.dtype),
                                                      int(np.prod(r.shape, dtype=np.int64)),
                                                      r.offset).reshape(r.shape).copy())
    with _LOCK:
        ctrl = _CTRL.get(token)
        if ctrl is None:
            _forget_dead_workers()
            ctrl = np.frombuffer(_open_fd(pid, ctrl_fd, SLOTS * 8), np.int64)
            _CTRL[token] = ctrl
        m = _MAPS.get((token, slot))
        if m is None or m[0] != size:  # new, or grown by the worker
            m = (size, _lease_type(size), _open_fd(pid, fd, size), pid)
            _MAPS[(token, slot)] = m
    lease = m[1].from_buffer(m[2])
    lease._ctrl, lease._slot = ctrl, slot
    return _replace(refs, lambda r: np.frombuffer(lease, np.dtype(r.dtype),
                                                  int(np.prod(r.shape, dtype=np.int64)),
                                                  r.offset).reshape(r.shape))
