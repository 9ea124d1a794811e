"""cellfeed for Lightning: a LightningDataModule over files or a cellfeed.Corpus::

    dm = cellfeed.lightning.CellfeedDataModule(corpus, batch_size=256, block_size=16,
                                                fetch_factor=64, output="torch")
    trainer.fit(model, datamodule=dm)

The Trainer gives each loader its rank and world size (setup) and its epoch (Lightning
calls set_epoch on the loader's `sampler` at every epoch start, as it does for a
DistributedSampler). The train loader is stateful: Lightning saves its state in every
checkpoint and restores it on `fit(..., ckpt_path=...)`, and the run continues with
exactly the batches not yet consumed. Built on cellfeed.Loader (docs/PYTORCH.md).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from .corpus import Corpus
from .loader import Loader


class _TrainerFeed:
    """What a *_dataloader() hook returns: the Loader, iterated directly (num_workers=0)
    or through a torch DataLoader, with the epoch from Lightning and the state of the
    batches the training loop consumed (the fetcher runs ahead of the training step)."""

    def __init__(self, module: "CellfeedDataModule", loader: Loader, num_workers: int,
                 dataloader_kwargs: dict):
        self._module = module
        self.loader = loader
        self.sampler = self  # Lightning calls sampler.set_epoch(epoch) every epoch
        self.batch_sampler = None
        self.dataset = loader  # an IterableDataset: Lightning neither shuffles nor samples it
        self._dl = None
        if num_workers:
            self._dl = torch.utils.data.DataLoader(loader, batch_size=None,
                                                   num_workers=num_workers, **dataloader_kwargs)
        self._yielded: list = []  # batches handed to Lightning this pass (the light parts)
        self._pending = False  # a loaded state waits for the next pass
        # Batches of this epoch Lightning had counted when the running (or pending) pass
        # was restored: its progress keeps counting from there.
        self._offset = 0
        self._restored = None  # the state loaded for it
        self._elastic_len = None  # the length reported for an elastic resume

    def set_epoch(self, epoch: int) -> None:
        if self._pending and int(epoch) == self.loader.epoch:
            return  # restoring a checkpoint: keep the resume point of this same epoch
        elastic = self.loader._pass_len is not None
        self.loader.set_epoch(int(epoch))
        if elastic:
            # Lightning sized the epoch once, when it set up the data: after an elastic
            # resume, that was the resumed pass's length. The next epochs are whole again.
            loop = getattr(getattr(self._module, "trainer", None), "fit_loop", None)
            if loop is not None and getattr(loop, "max_batches", None) == self._elastic_len:
                loop.max_batches = len(self.loader)

    def __len__(self) -> int:
        if self.loader._pass_len is not None:  # elastic resume: the batches of the new pass
            self._elastic_len = self._offset + len(self.loader)
            return self._elastic_len
        return len(self.loader)

    def __iter__(self):
        if not self._pending:
            self._offset, self._restored = 0, None
        self._pending = False
        self._yielded = []
        for batch in (self._dl if self._dl is not None else self.loader):
            self._yielded.append(_Mark(batch))
            yield batch

    def _consumed(self) -> int:
        trainer = self._module.trainer
        try:
            return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        except AttributeError:  # pragma: no cover
            return len(self._yielded)

    def state_dict(self) -> dict:
        n = min(self._consumed() - self._offset, len(self._yielded))
        if n == 0 and self._restored is not None:
            return dict(self._restored)  # nothing consumed since the restore
        if n == 0:
            state = self.loader.state_dict()
            state["batches_yielded"] = 0
            state.pop("workers", None)
            return state
        return self.loader.state_dict(after=self._yielded[n - 1])

    def load_state_dict(self, state: dict) -> None:
        # Under DDP, Lightning saved rank 0's state; the ranks move in lockstep, so it
        # stands for every rank, at this world size or another (elastic resume).
        self.loader.load_state_dict(state)
        self._pending = True
        self._offset = self._consumed()
        self._restored = state


class _Mark:
    """The index and origin of a yielded batch: all state_dict(after=) reads."""

    __slots__ = ("index", "_origin")

    def __init__(self, batch):
        self.index, self._origin = batch.index, batch._origin


class CellfeedDataModule(pl.LightningDataModule):
    """A LightningDataModule whose loaders are :class:`cellfeed.Loader`.

    The Trainer gives each loader its rank and world size (at :meth:`setup`) and its epoch;
    the train loader's state is saved in every checkpoint and restored on
    ``fit(..., ckpt_path=...)`` (docs/PYTORCH.md).

    Parameters
    ----------
    train : str, list of str, cellfeed.Collection or cellfeed.Corpus
        What the train loader reads. With a Corpus, the val and test loaders stream its
        declared ``"val"`` and ``"test"`` splits (unshuffled), unless ``val`` / ``test``
        name other files.
    val, test : str, list of str or cellfeed.Collection, optional
        What the val and test loaders read (unshuffled).
    num_workers : int, default 0
        0 iterates each Loader directly, usually as fast on one machine; more wraps each
        in a torch DataLoader with that many workers.
    persistent_workers : bool, default True
        Keep the DataLoader workers between epochs (with ``num_workers > 0``).
    multiprocessing_context : str, optional
        The DataLoader's start method (``"fork"``, ``"spawn"``, ...).
    val_batch_size : int, optional
        Batch size of the val and test loaders (default: ``batch_size``).
    **loader_kwargs
        Passed to :class:`cellfeed.Loader` (not ``rank``, ``world_size`` or ``split``: the
        module sets them).

    Raises
    ------
    ValueError
        ``rank``, ``world_size`` or ``split`` among the loader keywords.

    Examples
    --------
    >>> from cellfeed.lightning import CellfeedDataModule
    >>> dm = CellfeedDataModule("data/real/pbmc68k_reduced_scanpy1.h5ad", batch_size=64,
    ...                         output="torch")
    >>> dm.setup("fit")
    >>> len(dm.train_dataloader())
    11
    """

    def __init__(self, train, val=None, test=None, *, num_workers: int = 0,
                 persistent_workers: bool = True, multiprocessing_context=None,
                 val_batch_size: int | None = None, **loader_kwargs: Any):
        super().__init__()
        for k in ("rank", "world_size", "split"):
            if k in loader_kwargs:
                raise ValueError(f"CellfeedDataModule sets {k} itself (from the Trainer / splits)")
        self.train_source, self.val_source, self.test_source = train, val, test
        self.num_workers = int(num_workers)
        self.dataloader_kwargs = {}
        if self.num_workers:
            self.dataloader_kwargs = dict(persistent_workers=persistent_workers,
                                          multiprocessing_context=multiprocessing_context)
        self.loader_kwargs = loader_kwargs
        self.val_batch_size = val_batch_size
        self.loaders: dict[str, Loader] = {}
        self._feeds: dict[str, _TrainerFeed] = {}

    def _rank(self):
        t = getattr(self, "trainer", None)
        return (0, 1) if t is None else (int(t.global_rank), int(t.world_size))

    def _make(self, split: str) -> Loader | None:
        rank, world = self._rank()
        source = {"train": self.train_source, "val": self.val_source,
                  "test": self.test_source}[split]
        kw = dict(self.loader_kwargs, rank=rank, world_size=world)
        if split != "train":
            kw["shuffle"] = False
            if self.val_batch_size:
                kw["batch_size"] = self.val_batch_size
        if source is None and isinstance(self.train_source, Corpus) and split != "train":
            if not self._has_split(split):
                return None
            return Loader(self.train_source, split=split, **kw)
        if source is None:
            return None
        return Loader(source, **kw)

    def _has_split(self, split: str) -> bool:
        c = self.train_source
        if any(s.split == split for s in c.sources):
            return True
        sp = c.split
        return sp is not None and bool(getattr(sp, split, None) or
                                       (sp.fractions or {}).get(split))

    def setup(self, stage: str | None = None) -> None:
        """Make the loaders a stage needs, with the Trainer's rank and world size.

        Parameters
        ----------
        stage : {"fit", "validate", "test", "predict"}, optional
            The Trainer's stage; every loader when None.
        """
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": ("test",)}.get(stage, ("train", "val", "test"))
        for split in wanted:
            if split not in self.loaders or self.loaders[split].rank != self._rank()[0]:
                loader = self._make(split)
                if loader is not None:
                    self.loaders[split] = loader
                    self._feeds.pop(split, None)

    def _feed(self, split: str):
        if split not in self.loaders:
            return []
        if split not in self._feeds:
            self._feeds[split] = _TrainerFeed(self, self.loaders[split], self.num_workers,
                                              self.dataloader_kwargs)
        return self._feeds[split]

    def train_dataloader(self):
        """The train loader, as Lightning iterates it (with its epoch and state)."""
        return self._feed("train")

    def val_dataloader(self):
        """The val loader (an empty list when there is none)."""
        return self._feed("val")

    def test_dataloader(self):
        """The test loader (an empty list when there is none)."""
        return self._feed("test")


__all__ = ["CellfeedDataModule"]
