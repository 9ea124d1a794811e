"""The benchmark suite, run at smoke size: it must run end to end and report sane values.
No timing thresholds: speed is measured by bench/run_all.py, not asserted in CI."""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "bench"))
    import run_all

    out = tmp_path_factory.mktemp("bench")
    results = run_all.main(["--smoke", "--loaders", "cellfeed", "h5py", "--no-cold",
                            "--data-dir", str(out / "data"), "--out", str(out / "results")])
    return results, out


def test_random_sampling_entropy_is_the_papers(smoke):
    results, _ = smoke
    assert 3.62 <= results["random_sampling_entropy_bits"] <= 3.63


def test_grid_has_every_cell_with_sane_values(smoke):
    results, _ = smoke
    for comp in ("gzip", "none"):
        grid = results["grid"][comp]
        assert len(grid) == len(results["grid_block_sizes"]) * len(results["grid_fetch_factors"])
        for key, cell in grid.items():
            for who in ("cellfeed", "engine"):
                r = cell[who]
                assert not r.get("error"), (comp, key, who, r.get("error"))
                assert r["cells_per_second"] > 0
                assert 0 <= r["entropy_bits_mean"] <= math.log2(14) + 1e-9
            # The engine replays its own fetches read+decode-only: the floor is a real
            # measurement of the same bytes (positive, and it read what the plan touched).
            eng = cell["engine"]
            assert eng["limit_cells_per_second"] > 0 and eng["limit_bytes_read"] > 0
            assert eng["limit_bytes_decoded"] >= eng["limit_bytes_read"] or comp == "none"


def test_extra_configs_and_warm_cache_checks(smoke):
    results, _ = smoke
    for comp, extra in results["extra"].items():
        rec = extra["cellfeed chunkx16"]
        assert not rec.get("error"), rec.get("error")
        assert rec["config"]["block_size"] == "chunk" and rec["cells_per_second"] > 0
        assert extra["engine chunkx16"]["block_size"] == "chunk"
    checks = results["cache_checks"]
    assert checks and all(c["cached_after"] is None or c["cached_after"] >= c["bytes"] for c in checks)
    for runs in results["sequential_read"].values():
        assert [r["streams"] for r in runs["runs"]][0] == 1


def test_outputs_written(smoke):
    results, out = smoke
    dirs = list((out / "results").iterdir())
    assert len(dirs) == 1
    saved = json.loads((dirs[0] / "results.json").read_text())
    assert saved["cells"] == results["cells"]
    assert (dirs[0] / "table.md").read_text().startswith("Benchmark of")
    assert sorted(p.name for p in dirs[0].glob("*.png")) == ["grid_gzip.png", "grid_none.png"]
    o = results["open_100m"]
    assert o["n_obs"] == 200_000 and o["open_seconds"] > 0
