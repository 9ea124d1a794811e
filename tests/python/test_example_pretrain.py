"""The main job (examples/pretrain.py) in a reduced form: the same code path with fewer
steps. The loss decreases; each whole epoch delivers the declared cells per source, and
those equal the TOML declaration read here with tomllib; no validation or held-out cell is
trained on (their rows come from the corpus, the trained rows from the batches); the same
seed gives the same loss curve."""

import json
import sys
import tomllib
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))


def test_pretrain_job_reduced(tmp_path):
    import pretrain

    spec = tomllib.loads((EXAMPLES / "pretrain_corpus.toml").read_text())
    declared = {s["name"]: s.get("cells", 0) for s in spec["source"]}
    held_out = [s["name"] for s in spec["source"] if s.get("split") == "test"]
    assert held_out and all(declared[h] == 0 for h in held_out)

    a = pretrain.main(["--steps", "40", "--batch-size", "64", "--quiet", "--out", str(tmp_path / "a")])
    assert a["loss_last"] < 0.8 * a["loss_first"], (a["loss_first"], a["loss_last"])
    assert a["declared_cells_per_source"] == declared
    assert a["cells_per_source_of_each_whole_epoch"], "40 steps of 64 cover the first epoch (32 batches)"
    for epoch in a["cells_per_source_of_each_whole_epoch"]:
        assert epoch == declared
    assert a["held_out_cells_trained_on"] == {"val": 0, "test": 0}
    assert a["evaluation"]["test"]["cells"] == 225  # every Drop-seq cell passes QC
    for name in ("metrics.json", "loss_curve.json", "loss_curve.png", "corpus_report.md",
                 "corpus_report.json", "corpus_report.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0, name
    # Independently of the corpus's split code: no trained row lies in the Drop-seq file.
    import cellfeed
    import numpy as np

    col = cellfeed.Corpus.from_toml(EXAMPLES / "pretrain_corpus.toml").collection
    i = [Path(f).name for f in col.files].index("sc_dropseq.h5ad")
    rows = np.load(tmp_path / "a" / "trained_rows.npy")
    assert len(rows) > 1000 and not ((rows >= col.file_offsets[i]) & (rows < col.file_offsets[i + 1])).any()
    report = json.loads((tmp_path / "a" / "corpus_report.json").read_text())
    assert {r["source"]: r["delivered"] for r in report["sources"]} == declared

    b = pretrain.main(["--steps", "40", "--batch-size", "64", "--quiet", "--out", str(tmp_path / "b")])
    curve_a = json.loads((tmp_path / "a" / "loss_curve.json").read_text())
    curve_b = json.loads((tmp_path / "b" / "loss_curve.json").read_text())
    assert curve_a == curve_b and a["loss_curve_sha256_16"] == b["loss_curve_sha256_16"]


def test_pretrain_job_at_scale_path(tmp_path, monkeypatch):
    """`--tahoe N` (the atlas-scale command of docs/tutorials/pretrain.md) on a few thousand cells: only the corpus
    changes; the held-out plate and cell line are never trained on (checked against the
    plate file's rows and the cell_line column read with anndata)."""
    import anndata as ad
    import numpy as np
    import pretrain

    import cellfeed

    a = pretrain.main(["--tahoe", "3000", "--steps", "8", "--quiet", "--out", str(tmp_path)])
    assert a["corpus"].endswith("pretrain_tahoe.toml")
    col = cellfeed.Corpus.from_toml(EXAMPLES / "pretrain_tahoe.toml").collection
    rows = np.load(tmp_path / "trained_rows.npy")
    names = [Path(f).name for f in col.files]
    i = names.index("plate14.h5ad")
    assert not ((rows >= col.file_offsets[i]) & (rows < col.file_offsets[i + 1])).any()
    lines = np.concatenate([ad.read_h5ad(f, backed="r").obs["cell_line"].astype(str).to_numpy() for f in col.files])
    assert len(rows) == 8 * 32 and not (lines[rows] == "CVCL_0049").any()


def test_pretrain_preempted_and_resumed(tmp_path):
    """examples/pretrain.py stopped by a real SIGTERM mid-epoch (it saves at the next step
    and exits 0), then --resume: the loss curve continues exactly as an uninterrupted run's
    (same steps, same batches, same model), and every whole epoch still delivers the
    declared cells per source. All three runs are fresh processes alike."""
    import os
    import signal
    import subprocess
    import time

    script = str(EXAMPLES / "pretrain.py")
    common = ["--steps", "40", "--batch-size", "64", "--quiet", "--eval-cells", "64"]
    env = dict(os.environ, OMP_NUM_THREADS="2")

    def run(out, *extra, stop_after_checkpoint=False):
        cmd = [sys.executable, script, *common, "--out", str(out), *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if stop_after_checkpoint:  # the periodic checkpoint at step 10 marks "mid-epoch"
            ckpt = out / "checkpoint.pt"
            deadline = time.monotonic() + 600
            while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
        text = proc.communicate(timeout=900)[0]
        assert proc.returncode == 0, text[-3000:]
        return text

    run(tmp_path / "full")
    text = run(tmp_path / "cut", "--checkpoint-every", "10", stop_after_checkpoint=True)
    assert "Stopped by signal 15" in text, text[-2000:]
    import torch
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    stopped = saved["run"]["step"]
    assert 10 <= stopped < 32, "stopped inside the first epoch (32 batches of 64)"
    assert saved["loader"]["batches_yielded"] == stopped
    text = run(tmp_path / "cut", "--resume")
    assert f"Resumed from {tmp_path / 'cut' / 'checkpoint.pt'} at step {stopped}" in text
    full = json.loads((tmp_path / "full" / "loss_curve.json").read_text())
    cut = json.loads((tmp_path / "cut" / "loss_curve.json").read_text())
    assert len(cut) == len(full) == 40
    assert cut == full, "the resumed run's loss curve differs from the uninterrupted one"
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    spec = tomllib.loads((EXAMPLES / "pretrain_corpus.toml").read_text())
    declared = {s["name"]: s.get("cells", 0) for s in spec["source"]}
    assert b["cells_per_source_of_each_whole_epoch"] == a["cells_per_source_of_each_whole_epoch"]
    for epoch in b["cells_per_source_of_each_whole_epoch"]:
        assert epoch == declared
