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


@pytest.fixture(scope="module")
def shuffle_quality(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "bench"))
    import shuffle_quality

    out = tmp_path_factory.mktemp("shuffle_quality")
    res = shuffle_quality.main(["--data-dir", str(out / "data"), "--out", str(out / "results"), "--quiet"])
    return shuffle_quality, res, out


def test_shuffle_quality_data_is_atlas_ordered_and_split(shuffle_quality):
    """The training files are sorted by their label (read back with anndata), and the
    test cells are 20% of each label's cells, disjoint from the training cells."""
    import anndata as ad
    import numpy as np

    sq, res, out = shuffle_quality
    meta = json.loads((out / "data" / "DONE").read_text())
    for ds, label in (("cellbench", "cell_line"), ("pbmc68k", "cell_type")):
        train, test = ad.read_h5ad(meta[ds]["train"]), ad.read_h5ad(meta[ds]["test"])
        codes = train.obs[label].cat.codes.to_numpy()
        assert np.all(np.diff(codes) >= 0), ds
        assert not set(train.obs_names) & set(test.obs_names)
        assert res["train_cells"][ds] == train.n_obs and res["test_cells"][ds] == test.n_obs
        for c in train.obs[label].cat.categories:
            n_train, n_test = (train.obs[label] == c).sum(), (test.obs[label] == c).sum()
            assert n_test == max(1, round(0.2 * (n_train + n_test))), (ds, c)
        assert res["label_run"][ds] == len(codes) / (1 + np.count_nonzero(np.diff(codes)))


def test_shuffle_quality_summaries_follow_from_the_runs(shuffle_quality):
    """Each relative difference is the mean of the per-seed paired ratios to random, its
    interval a t-interval, the verdict what the interval says; throughput ratios are to
    random in the same round."""
    import numpy as np
    from scipy import stats

    sq, res, _ = shuffle_quality
    for task, (_, _, metrics, higher) in sq.TASKS.items():
        ref = res["runs"][task]["random"]
        assert len(ref) == res["seeds"][task]
        for name, rec in res["quality"][task].items():
            runs = res["runs"][task][name]
            for m in metrics:
                rel = np.array([100 * (r[m] / q[m] - 1) for r, q in zip(runs, ref)])
                h = stats.t.ppf(0.975, len(rel) - 1) * rel.std(ddof=1) / np.sqrt(len(rel))
                r = rec[m]
                assert math.isclose(r["rel_diff_pct"], rel.mean(), abs_tol=1e-9)
                assert np.allclose(r["rel_diff_ci95_pct"], [rel.mean() - h, rel.mean() + h])
                lo, hi = r["harm_ci95_pct"]
                assert math.isclose(lo, -(rel.mean() + h) if higher else rel.mean() - h, abs_tol=1e-9)
                want = ("reference" if name == "random" else "within 1%" if hi <= 1 else
                        "worse by >1%" if lo > 1 else "undecided")
                assert r["verdict"] == want
    for comp, per in res["throughput"].items():
        for name, rec in per.items():
            ratios = [x["cells_per_second"] / y["cells_per_second"]
                      for x, y in zip(rec["rounds"], per["random"]["rounds"])]
            assert math.isclose(rec["ratio_to_random"], float(np.median(ratios)))
            assert rec["cells_per_second"] > 0 and 0 <= rec["plate_entropy_bits"] <= math.log2(14) + 1e-9


def test_shuffle_quality_stream_is_less_diverse_than_random(shuffle_quality):
    """The file order of a sorted file gives batches of (nearly) one label; random
    sampling mixes them: the measure can tell the two apart."""
    _, res, _ = shuffle_quality
    for task in ("cell_line", "cell_type"):
        q = res["quality"][task]
        assert q["stream"]["entropy_bits_mean"] < 0.5 < q["random"]["entropy_bits_mean"]


