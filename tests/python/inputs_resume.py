"""python inputs_resume.py SPEC.json OUT.json: a fresh process resumes a Loader with model
inputs from each state of SPEC and writes the fingerprints of the batches it yields.
SPEC: {"paths": [...], "kwargs": {...}, "preset": "aido_cell_rda" | ..., "vocab": [...],
"states": [...]}."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def fingerprint(batch) -> dict:
    """Row ids and a digest of every input tensor's bytes, per batch."""
    d = {"index": int(batch.index), "rows": [int(r) for r in np.asarray(batch.rows)]}
    for k in sorted(batch.inputs):
        t = batch.inputs[k]
        a = t.contiguous().view(-1).numpy() if hasattr(t, "numpy") and t.dtype != _bf16() else None
        if a is None:
            a = t.contiguous().view(-1).view(__import__("torch").int16).numpy()
        d[k] = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    return d


def _bf16():
    try:
        import torch
        return torch.bfloat16
    except ImportError:  # pragma: no cover
        return None


def make_preset(name: str, vocab):
    import cellfeed
    v = cellfeed.vocab.Vocabulary.from_genes(vocab) if vocab else None
    if name == "aido_cell_rda":
        p = cellfeed.inputs.aido_cell_rda()
    elif name == "geneformer_v2":
        p = cellfeed.inputs.geneformer_mlm(2)
    elif name == "scgpt":
        p = cellfeed.inputs.scgpt_masked_value(max_length=64)
    else:
        raise ValueError(name)
    if v is not None and name != "geneformer_v2":
        p.vocab = v
    return p


def main(argv) -> int:
    import cellfeed
    spec = json.loads(Path(argv[0]).read_text())
    results = []
    for state in spec["states"]:
        loader = cellfeed.Loader(spec["paths"], inputs=make_preset(spec["preset"], spec["vocab"]),
                                 **spec["kwargs"])
        loader.load_state_dict(state)
        results.append([fingerprint(b) for b in loader])
    Path(argv[1]).write_text(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
