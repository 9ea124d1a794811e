"""The worked corpus example (examples/corpus_cellbench.py) on the real CellBench data:
its report's counts equal the declaration and no held-out cell reaches training (the
example asserts both); checked here against the declaration's own numbers."""

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))


def test_corpus_example_runs_and_delivers_the_declaration():
    import corpus_cellbench

    out = corpus_cellbench.main([])
    assert out["delivered"] == {"celseq2": 150, "dropseq": 150, "celseq2_5cl": 300, "plate3": 0}
    assert out["held_out"] > 300  # plate3 (test) and the H838 cells of the 5-line plates (val)
