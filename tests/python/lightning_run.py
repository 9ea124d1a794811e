"""One Lightning run of the cellfeed.lightning tests, in its own process (DDP re-runs
this script once per rank, as Lightning's launcher does for scripts):

    python lightning_run.py SPEC.json

SPEC: {"paths", "loader" (Loader kwargs), "num_workers", "devices", "strategy",
"max_epochs", "max_steps", "ckpt_every", "ckpt_dir", "ckpt_in", "sigterm_at", "out"}. Every training
step records (epoch, batch index, rows); each rank writes OUT.rank<r>.json with its
steps, its validation rows and len(train loader). With ckpt_every, a ModelCheckpoint
saves CKPT_DIR/step=<k>.ckpt every k steps; with ckpt_in, fit resumes from it. With
sigterm_at, rank 0 sends itself SIGTERM after that step; Lightning stops at the next batch
boundary and OnExceptionCheckpoint saves CKPT_DIR/on_exception.ckpt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

import cellfeed
import cellfeed.lightning


class Recorder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.steps, self.val_rows = [], []

    def training_step(self, batch, batch_idx):
        self.steps.append([int(self.current_epoch), int(batch.index),
                           [int(r) for r in batch.rows]])
        return ((self.w - 1.0) ** 2).sum()

    def validation_step(self, batch, batch_idx):
        self.val_rows.extend(int(r) for r in batch.rows)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SigtermAt(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step and trainer.global_rank == 0:
            import os
            import signal
            os.kill(os.getpid(), signal.SIGTERM)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if "corpus" in spec:
        source = cellfeed.Corpus([cellfeed.Source(**s) for s in spec["corpus"]["sources"]],
                                 split=cellfeed.Split(**spec["corpus"]["split"]))
    else:
        source = spec["paths"]
    dm = cellfeed.lightning.CellfeedDataModule(source, num_workers=spec.get("num_workers", 0),
                                                **spec["loader"])
    model = Recorder()
    callbacks = []
    if spec.get("sigterm_at"):  # a real SIGTERM to this process after that many steps
        callbacks += [SigtermAt(spec["sigterm_at"]),
                      pl.callbacks.OnExceptionCheckpoint(spec["ckpt_dir"])]
    if spec.get("ckpt_every"):  # the usual mid-epoch checkpoint, saved after a step
        callbacks.append(pl.callbacks.ModelCheckpoint(
            dirpath=spec["ckpt_dir"], every_n_train_steps=spec["ckpt_every"], save_top_k=-1,
            filename="{step}"))
    trainer = pl.Trainer(accelerator="cpu", devices=spec.get("devices", 1),
                         strategy=spec.get("strategy", "auto"),
                         max_epochs=spec.get("max_epochs", 2), max_steps=spec.get("max_steps", -1),
                         callbacks=callbacks, logger=False,
                         enable_checkpointing=bool(callbacks), enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=spec.get("ckpt_in"))
    finally:  # also when Lightning stops on SIGTERM (it raises SystemExit)
        _write(spec, trainer, model, dm)
    return 0


def _write(spec, trainer, model, dm):
    r = trainer.global_rank
    Path(f"{spec['out']}.rank{r}.json").write_text(json.dumps(
        {"rank": r, "world_size": trainer.world_size, "steps": model.steps,
         "val_rows": model.val_rows, "len": len(dm.loaders["train"]),
         "loader_rank": dm.loaders["train"].rank,
         "loader_world_size": dm.loaders["train"].world_size}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