def test_shuffle_quality_outputs_and_reproducibility(shuffle_quality):
    """The files are written; the same seed gives the same model, bit for bit."""
    sq, res, out = shuffle_quality
    saved = json.loads((out / "results" / "results.json").read_text())
    assert saved["quality"] == json.loads(json.dumps(res["quality"]))
    assert (out / "results" / "table.md").read_text().startswith("Block sampling vs full random")
    assert (out / "results" / "quality_vs_throughput.png").stat().st_size > 0
    meta = json.loads((out / "data" / "DONE").read_text())
    setting = next(s for s in sq.SETTINGS if s[0] == "b16 f1")
    a = sq.train_classifier(meta["pbmc68k"], "cell_type", setting, 1, 1)
    assert a["accuracy"] == res["runs"]["cell_type"]["b16 f1"][1]["accuracy"]
    assert a["macro_f1"] == res["runs"]["cell_type"]["b16 f1"][1]["macro_f1"]


def test_shuffle_quality_macro_f1_is_sklearns():
    import numpy as np
    from sklearn.metrics import f1_score

    sys.path.insert(0, str(ROOT / "bench"))
    import shuffle_quality as sq

    rng = np.random.default_rng(0)
    for _ in range(20):
        truth, pred = rng.integers(0, 6, 50), rng.integers(0, 5, 50)
        assert math.isclose(sq.macro_f1(truth, pred, 7), f1_score(truth, pred, average="macro"))


def test_remote_bench_proxy_counts_what_nginx_serves_and_both_stop(tmp_path):
    """bench/remote_bench.py's servers: a range read through the latency proxy is the
    file's bytes, the proxy counts one request and its body bytes, and both processes stop."""
    import os
    import shutil
    import urllib.request

    if shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"):
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    sys.path.insert(0, str(ROOT / "bench"))
    import remote_bench as rb

    blob = os.urandom(100_000)
    (tmp_path / "a.bin").write_bytes(blob)
    nginx, nginx_port = rb.start_nginx(tmp_path, tmp_path / "run")
    proxy = None
    try:
        proxy, port = rb.start_proxy(nginx_port, 20)
        rb.proxy_call(port, "reset")
        for first in (10, 50_000):  # two requests on one kept-alive connection
            req = urllib.request.Request(f"http://127.0.0.1:{port}/a.bin",
                                         headers={"Range": f"bytes={first}-{first + 999}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 206 and r.read() == blob[first:first + 1000]
        stats = rb.proxy_call(port, "stats")
        assert stats["requests"] == 2 and stats["bytes"] == 2000
    finally:
        rb.stop_process(proxy)
        rb.stop_process(nginx)
    assert nginx.poll() is not None and proxy.poll() is not None


def test_remote_bench_needed_bytes_are_the_chunks_h5py_stores(tmp_path):
    """The "bytes needed" of bench/remote_bench.py: the stored sizes of the X chunks that
    hold the rows, against h5py's own chunk index looked up chunk by chunk."""
    import h5py
    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    import remote_bench as rb
    import tahoe_like

    paths = [tmp_path / "a.h5ad", tmp_path / "b.h5ad"]
    for i, p in enumerate(paths):
        tahoe_like.write_plate(p, i, 150 + 50 * i, "gzip", seed=0)
    tables = rb.chunk_tables("h5ad_gzip", [str(p) for p in paths])
    rows = [0, 3, 149, 150, 299]  # global: file a has 150 rows
    expected = 0
    for p, local in ((paths[0], [0, 3, 149]), (paths[1], [0, 149])):
        with h5py.File(p, "r") as f:
            indptr = f["X/indptr"][:]
            for name in ("data", "indices", "indptr"):
                ds = f["X"][name]
                step = ds.chunks[0]
                if name == "indptr":
                    keys = {k // step for r in local for k in (r, r + 1)}
                else:
                    keys = {k // step for r in local for k in range(indptr[r], indptr[r + 1])}
                expected += sum(ds.id.get_chunk_info_by_coord((k * step,)).size for k in keys)
    assert rb.needed_bytes(tables, np.array(rows)) == expected
