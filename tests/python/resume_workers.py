"""One process of the resume-with-workers tests (a fresh process per run, as a restarted
training job would be):

    python resume_workers.py SPEC.json OUT.json

SPEC: {"paths", "kwargs" (Loader), "epoch", "dataloader": "stateful" | "plain" | "none",
"num_workers", "context", "stop": k or null, "state_in": path or null, "state_out": path}.
The loader is wrapped (torchdata's StatefulDataLoader, torch's DataLoader, or iterated
directly), given state_in if any (StatefulDataLoader.load_state_dict, or
Loader.load_state_dict for the others), and iterated; after `stop` batches the state is
saved to state_out (StatefulDataLoader.state_dict(), or Loader.state_dict(after=batch))
and the process ends. OUT: {"batches": [[index, rows...], ...]}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import cellfeed


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    loader = cellfeed.Loader(spec["paths"], **spec["kwargs"])
    loader.set_epoch(spec["epoch"])
    kind, nw = spec["dataloader"], spec["num_workers"]
    kw = dict(batch_size=None, num_workers=nw, timeout=120 if nw else 0)
    if nw:
        kw.update(persistent_workers=True, multiprocessing_context=spec["context"])
    if kind == "stateful":
        from torchdata.stateful_dataloader import StatefulDataLoader
        it = StatefulDataLoader(loader, **kw)
    elif kind == "plain":
        it = torch.utils.data.DataLoader(loader, **kw)
    else:
        it = loader
    if spec.get("state_in"):
        state = torch.load(spec["state_in"], weights_only=False)
        (it if kind == "stateful" else loader).load_state_dict(state)
    batches = []
    for b in it:
        batches.append([int(b.index)] + [int(r) for r in b.rows])
        if spec.get("stop") is not None and len(batches) == spec["stop"]:
            state = it.state_dict() if kind == "stateful" else loader.state_dict(after=b)
            torch.save(state, spec["state_out"])
            break
    Path(out_path).write_text(json.dumps({"batches": batches}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
