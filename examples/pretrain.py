"""The main job: pretrain a small foundation model on a declared corpus of real data.

    python examples/pretrain.py [--steps 1000] [--corpus examples/pretrain_corpus.toml]

1. Declares the training corpus in examples/pretrain_corpus.toml: five real sources
   (three CellBench CEL-seq2 sets, a Cell Ranger PBMC matrix; Ensembl IDs and symbols,
   different gene sets), one QC filter, exact per-source counts, a cell-level validation
   split, and a whole source (Drop-seq) held out as test. Prints what the corpus holds.
2. Streams it through cellfeed with the AIDO.Cell read-depth-aware (RDA) inputs, computed
   on the engine's threads: every cell mapped onto the 19,264-gene panel, half of them
   binomially thinned with a Beta(2,2) rate, normalized to 1e4, log1p, the T and S depth
   tokens, 30% of nonzero and 3% of zero positions masked.
3. Trains a masked-expression transformer (defined below, ~40 lines) to reconstruct the
   high-depth cell at the masked positions (MSE), for a fixed number of steps, on the GPU
   when there is one, else on the CPU.
4. Writes to --out (default results/pretrain): the corpus report (markdown, JSON, PNG),
   the loss curve, the masked-reconstruction error on the validation cells of the training
   sources and on the held-out source (against a per-gene-mean baseline), the loader's
   throughput and the share of step time spent waiting on it, and the seed and corpus
   fingerprint that reproduce the run. The same seed gives the same loss curve.

To scale up, change only the corpus file: point its sources at your h5ad files.

Preemption: SIGTERM or SIGUSR1 (SLURM's requeue signal) saves the run after the current
step to --checkpoint (default OUT/checkpoint.pt; also every --checkpoint-every steps) and
exits 0; `--resume` continues it: the same loss curve as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

# torch's OpenMP threads sleep at barriers instead of spinning: with another process (or
# the loader's thread) on a core, spinning threads halved the job's speed (bench/threads_bench.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from torch import nn
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cellfeed  # noqa: E402
import cellfeed.elastic  # noqa: E402
from cellfeed.inputs import aido_cell_rda  # noqa: E402


# -- the model ---------------------------------------------------------------------------
class MaskedExpressionTransformer(nn.Module):
    """A small masked-expression transformer with AIDO.Cell / scFoundation depth tokens.

    The panel's genes are cut into patches of `patch` genes; each patch (its values, which
    positions are masked, which genes the cell's file measures) becomes one token, so a
    19,264-gene cell is 301 tokens plus the T and S depth tokens. The head predicts every
    gene's value at the target depth T (a per-gene bias plus what the cell's context
    adds); the loss reads the masked positions only.
    """

    def __init__(self, n_genes: int, patch: int = 64, dim: int = 64, depth: int = 2, heads: int = 4):
        super().__init__()
        self.n_genes, self.patch = n_genes, patch
        self.n_patches = math.ceil(n_genes / patch)
        self.embed = nn.Linear(3 * patch, dim)
        self.position = nn.Parameter(torch.randn(self.n_patches + 2, dim) * 0.02)
        self.depth_embed = nn.Linear(1, dim)  # T and S (log10 depths), told apart by position
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, patch)
        self.gene_bias = nn.Parameter(torch.zeros(n_genes))  # each gene's typical value

    def forward(self, values, present, masked):
        g, b = self.n_genes, values.shape[0]
        pad = self.n_patches * self.patch - g
        x = values[:, :g] * (present & ~masked)  # masked and unmeasured values are hidden
        channels = torch.stack([x, masked.float(), present.float()], dim=-1)  # [b, g, 3]
        channels = nn.functional.pad(channels, (0, 0, 0, pad))
        tokens = self.embed(channels.view(b, self.n_patches, self.patch * 3).reshape(b, self.n_patches, -1))
        depth = self.depth_embed(values[:, g:g + 2].unsqueeze(-1))  # [b, 2, dim]
        h = torch.cat([depth, tokens], dim=1) + self.position
        h = self.encoder(h)
        return self.head(h[:, 2:]).reshape(b, -1)[:, :g] + self.gene_bias


def masked_mse(pred, target, where):
    w = where.float()
    return ((pred - target) ** 2 * w).sum() / w.sum().clamp_min(1.0)


# -- the job -----------------------------------------------------------------------------
def tensors(batch, device):
    t = batch.inputs
    g = t["target"].shape[1]
    present = t["attention_mask"][:, :g]
    masked = t["mask"][:, :g]
    return (t["values"].to(device, non_blocking=True), present.to(device, non_blocking=True),
            masked.to(device, non_blocking=True), t["target"].to(device, non_blocking=True))


def train_step(model, opt, sched, batch, device, gene_sum, gene_n):
    """One optimizer step on the batch's masked positions; adds the batch's targets to the
    per-gene sums of the mean baseline. Returns the loss."""
    values, present, masked, target = tensors(batch, device)
    loss = masked_mse(model(values, present, masked), target, present & masked)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    with torch.no_grad():
        gene_sum += (target * present).sum(0, dtype=torch.float64)
        gene_n += present.sum(0, dtype=torch.float64)
    return loss


@torch.no_grad()
def evaluate(model, loader, device, gene_mean, max_cells: int = 0):
    """Masked-reconstruction MSE of the model and of the per-gene-mean baseline, over a
    split's cells, or the first max_cells of its seeded shuffle (fixed masks and
    thinning: the loader's seed and epoch 0)."""
    model.eval()
    sums = {"model": 0.0, "baseline": 0.0, "positions": 0.0, "cells": 0}
    loader.set_epoch(0)
    for batch in loader:
        if max_cells and sums["cells"] >= max_cells:
            break
        values, present, masked, target = tensors(batch, device)
        where = (present & masked).float()
        pred = model(values, present, masked)
        sums["model"] += float(((pred - target) ** 2 * where).sum())
        sums["baseline"] += float(((gene_mean - target) ** 2 * where).sum())
        sums["positions"] += float(where.sum())
        sums["cells"] += len(batch)
    model.train()
    n = max(sums["positions"], 1.0)
    return {"cells": sums["cells"], "masked_positions": int(sums["positions"]),
            "mse": sums["model"] / n, "baseline_mse": sums["baseline"] / n}


