"""Does block shuffling change what the model learns? Model quality against loader speed,
one point per sampling setting (block size x fetch factor), on real data in atlas order.

    python bench/shuffle_quality.py                      # smoke size, < 1 min (CI)
    nice -n 10 python bench/shuffle_quality.py --full --out bench/results/2026-12-07_shuffle_quality

1. Data. The repository's real files, written with anndata as atlases are stored: sorted
   by their biological grouping, so consecutive rows share a label for long runs.
   - cellbench: the five CellBench sources (data/cellbench; CEL-seq2 and Drop-seq, 1,408
     cells, 5 lung cancer cell lines) concatenated on their common genes and sorted by
     cell line, then source;
   - pbmc68k: scanpy's pbmc68k (data/pbmc68k, UMI counts layer, 700 cells, 10 cell
     types in bulk_labels) sorted by cell type.
   20% of each label's cells (a fixed draw, the same for every run) are written to a
   separate test file; the sorted rest is the training file the loader reads.
2. Models (the examples' own code, imported):
   - mae: examples/pretrain.py's masked-expression transformer with the AIDO.Cell
     read-depth-aware inputs, on cellbench; metric: held-out masked MSE (lower is better),
     on the same masks for every run. The panel is the 1,024 genes with the most counts
     in the training file (not the 19,264-gene panel: far cheaper, the same model), and
     the peak learning rate 1e-2 (pretrain.py: 2e-3 over 1,000 steps; here 432 steps,
     at which 2e-3 still predicts no better than each gene's mean);
   - cell_line: examples/train_cellbench.py's classifier on cellbench;
   - cell_type: the same classifier on pbmc68k's cell types (a harder task).
   Classifier metrics: held-out accuracy and macro-F1 (higher is better).
3. Each setting trains each model for the same number of epochs (so the same steps and
   the same cells) with seeds 0..S-1; seed s gives every setting the same initial weights
   (torch.manual_seed(s)) and the loader seed s. Quality is reported relative to full
   random sampling (block_size=1, fetch_factor=1) of the same seed: the mean of the S
   paired differences and its 95% t-interval. A setting "stays within 1%" of random when
   the interval's harmful end is within 1%; it "is worse by more than 1%" when the whole
   interval is beyond 1%; otherwise the data cannot tell. Per-batch label entropy (the
   scDataset paper's measure) is the mean and sd over every training batch of every seed.
4. Loader-only throughput at each setting on Tahoe-like plates (bench/tahoe_like.py),
   uncompressed and gzip, in rounds that visit every setting; each setting's ratio is to
   random sampling in the same round (median over rounds), with the plate entropy.

torch runs on one thread (torch.set_num_threads(1)) and the quality loaders on one engine
thread: the same command and seeds give the same quality numbers on the same machine
(torch's CPU kernels may differ in the last bits on another CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "bench"))

BATCH = 32  # examples/pretrain.py's batch; fetches of up to 16 batches stay below a training set

# (name, block_size, fetch_factor, shuffle, why it is here)
SETTINGS = [
    ("random", 1, 1, True, "full random sampling: the reference"),
    ("b4 f1", 4, 1, True, ""),
    ("b4 f4", 4, 4, True, ""),
    ("b4 f8", 4, 8, True, "examples' setting (pretrain.py, train_cellbench.py)"),
    ("b4 f16", 4, 16, True, "Loader default"),
    ("b16 f1", 16, 1, True, ""),
    ("b16 f4", 16, 4, True, ""),
    ("b16 f16", 16, 16, True, ""),
    ("b16 f256", 16, 256, True, "scDataset paper's recommendation"),
    ("b64 f1", 64, 1, True, "single-label batches expected"),
    ("b64 f16", 64, 16, True, ""),
    ("chunk f16", "chunk", 16, True, ""),
    ("chunk f256", "chunk", 256, True, "README's advice for gzip files"),
    # "chunk": on the Tahoe-like plates, one block per gzip chunk (~54 cells). The small
    # real files' own chunks hold ~2 (cellbench) and ~17 (pbmc68k) cells, so the quality
    # runs use blocks of CHUNK_CELLS, the size chunk blocks have on atlas-sized files.
    ("stream", 1, 1, False, "no shuffle: the file order (sanity check: must hurt)"),
]

CHUNK_CELLS = 54  # docs/SAMPLING.md: ~54 cells per chunk on Tahoe-like plates (measured below)
SMOKE_SETTINGS = ("random", "b16 f1", "chunk f16", "stream")


# -- data ----------------------------------------------------------------------------------
def _split_sorted(adata, label: str, by: list[str], out: Path, name: str) -> dict:
    """Writes NAME_train.h5ad (sorted by `by`, as atlases are) and NAME_test.h5ad (20% of
    each label's cells, a fixed draw) with anndata, gzip-compressed like CELLxGENE files."""
    rng = np.random.default_rng(20261207)  # the split, not the runs
    codes = adata.obs[label].cat.codes.to_numpy()
    test = np.zeros(adata.n_obs, dtype=bool)
    for c in np.unique(codes):
        where = np.flatnonzero(codes == c)
        test[rng.choice(where, size=max(1, round(0.2 * len(where))), replace=False)] = True
    train = adata[~test]
    order = np.lexsort([train.obs[k].cat.codes.to_numpy() for k in reversed(by)])
    paths = {"train": out / f"{name}_train.h5ad", "test": out / f"{name}_test.h5ad"}
    train[order].copy().write_h5ad(paths["train"], compression="gzip")
    adata[test].copy().write_h5ad(paths["test"], compression="gzip")
    return {k: str(v) for k, v in paths.items()}


def prepare_data(out: Path) -> dict:
    """The two atlas-ordered datasets, written once into `out`."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    import cellfeed
    from cellbench_to_h5ad import main as convert_cellbench

    out.mkdir(parents=True, exist_ok=True)
    done = out / "DONE"
    if done.exists():
        return json.loads(done.read_text())
    cb = ad.concat([ad.read_h5ad(p) for p in convert_cellbench([])], join="inner")
    for k in ("cell_line", "source"):
        cb.obs[k] = cb.obs[k].astype(str).astype("category")
    # pbmc68k's counts are a layer of a zarr v3 store whose uns the installed zarr cannot
    # parse; cellfeed reads the layer and obs (tested against zarr in tests/python/test_zarr.py).
    col = cellfeed.open([str(ROOT / "data/pbmc68k/10x_pbmc68k_reduced.zarr.zip")], layer="counts")
    X = sp.csr_matrix(col.read(np.arange(col.n_obs)), dtype=np.float32)
    obs = col.obs(["bulk_labels"]).rename(columns={"bulk_labels": "cell_type"})
    obs.index = pd.Index([f"pbmc68k:{i}" for i in range(col.n_obs)])
    obs["cell_type"] = obs["cell_type"].astype(str).astype("category")
    pb = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(list(col.var_names))))
    meta = {"cellbench": _split_sorted(cb, "cell_line", ["cell_line", "source"], out, "cellbench"),
            "pbmc68k": _split_sorted(pb, "cell_type", ["cell_type"], out, "pbmc68k")}
    done.write_text(json.dumps(meta))
    return meta


def runs_of(codes: np.ndarray) -> float:
    """Mean length of the runs of equal consecutive labels (the file's order)."""
    return len(codes) / (1 + int(np.count_nonzero(codes[1:] != codes[:-1])))


# -- metrics -------------------------------------------------------------------------------
def macro_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean over classes present in truth or pred of 2PR/(P+R) (0 where empty),
    as sklearn.metrics.f1_score(average='macro')."""
    f1 = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (truth == c))
        fp, fn = np.sum((pred == c) & (truth != c)), np.sum((pred != c) & (truth == c))
        if tp + fp + fn == 0:
            continue
        f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


def t_interval(x) -> tuple[float, float, float]:
    """Mean and 95% t-interval of the mean."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - h, m + h


# -- training ------------------------------------------------------------------------------
def loader_for(path: str, setting, seed: int, **kw):
    import cellfeed

    _, b, f, shuffle, _ = setting
    b = CHUNK_CELLS if b == "chunk" else b
    return cellfeed.Loader([path], batch_size=BATCH, block_size=b, fetch_factor=f, shuffle=shuffle,
                           seed=seed, threads=1, **kw)


def train_classifier(paths: dict, label: str, setting, seed: int, epochs: int) -> dict:
    import anndata as ad
    import torch

    from train_cellbench import batch_entropy, classifier, normalize

    torch.manual_seed(seed)
    loader = loader_for(paths["train"], setting, seed, obs=[label], output="torch-dense")
    classes = list(loader.collection.obs([label])[label].cat.categories)
    model = classifier(loader.collection.n_vars, len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    entropies, steps = [], 0
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            y = batch.obs[label].long()
            entropies.append(batch_entropy(y.numpy()))
            loss = loss_fn(model(normalize(batch.X)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    # The test cells, read with anndata (not the code under study).
    test = ad.read_h5ad(paths["test"])
    if list(test.obs[label].cat.categories) != classes:
        raise ValueError(f"{paths['test']}: categories of {label} differ from the training file's")
    model.eval()
    with torch.no_grad():
        pred = model(normalize(torch.from_numpy(test.X.toarray()))).argmax(1).numpy()
    truth = test.obs[label].cat.codes.to_numpy()
    return {"accuracy": float((pred == truth).mean()), "macro_f1": macro_f1(truth, pred, len(classes)),
            "steps": steps, "entropies": entropies}


def mae_pipeline(train_path: str, n_genes: int):
    """The AIDO.Cell RDA inputs on the n_genes genes with the most counts in the file."""
    import anndata as ad

    from cellfeed.inputs import aido_cell_rda
    from cellfeed.vocab import Vocabulary

    a = ad.read_h5ad(train_path)
    totals = np.asarray(a.X.sum(axis=0)).ravel()
    top = np.sort(np.argsort(-totals, kind="stable")[:n_genes])  # file order
    vocab = Vocabulary.from_genes(a.var_names[top], by="ensembl", name=f"cellbench_top{n_genes}")
    return dataclasses.replace(aido_cell_rda(), vocab=vocab)


EVAL_SEED = 7  # the held-out cells' thinning and masks: the same for every run


def train_mae(paths: dict, label: str, setting, seed: int, epochs: int, n_genes: int,
              lr: float = 1e-2) -> dict:
    import torch

    import cellfeed
    from pretrain import MaskedExpressionTransformer, evaluate, train_step
    from train_cellbench import batch_entropy

    torch.manual_seed(seed)
    inputs = mae_pipeline(paths["train"], n_genes)
    loader = loader_for(paths["train"], setting, seed, obs=[label], inputs=inputs)
    model = MaskedExpressionTransformer(len(inputs.vocab))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    total = epochs * len(loader)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1)
    gene_sum = torch.zeros(len(inputs.vocab), dtype=torch.float64)
    gene_n = torch.zeros(len(inputs.vocab), dtype=torch.float64)
    entropies, steps = [], 0
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            entropies.append(batch_entropy(np.asarray(batch.obs[label])))
            train_step(model, opt, sched, batch, "cpu", gene_sum, gene_n)
            steps += 1
    test = cellfeed.Loader([paths["test"]], batch_size=256, block_size=1, shuffle=False,
                           seed=EVAL_SEED, threads=1, inputs=inputs)
    r = evaluate(model, test, "cpu", (gene_sum / gene_n.clamp_min(1)).float())
    return {"masked_mse": r["mse"], "baseline_mse": r["baseline_mse"], "steps": steps,
            "entropies": entropies}


TASKS = {  # name: (dataset, label, metrics, higher is better)
    "mae": ("cellbench", "cell_line", ["masked_mse"], False),
    "cell_line": ("cellbench", "cell_line", ["accuracy", "macro_f1"], True),
    "cell_type": ("pbmc68k", "cell_type", ["accuracy", "macro_f1"], True),
}


def run_quality(data: dict, settings, seeds: dict, epochs: dict, n_genes: int, log,
                parts: Path, only: str | None = None) -> dict:
    """runs[task][setting] = list over seeds of each run's metrics. Each (task, seed) is a
    part saved under `parts`, reused by a later run of the same configuration, so parts
    can run as separate processes (--only TASK:SEED) before the run that collects them."""
    runs = {t: {s[0]: [] for s in settings} for t in TASKS}
    config = {"epochs": epochs, "n_genes": n_genes, "settings": [list(s[:4]) for s in settings],
              "batch": BATCH, "chunk_cells": CHUNK_CELLS}
    for task, (ds, label, _, _) in TASKS.items():
        for seed in range(seeds[task]):
            part = parts / f"{task}_seed{seed}.json"
            if only is not None and f"{task}:{seed}" not in only.split(","):
                continue
            if part.exists() and json.loads(part.read_text())["config"] == json.loads(json.dumps(config)):
                done = json.loads(part.read_text())["runs"]
            else:
                done = {}
                for s in settings:
                    t0 = time.process_time()
                    if task == "mae":
                        r = train_mae(data[ds], label, s, seed, epochs[task], n_genes)
                    else:
                        r = train_classifier(data[ds], label, s, seed, epochs[task])
                    r["cpu_seconds"] = time.process_time() - t0
                    done[s[0]] = r
                    log(f"  {task:9s} seed {seed} {s[0]:11s} "
                        + " ".join(f"{m}={r[m]:.4f}" for m in TASKS[task][2])
                        + f" entropy={np.mean(r['entropies']):.3f} ({r['cpu_seconds']:.1f} CPU s)")
                parts.mkdir(parents=True, exist_ok=True)
                part.write_text(json.dumps({"config": config, "runs": done}))
            for s in settings:
                runs[task][s[0]].append(done[s[0]])
    return runs


def summarize_quality(runs: dict, settings, train_cells: dict) -> dict:
    """Per task, setting and metric: the mean, the paired relative difference to random
    (%) with its 95% t-interval, the harm interval (positive = worse) and a verdict."""
    out = {}
    for task, (ds, _, metrics, higher) in TASKS.items():
        out[task] = {}
        ref = runs[task]["random"]
        for name, b, f, shuffle, why in settings:
            rs = runs[task][name]
            ent = np.concatenate([r["entropies"] for r in rs])
            rec = {"block_size": b, "fetch_factor": f, "shuffle": shuffle, "note": why,
                   "fetch_cells": BATCH * f if shuffle else None,
                   "fetch_covers_train_set": bool(shuffle and BATCH * f >= train_cells[ds]),
                   "entropy_bits_mean": float(ent.mean()), "entropy_bits_sd": float(ent.std()),
                   "steps": rs[0]["steps"]}
            for m in metrics:
                vals = [r[m] for r in rs]
                rel = [100.0 * (r[m] / q[m] - 1.0) for r, q in zip(rs, ref)]  # paired by seed
                mean, lo, hi = t_interval(rel)
                harm = (-hi, -lo) if higher else (lo, hi)  # worse-than-random, %
                verdict = ("within 1%" if harm[1] <= 1.0 else
                           "worse by >1%" if harm[0] > 1.0 else "undecided")
                rec[m] = {"mean": float(np.mean(vals)), "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                          "values": vals, "rel_diff_pct": mean, "rel_diff_ci95_pct": [lo, hi],
                          "harm_ci95_pct": list(harm), "verdict": verdict if name != "random" else "reference"}
            out[task][name] = rec
    return out


# -- throughput ----------------------------------------------------------------------------
def measure_loader(paths, setting, seconds: float, threads) -> dict:
    """Loader-only cells/s over at least `seconds` and two whole fetches after the first
    fetch (a warm-up; on files too small for that, half an epoch), capped at one epoch;
    plate entropy of the batches timed."""
    import cellfeed
    from train_cellbench import batch_entropy

    _, b, f, shuffle, _ = setting
    loader = cellfeed.Loader(paths, batch_size=BATCH, block_size=b, fetch_factor=f, shuffle=shuffle,
                             seed=0, obs=["plate"], threads=threads)
    loader.set_epoch(0)
    it = iter(loader)
    for _ in range(min(f, len(loader) // 2)):  # the first fetch: opening, first reads
        next(it)
    cells, batches, ent = 0, 0, []
    t0 = time.perf_counter()
    for batch in it:
        cells += len(batch.rows)
        batches += 1
        ent.append(batch_entropy(np.asarray(batch.obs["plate"])))
        if batches >= 2 * f and time.perf_counter() - t0 >= seconds:
            break
    dt = time.perf_counter() - t0
    return {"cells": cells, "seconds": dt, "cells_per_second": cells / dt,
            "plate_entropy_bits": float(np.mean(ent))}


TAHOE_CELLS_PER_CHUNK: dict = {}


def _cells_per_chunk(paths) -> float:
    """Mean cells per chunk of X/data over the files (the size of a chunk block)."""
    import h5py

    cells = values = chunk = 0
    for p in paths:
        with h5py.File(p, "r") as f:
            d = f["X/data"]
            cells, values, chunk = cells + f["X"].attrs["shape"][0], values + d.shape[0], d.chunks[0]
    return chunk / (values / cells)


def run_throughput(data_dir: Path, settings, cells: int, rounds: int, seconds: float, threads, log,
                   parts: Path) -> dict:
    import tahoe_like

    config = {"cells": cells, "rounds": rounds, "seconds": seconds, "batch": BATCH,
              "settings": [list(s[:4]) for s in settings]}
    part = parts / "throughput.json"
    if part.exists() and json.loads(part.read_text())["config"] == json.loads(json.dumps(config)):
        saved = json.loads(part.read_text())
        TAHOE_CELLS_PER_CHUNK.update(saved["cells_per_chunk"])
        return saved["throughput"]
    out = {}
    for comp in ("none", "gzip"):
        d = data_dir / f"tahoe_like_{cells}_{comp}"
        for _ in range(3600):  # another process of this program writing them: wait
            if (d / "DONE").exists() or not d.exists():
                break
            time.sleep(1)
        if not (d / "DONE").exists():
            log(f"writing {cells:,} Tahoe-like cells ({comp}) to {d}/ (once)")
            tahoe_like.generate(d, cells, None if comp == "none" else comp)
            (d / "DONE").write_text("ok\n")
        paths = sorted(str(p) for p in d.glob("*.h5ad"))
        TAHOE_CELLS_PER_CHUNK[comp] = _cells_per_chunk(paths)
        for p in paths:  # into the page cache for every setting alike
            with open(p, "rb") as fh:
                while fh.read(1 << 24):
                    pass
        per = {s[0]: [] for s in settings}
        for r in range(rounds):
            for s in settings:
                per[s[0]].append(measure_loader(paths, s, seconds, threads))
            log(f"  {comp} round {r + 1}/{rounds}: "
                + ", ".join(f"{s[0]} {per[s[0]][-1]['cells_per_second']:,.0f}" for s in settings))
        out[comp] = {}
        for s in settings:
            ratios = [x["cells_per_second"] / ref["cells_per_second"] for x, ref in zip(per[s[0]], per["random"])]
            out[comp][s[0]] = {"cells_per_second": float(np.median([x["cells_per_second"] for x in per[s[0]]])),
                               "ratio_to_random": float(np.median(ratios)),
                               "plate_entropy_bits": float(np.mean([x["plate_entropy_bits"] for x in per[s[0]]])),
                               "rounds": per[s[0]]}
    parts.mkdir(parents=True, exist_ok=True)
    part.write_text(json.dumps({"config": config, "throughput": out, "cells_per_chunk": TAHOE_CELLS_PER_CHUNK}))
    return out


# -- report --------------------------------------------------------------------------------
def markdown(res: dict) -> str:
    q, tp = res["quality"], res["throughput"]
    lines = [f"Block sampling vs full random: seeds {res['seeds']}, batch {BATCH}, epochs {res['epochs']} "
             f"(cellbench: {res['train_cells']['cellbench']} train / {res['test_cells']['cellbench']} test cells, "
             f"mean run of one cell line {res['label_run']['cellbench']:.0f} rows; pbmc68k: "
             f"{res['train_cells']['pbmc68k']} / {res['test_cells']['pbmc68k']}, run {res['label_run']['pbmc68k']:.0f}). "
             "Quality: mean paired difference to random in % [95% t-interval]; "
             "+ is better for accuracy/F1, - is better for MSE. Loader-only cells/s on "
             f"{res['tahoe_cells']:,} Tahoe-like cells (x random in the same round). 'chunk': one block per "
             f"gzip chunk in the loader-only runs ({res['tahoe_cells_per_chunk'].get('gzip', 0):.0f} cells on these plates), "
             f"blocks of {res['quality_chunk_block_cells']} cells in the quality runs. '(all)': the fetch holds the "
             "whole training set, a uniform shuffle by construction.", "",
             "| setting | fetch cells | cell-line entropy (bits) | MAE masked MSE | cell line acc | cell line F1 "
             "| cell type acc | cell type F1 | cells/s none | cells/s gzip | Tahoe plate entropy (bits) | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in q["mae"]:
        e = q["cell_line"][name]
        cells = []
        for task, m in (("mae", "masked_mse"), ("cell_line", "accuracy"), ("cell_line", "macro_f1"),
                        ("cell_type", "accuracy"), ("cell_type", "macro_f1")):
            r = q[task][name][m]
            if name == "random":
                cells.append(f"{r['mean']:.4f}")
            else:
                lo, hi = r["rel_diff_ci95_pct"]
                cells.append(f"{r['rel_diff_pct']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        verdicts = [q[t][name][m]["verdict"] for t, m in (("mae", "masked_mse"), ("cell_line", "accuracy"),
                    ("cell_line", "macro_f1"), ("cell_type", "accuracy"), ("cell_type", "macro_f1"))]
        verdict = ("reference" if name == "random" else "worse by >1%" if "worse by >1%" in verdicts
                   else "within 1%" if all(v == "within 1%" for v in verdicts) else "undecided")
        fetch = "file order" if not e["shuffle"] else f"{e['fetch_cells']}" + (" (all)" if e["fetch_covers_train_set"] else "")
        tps = [f"{tp[c][name]['cells_per_second']:,.0f} ({tp[c][name]['ratio_to_random']:.1f}x)" for c in ("none", "gzip")]
        lines.append(f"| {name} | {fetch} | {e['entropy_bits_mean']:.2f} ± {e['entropy_bits_sd']:.2f} | "
                     + " | ".join(cells) + f" | {tps[0]} | {tps[1]} | {tp['gzip'][name]['plate_entropy_bits']:.2f} | {verdict} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q, tp = res["quality"], res["throughput"]
    panels = [("mae", "masked_mse", "MAE: held-out masked MSE"), ("cell_line", "macro_f1", "cell line: macro-F1"),
              ("cell_type", "macro_f1", "cell type: macro-F1")]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), sharex="row")
    for row, comp in enumerate(("none", "gzip")):
        for col, (task, m, title) in enumerate(panels):
            ax = axes[row, col]
            ax.axhspan(-1, 1, color="0.9", zorder=0, label="within 1% of random")
            for name, rec in q[task].items():
                r = rec[m]
                harm_mid = -r["rel_diff_pct"] if TASKS[task][3] else r["rel_diff_pct"]
                lo, hi = r["harm_ci95_pct"] if name != "random" else (0.0, 0.0)
                x = tp[comp][name]["cells_per_second"]
                color = "k" if name == "random" else "tab:red" if not rec["shuffle"] else \
                    "tab:purple" if rec["block_size"] == "chunk" else "tab:blue"
                ax.errorbar([x], [harm_mid], yerr=[[harm_mid - lo], [hi - harm_mid]], fmt="o", color=color,
                            ms=4, capsize=2, lw=1)
                ax.annotate(name, (x, harm_mid), fontsize=6.5, xytext=(3, 2), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_yscale("symlog", linthresh=5)
            lo_y, hi_y = ax.get_ylim()
            ax.set_yticks([t for t in (-50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50, 100) if lo_y <= t <= hi_y])
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{title} ({'uncompressed' if comp == 'none' else 'gzip'} plates)", fontsize=9)
            if col == 0:
                ax.set_ylabel("worse than random, % (95% CI)")
            ax.set_xlabel(f"loader-only cells/s, Tahoe-like {comp}")
    seeds = ", ".join(f"{t} {n}" for t, n in res["seeds"].items())
    fig.suptitle(f"Quality vs loader speed per sampling setting (seeds: {seeds}; "
                 f"batch {BATCH}; {res['machine']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the published run (else smoke size)")
    ap.add_argument("--seeds", type=int, help="classifier seeds per setting (full: 5, smoke: 2)")
    ap.add_argument("--mae-seeds", type=int, help="masked-expression seeds per setting (full: 3, smoke: 2)")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data" / "shuffle_quality")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "shuffle_quality")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--only", help="run some parts and save them under OUT/parts: TASK:SEED,... (e.g. mae:0,mae:1) "
                                   "and/or throughput; a later run without --only collects the parts")
    ap.add_argument("--replot", action="store_true", help="rewrite table.md and the plot from --out's results.json")
    args = ap.parse_args(argv)
    if args.replot:
        res = json.loads((args.out / "results.json").read_text())
        (args.out / "table.md").write_text(markdown(res))
        plot(res, args.out / "quality_vs_throughput.png")
        return res
    import torch

    torch.set_num_threads(1)
    full = args.full
    cl_seeds = args.seeds or (5 if full else 2)
    seeds = {"mae": args.mae_seeds or (3 if full else 2), "cell_line": cl_seeds, "cell_type": cl_seeds}
    epochs = {"mae": 12, "cell_line": 4, "cell_type": 8} if full else {"mae": 1, "cell_line": 1, "cell_type": 1}
    n_genes = 1024 if full else 256
    tahoe_cells = 100_000 if full else 1_000
    settings = SETTINGS if full else [s for s in SETTINGS if s[0] in SMOKE_SETTINGS]
    rounds, seconds = (3, 3.0) if full else (1, 0.05)

    def log(msg):
        if not args.quiet:
            print(msg, flush=True)

    t_start, c_start = time.perf_counter(), time.process_time()
    data = prepare_data(args.data_dir)
    import anndata as ad

    import h5py

    train_cells, test_cells, label_run, cells_per_chunk = {}, {}, {}, {}
    for ds, label in (("cellbench", "cell_line"), ("pbmc68k", "cell_type")):
        tr = ad.read_h5ad(data[ds]["train"], backed="r")
        train_cells[ds], test_cells[ds] = tr.n_obs, ad.read_h5ad(data[ds]["test"], backed="r").n_obs
        label_run[ds] = runs_of(tr.obs[label].cat.codes.to_numpy())
        tr.file.close()
        with h5py.File(data[ds]["train"], "r") as f:  # what block_size="chunk" means here
            d = f["X/data"]
            cells_per_chunk[ds] = d.chunks[0] / (d.shape[0] / train_cells[ds])
    log(f"data: {train_cells} train cells, {test_cells} test cells, mean label run {label_run}, "
        f"cells per gzip chunk {cells_per_chunk}")
    runs = run_quality(data, settings, seeds, epochs, n_genes, log, args.out / "parts", args.only)
    if args.only:
        if "throughput" in args.only.split(","):
            run_throughput(args.data_dir, settings, tahoe_cells, rounds, seconds, None, log, args.out / "parts")
        return {}
    quality = summarize_quality(runs, settings, train_cells)
    log("throughput (loader only, Tahoe-like):")
    throughput = run_throughput(args.data_dir, settings, tahoe_cells, rounds, seconds, None, log,
                                args.out / "parts")
    res = {"command": "python bench/shuffle_quality.py" + (" --full" if full else "")
                      + (f" --seeds {args.seeds}" if args.seeds else "")
                      + (f" --mae-seeds {args.mae_seeds}" if args.mae_seeds else ""),
           "full": full, "seeds": seeds, "epochs": epochs, "batch_size": BATCH, "mae_genes": n_genes,
           "eval_seed": EVAL_SEED, "train_cells": train_cells, "test_cells": test_cells, "label_run": label_run,
           "cells_per_chunk": cells_per_chunk, "quality_chunk_block_cells": CHUNK_CELLS,
           "tahoe_cells_per_chunk": dict(TAHOE_CELLS_PER_CHUNK),
           "tahoe_cells": tahoe_cells, "torch_threads": torch.get_num_threads(), "quality_loader_threads": 1,
           "throughput_loader_threads": "default (one per core)",
           "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
           "python": platform.python_version(), "torch": torch.__version__,
           "settings": [{"name": s[0], "block_size": s[1], "fetch_factor": s[2], "shuffle": s[3], "note": s[4]}
                        for s in settings],
           "quality": quality, "throughput": throughput,
           "runs": {t: {s: [{k: v for k, v in r.items() if k != "entropies"} for r in rs]
                        for s, rs in runs[t].items()} for t in runs}}
    res["wall_seconds"] = time.perf_counter() - t_start
    res["cpu_seconds"] = time.process_time() - c_start  # of this process (parts may have run apart)
    res["quality_runs_cpu_seconds"] = sum(r["cpu_seconds"] for t in runs for rs in runs[t].values() for r in rs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    table = markdown(res)
    (args.out / "table.md").write_text(table)
    plot(res, args.out / "quality_vs_throughput.png")
    log("\n" + table)
    log(f"{res['wall_seconds']:.0f} s wall, {res['cpu_seconds']:.0f} CPU s; written to {args.out}/")
    return res


if __name__ == "__main__":
    main()
