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


def test_inputs_bench_runs_and_its_bounds_follow_from_its_times(tmp_path):
    """bench/inputs_bench.py at smoke size, one engine thread: every preset is timed on
    both paths, and the derived bounds are the stated functions of the measured rates."""
    sys.path.insert(0, str(ROOT / "bench"))
    import inputs_bench
    import tahoe_like

    tahoe_like.generate(tmp_path / "plates", 2_000, None)  # 31 batches: 10 warm-up + 4
    r = inputs_bench.main([str(tmp_path / "plates"), "--epochs", "1", "--user-batches", "4",
                           "--threads", "1", "--out", str(tmp_path / "inputs.json")])
    assert json.loads((tmp_path / "inputs.json").read_text())["threads"] == 1
    plain_bps = r["plain"]["batches_per_second"]
    assert set(r["presets"]) == {"aido_cell_rda", "scfoundation_rda", "geneformer_mlm", "scgpt_masked_value"}
    for name, p in r["presets"].items():
        ours, user = p["cellfeed"]["batches_per_second"], p["user_numpy"]["batches_per_second"]
        assert p["cellfeed"]["cells"] == r["plain"]["cells"] == r["cells"], name
        ms = p["ms_per_batch"]
        assert math.isclose(ms["plain"], 1e3 / plain_bps) and math.isclose(ms["user"], 1e3 / user), name
        assert math.isclose(ms["added"], 1e3 / ours - 1e3 / plain_bps, abs_tol=1e-9), name
        assert math.isclose(p["speedup_if_free"], plain_bps / user), name
        if ms["added"] > 0:
            assert math.isclose(p["user_over_added"], ms["user"] / ms["added"]), name
        assert ("bytes_written_vs_memcpy" in p) == name.endswith("_rda"), name
