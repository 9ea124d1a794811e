"""Declare a training corpus over the real CellBench sources and print its report.

    python examples/corpus_cellbench.py [--plot corpus.png]

Converts data/cellbench to h5ad (once), loads examples/cellbench_corpus.toml, prints the
report (per source: cells in the files, passing QC, per split, requested, delivered;
per cell line; batch proportions; leakage), then streams one epoch and checks that what
was delivered is what the report promised and that no held-out cell was trained on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cellfeed  # noqa: E402
from cellbench_to_h5ad import SOURCES, main as convert_cellbench  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", default=str(HERE / "cellbench_corpus.toml"))
    p.add_argument("--plot", default=None)
    args = p.parse_args(argv)
    out = HERE.parent / "data" / "cellbench" / "h5ad"
    if not all((out / f"{s}.h5ad").exists() for s in SOURCES):
        convert_cellbench([])
    corpus = cellfeed.Corpus.from_toml(args.spec)
    loader = cellfeed.Loader(corpus, batch_size=32, block_size=4, fetch_factor=8, split="train")
    report = loader.report(columns=["cell_line"])
    print(report)
    if args.plot:
        report.plot(args.plot)
    rows = np.concatenate([np.asarray(b.rows) for b in loader])
    delivered = loader.delivered()
    assert delivered.tolist() == report.sources["delivered"].tolist(), (delivered, report.sources)
    held_out = set(corpus.rows("val").tolist()) | set(corpus.rows("test").tolist())
    assert held_out.isdisjoint(rows.tolist()), "a held-out cell reached training"
    print(f"\nOne epoch: {len(rows)} cells delivered, { {k: int(v) for k, v in delivered.items()} }; "
          f"{len(held_out)} held-out cells never seen in training.")
    return {"delivered": delivered.to_dict(), "held_out": len(held_out)}


if __name__ == "__main__":
    main()
