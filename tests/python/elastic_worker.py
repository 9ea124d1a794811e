"""One rank of the elastic-resume tests, started by torchrun (gloo, CPU):

    python -m torch.distributed.run --nproc_per_node=N --standalone \
        tests/python/elastic_worker.py SPEC.json

SPEC: {"paths": [...]} or {"corpus_toml": ...}; "kwargs" (Loader keyword arguments),
"inputs" (null, or the genes of a masking pipeline), "num_workers" (DataLoader
workers; 0 iterates directly), "epoch" (the first epoch), "epochs" (how many to run),
"resume" (a checkpoint to load, or null), "checkpoint" (where a preemption saves),
"every" (also save a checkpoint after every `every` steps; 0: never), "marker" (a file
rank 0 writes after `marker_after` steps, when the test may send its signal),
"step_sleep" (seconds per step after the marker, so the signal lands mid-epoch), "out".

Every rank appends one JSON line per consumed batch to OUT/rank<r>.jsonl (flushed, so a
SIGKILL loses nothing written): epoch, rows, sources, and a digest of each cell's model
inputs. Each step is followed by an all_reduce, as in DDP. On SIGTERM / SIGUSR1 the ranks
agree on a step (cellfeed.elastic.Preemption), save the loader state there and exit 0.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import cellfeed
import cellfeed.elastic


def cell_digests(batch) -> list[str]:
    if not batch.inputs:
        return []
    out = []
    names = sorted(batch.inputs)
    arrays = [np.asarray(batch.inputs[k]) for k in names]
    for i in range(len(batch.rows)):
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(a[i]).tobytes())
        out.append(h.hexdigest()[:16])
    return out


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = dist.get_rank()
    Path(spec["out"], f"pid{rank}").write_text(str(os.getpid()))  # the test's SIGKILL finds it
    source = (cellfeed.Corpus.from_toml(spec["corpus_toml"]) if spec.get("corpus_toml")
              else spec["paths"])
    kwargs = dict(spec["kwargs"])
    if spec.get("inputs"):  # dense values with random masking: random per cell
        from cellfeed.inputs import Dense, Pipeline
        kwargs["inputs"] = Pipeline(spec["inputs"], (), Dense("none", mask=True, mask_zero=0.2))
    loader = cellfeed.Loader(source, **kwargs)
    feed = loader
    if spec.get("num_workers"):
        feed = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=spec["num_workers"],
                                           multiprocessing_context="fork", persistent_workers=True)
    stop = cellfeed.elastic.Preemption()
    first = int(spec["epoch"])
    resumed = False
    if spec.get("resume"):
        saved = torch.load(spec["resume"], weights_only=False)
        loader.load_state_dict(saved["loader"])
        first, resumed = int(saved["loader"]["epoch"]), True
    log = open(Path(spec["out"]) / f"rank{rank}.jsonl", "a")
    steps = 0
    for epoch in range(first, int(spec["epoch"]) + int(spec["epochs"])):
        if not (resumed and epoch == first):
            loader.set_epoch(epoch)
        log.write(json.dumps({"start": epoch, "len": len(loader)}) + "\n")
        for batch in feed:
            log.write(json.dumps({"epoch": epoch, "index": int(batch.index),
                                  "rows": [int(r) for r in batch.rows],
                                  "sources": [] if batch.source is None else [int(s) for s in batch.source],
                                  "inputs": cell_digests(batch)}) + "\n")
            log.flush()
            step = torch.ones(1)
            dist.all_reduce(step)  # a collective per step, as in DDP
            steps += 1
            if spec.get("marker") and steps == spec.get("marker_after", 1) and rank == 0:
                Path(spec["marker"]).write_text("ready")
            if spec.get("marker") and steps >= spec.get("marker_after", 1):
                time.sleep(float(spec.get("step_sleep", 0.0)))
            if spec.get("every") and steps % spec["every"] == 0:
                cellfeed.elastic.save_checkpoint(spec["checkpoint"], loader, after=batch, steps=steps)
                log.write(json.dumps({"checkpoint": steps}) + "\n")
                log.flush()
            if stop.should_stop():
                cellfeed.elastic.save_checkpoint(spec["checkpoint"], loader, after=batch, steps=steps)
                log.write(json.dumps({"preempted": steps, "signal": stop.received}) + "\n")
                log.close()
                dist.destroy_process_group()
                return 0
    log.write(json.dumps({"done": steps}) + "\n")
    log.close()
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
