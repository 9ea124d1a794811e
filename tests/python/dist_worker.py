"""One rank of the distributed Loader test, started by torchrun:

    python -m torch.distributed.run --nproc_per_node=2 --standalone \
        tests/python/dist_worker.py OUT_DIR SPEC.json

SPEC: {"paths": [...], "configs": {name: Loader kwargs}}, or "corpus_toml" instead of
"paths" (then each batch also records its cells' sources). rank and world_size are left
to the Loader, which takes them from torch.distributed. For each config the rank writes
OUT_DIR/<name>.rank<r>.json: its rank, world size, len(loader) and the rows of each
batch. Every batch is followed by an all_reduce, as a DDP step would be: unequal batch
counts would hang here (bounded by the process-group timeout).
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import cellfeed


def main(out_dir: str, spec_path: str) -> int:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    spec = json.loads(Path(spec_path).read_text())
    for name, kwargs in spec["configs"].items():
        source = (cellfeed.Corpus.from_toml(spec["corpus_toml"]) if "corpus_toml" in spec
                  else spec["paths"])
        loader = cellfeed.Loader(source, **kwargs)
        batches, sources = [], []
        for batch in loader:
            batches.append([int(r) for r in batch.rows])
            if batch.source is not None:
                sources.append([int(s) for s in batch.source])
            step = torch.ones(1)
            dist.all_reduce(step)  # a collective per step, as in DDP
            assert step.item() == world
        dist.barrier()
        record = {"rank": rank, "world_size": world, "loader_rank": loader.rank,
                  "loader_world_size": loader.world_size, "len": len(loader),
                  "batches": batches, "sources": sources}
        Path(out_dir, f"{name}.rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