def plot_curve(losses, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.6, alpha=0.5, label="step")
    k = max(1, len(losses) // 20)
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("masked MSE (train)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_tahoe_like(out: Path, cells: int) -> None:
    """14 Tahoe-like plates of `cells` cells in all (uncompressed; ~11 KB per cell), once."""
    marker = out / "CELLS"
    if marker.exists() and marker.read_text().strip() == str(cells):
        return
    sys.path.insert(0, str(HERE.parent / "bench"))
    import tahoe_like

    print(f"Writing {cells:,} Tahoe-like cells to {out}/ (once) ...", flush=True)
    for old in out.glob("*.h5ad"):
        old.unlink()
    tahoe_like.generate(out, cells, None)
    marker.write_text(f"{cells}\n")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=str(HERE / "pretrain_corpus.toml"))
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--block-size", type=int, default=4)
    p.add_argument("--fetch-factor", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    p.add_argument("--out", default=str(HERE.parent / "results" / "pretrain"))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--tahoe", type=int, default=0, metavar="CELLS",
                   help="write CELLS Tahoe-like cells to data/tahoe_like/ and train on "
                        "examples/pretrain_tahoe.toml (the same job at scale)")
    p.add_argument("--eval-cells", type=int, default=0,
                   help="evaluate on at most this many cells per split (0 = all)")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch's intra-op threads (0: cellfeed.split_cores' share of the cores)")
    p.add_argument("--engine-threads", type=int, default=0,
                   help="cellfeed's engine threads (0: cellfeed.split_cores' share of the cores)")
    p.add_argument("--checkpoint", default=None,
                   help="where the run is saved on SIGTERM / SIGUSR1 (preemption) and every "
                        "--checkpoint-every steps (default: OUT/checkpoint.pt)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --checkpoint (model, optimizer, loader, curve)")
    args = p.parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    # torch's threads and the engine's share the cores: by default each pool takes a whole
    # core count, and on a small or busy node they then preempt each other (docs/PYTORCH.md).
    torch_threads, engine_threads = cellfeed.split_cores(device.type)
    torch.set_num_threads(args.torch_threads or torch_threads)
    engine_threads = args.engine_threads or engine_threads
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    if args.tahoe:
        args.corpus = str(HERE / "pretrain_tahoe.toml")
        write_tahoe_like(HERE.parent / "data" / "tahoe_like", args.tahoe)
    if "cellbench" in Path(args.corpus).read_text():  # the shipped corpus reads CellBench as h5ad
        from cellbench_to_h5ad import main as convert_cellbench
        convert_cellbench([])

    # 1. The corpus: declared in a file, evaluated (filters, QC, quotas, splits) in C++.
    corpus = cellfeed.Corpus.from_toml(args.corpus)
    corpus.threads = engine_threads
    inputs = aido_cell_rda()
    settings = dict(batch_size=args.batch_size, block_size=args.block_size,
                    fetch_factor=args.fetch_factor, seed=args.seed, inputs=inputs)
    train = cellfeed.Loader(corpus, split="train", **settings)
    report = train.report()
    print(report)
    (out / "corpus_report.md").write_text(report.to_markdown() + "\n")
    (out / "corpus_report.json").write_text(json.dumps(report.to_dict(), indent=1, default=str) + "\n")
    report.plot(out / "corpus_report.png")
    genes = inputs.mapping(corpus.collection).report()
    genes["file"] = [Path(f).name for f in genes["file"]]
    print("\nGenes of each file on the 19,264-gene panel:\n"
          + genes[["file", "file_genes", "mapped", "translated", "vocab_missing"]].to_string(index=False))

    # 2. The model and the optimizer.
    n_genes = len(inputs.vocab)
    model = MaskedExpressionTransformer(n_genes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"\nModel: {n_params:,} parameters, {model.n_patches} gene patches + 2 depth tokens; "
          f"device {device}; {args.steps} steps of {args.batch_size} cells "
          f"({len(train)} batches per epoch)")

    # 3. Training. The per-gene mean of the training targets is the baseline predictor.
    gene_sum = torch.zeros(n_genes, dtype=torch.float64, device=device)
    gene_n = torch.zeros(n_genes, dtype=torch.float64, device=device)
    losses, wait, cells, step, epoch = [], 0.0, 0, 0, 0
    per_epoch_sources = []  # cells per source delivered in each epoch
    seen = np.zeros(corpus.collection.n_obs, dtype=bool)  # rows trained on
    # Preemption: SIGTERM / SIGUSR1 stop the run after the current step, saved; --resume
    # continues it (the loader from the last consumed batch: docs/PYTORCH.md).
    ckpt_path = Path(args.checkpoint or out / "checkpoint.pt")
    preemption = cellfeed.elastic.Preemption()
    resumed = False
    if args.resume:
        saved = torch.load(ckpt_path, weights_only=False, map_location=device)
        for name, obj in (("model", model), ("optimizer", opt), ("scheduler", sched)):
            obj.load_state_dict(saved[name])
        run = saved["run"]
        losses, cells, step, epoch = run["losses"], run["cells"], run["step"], run["epoch"]
        per_epoch_sources = [np.asarray(c, dtype=np.int64) for c in run["per_epoch_sources"]]
        seen[run["seen"]] = True
        gene_sum, gene_n = run["gene_sum"].to(device), run["gene_n"].to(device)
        train.load_state_dict(saved["loader"])
        resumed = True
        print(f"Resumed from {ckpt_path} at step {step} (epoch {epoch}, "
              f"{saved['loader']['batches_yielded']} batches of it consumed).")

    def save(batch):
        run = {"losses": losses, "cells": cells, "step": step, "epoch": epoch,
               "per_epoch_sources": [c.tolist() for c in per_epoch_sources],
               "seen": np.flatnonzero(seen), "gene_sum": gene_sum.cpu(), "gene_n": gene_n.cpu()}
        cellfeed.elastic.save_checkpoint(ckpt_path, train, after=batch, model=model, optimizer=opt,
                                         scheduler=sched, run=run)

    bar = tqdm(total=args.steps, initial=step, disable=args.quiet, unit="step", dynamic_ncols=True)
    t0 = time.perf_counter()
    while step < args.steps:
        if not resumed:
            train.set_epoch(epoch)
            per_epoch_sources.append(np.zeros(len(corpus.source_names), dtype=np.int64))
        resumed = False
        it = iter(train)
        while step < args.steps:
            w0 = time.perf_counter()
            batch = next(it, None)
            wait += time.perf_counter() - w0
            if batch is None:
                break
            per_epoch_sources[-1] += np.bincount(np.asarray(batch.source), minlength=len(corpus.source_names))
            seen[np.asarray(batch.rows)] = True
            loss = train_step(model, opt, sched, batch, device, gene_sum, gene_n)
            losses.append(float(loss.detach()))
            cells += len(batch)
            step += 1
            elapsed = time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.4f}", cells_s=f"{cells / elapsed:,.0f}")
            every = args.checkpoint_every and step % args.checkpoint_every == 0
            if preemption.should_stop() or every:
                save(batch)
            if preemption.requested:
                bar.close()
                print(f"\nStopped by signal {preemption.received} after step {step}; saved to "
                      f"{ckpt_path}. Continue with --resume.")
                return {"preempted_at_step": step, "checkpoint": str(ckpt_path)}
        epoch += 1
    bar.close()
    preemption.close()
    train_s = time.perf_counter() - t0
    # The loader alone, same settings and inputs, over up to 200 batches of a fresh epoch
    # (the first batch, which waits for the first fetch, included).
    train.set_epoch(epoch)
    n_alone, c_alone, a0 = 0, 0, time.perf_counter()
    for batch in train:
        c_alone += len(batch)
        n_alone += 1
        if n_alone == 200:
            break
    alone_s = time.perf_counter() - a0
    gene_mean = (gene_sum / gene_n.clamp_min(1)).float()

    # 4. Evaluation: the validation cells of the training sources, and the held-out source.
    max_eval = args.eval_cells or (2048 if args.tahoe else 0)
    results = {name: evaluate(model, cellfeed.Loader(corpus, split=split, **settings), device, gene_mean, max_eval)
               for name, split in (("val", "val"), ("test", "test"))}
    held_sources = [s.name for s in corpus.sources if s.split == "test"]
    describe = {"val": "val  (" + (f"held out by {corpus.split.by}" if corpus.split else "none") + ")",
                "test": "test (" + (", ".join(f"source {h}" for h in held_sources) or "held-out groups") + ")"}
    held_out = {split: int(seen[corpus.rows(split)].sum()) for split in ("val", "test")}
    epochs_done = [dict(zip(corpus.source_names, c.tolist())) for c in per_epoch_sources[:-1]]
    if step == args.steps and len(per_epoch_sources) and per_epoch_sources[-1].sum() == report.sources["delivered"].sum():
        epochs_done.append(dict(zip(corpus.source_names, per_epoch_sources[-1].tolist())))
    curve_hash = hashlib.sha256(np.asarray(losses, dtype=np.float32).tobytes()).hexdigest()[:16]
    k = max(1, len(losses) // 10)
    summary = {
        "seed": args.seed, "corpus_fingerprint": corpus.fingerprint, "corpus": os.path.abspath(args.corpus),
        "device": str(device), "torch_threads": torch.get_num_threads(), "engine_threads": engine_threads,
        "steps": args.steps,
        "epochs_started": epoch, "batch_size": args.batch_size, "parameters": n_params,
        "loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
        "loss_curve_sha256_16": curve_hash,
        "evaluation": results,
        "cells_per_source_of_each_whole_epoch": epochs_done,
        "declared_cells_per_source": dict(zip(corpus.source_names, report.sources["delivered"].astype(int).tolist())),
        "held_out_cells_trained_on": held_out,
        "loader": {"cells": cells, "train_seconds": train_s, "cells_per_second": cells / train_s,
                   "loader_wait_seconds": wait, "loader_wait_fraction": wait / train_s,
                   "loader_alone_batches": n_alone, "loader_alone_cells_per_second": c_alone / alone_s},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "python": platform.python_version(), "torch": torch.__version__, "cellfeed": cellfeed.__version__,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    np.save(out / "trained_rows.npy", np.flatnonzero(seen))  # global rows of corpus.collection
    (out / "loss_curve.json").write_text(json.dumps([round(x, 6) for x in losses]) + "\n")
    plot_curve(losses, out / "loss_curve.png")

    print(f"\nTrained {args.steps} steps ({cells:,} cells, {epoch} epochs) in {train_s:.1f} s: "
          f"{cells / train_s:,.0f} cells/s; waiting on the loader {100 * wait / train_s:.1f}% of the time.")
    print(f"Train loss (masked MSE): first {k} steps {summary['loss_first']:.4f} -> last {k} steps "
          f"{summary['loss_last']:.4f}")
    print("Masked-reconstruction MSE (model vs per-gene-mean baseline):")
    for name, r in results.items():
        print(f"  {describe[name]:30s} {r['cells']:5d} cells  model {r['mse']:.4f}  baseline {r['baseline_mse']:.4f}  "
              f"({r['mse'] / r['baseline_mse']:.2f}x)")
    print(f"Loader alone (same inputs, {n_alone} batches): {c_alone / alone_s:,.0f} cells/s; "
          f"peak RSS {summary['peak_rss_mb']:,.0f} MB.")
    if epochs_done:
        print(f"Cells per source in each of the {len(epochs_done)} whole epochs: {epochs_done[0]}"
              + ("" if all(e == epochs_done[0] for e in epochs_done) else f" ... {epochs_done}"))
    print(f"Held-out cells trained on: {held_out['val']} of {len(corpus.rows('val'))} validation, "
          f"{held_out['test']} of {len(corpus.rows('test'))} test.")
    print(f"Reproduce: seed {args.seed}, corpus fingerprint {corpus.fingerprint}, loss curve "
          f"sha256 {curve_hash} ({summary['torch_threads']} torch threads, {engine_threads} engine "
          f"threads, {device}).")
    print(f"Results written to {out}/ (metrics.json, loss_curve.png/json, corpus_report.md/json/png, trained_rows.npy)")
    return summary


if __name__ == "__main__":
    main()
