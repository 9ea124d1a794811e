"""Train a small perturbation-response set model on cell sets from cellfeed.SetLoader.

The screen (examples/perturb_screen.py) is REAL CellBench cells of five lung cancer cell
lines with SIMULATED drug effects (gene programs with known log fold changes), DMSO
controls, two plates. One drug is held out everywhere (unseen) and one cell line is held
out whole (zero-shot). The model maps a set of control cells plus a perturbation embedding
to the perturbed set (a mean-pooled set encoder, a per-cell shift), trained with the
energy distance between predicted and observed sets, as STATE is. On the held-out sets
it is compared with the baselines papers use: the control (predict no change) and the
mean training delta (the drug's mean effect over training lines for a zero-shot line;
the mean effect of the training drugs in the line for an unseen drug). Whatever the
numbers are, they are printed. Then a real check: IFN-beta-stimulated vs control PBMCs
(examples/perturb_kang.py).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

import cellfeed
import perturb_kang
import perturb_screen


class SetModel(torch.nn.Module):
    """control set [B, S, D] + perturbation ids [B, K] -> predicted perturbed set [B, S, D]."""

    def __init__(self, n_features: int, n_perts: int, hidden: int = 128):
        super().__init__()
        self.n_perts = n_perts
        self.encode = torch.nn.Sequential(torch.nn.Linear(n_features, hidden), torch.nn.GELU(),
                                          torch.nn.Linear(hidden, hidden))
        # Row n_perts (an unseen perturbation, or padding) stays zero: no effect learned for it.
        self.pert = torch.nn.Embedding(n_perts + 1, hidden, padding_idx=n_perts)
        self.shift = torch.nn.Sequential(torch.nn.Linear(n_features + 2 * hidden, hidden), torch.nn.GELU(),
                                         torch.nn.Linear(hidden, n_features))

    def forward(self, ctrl: torch.Tensor, pert_ids: torch.Tensor) -> torch.Tensor:
        ids = torch.where(pert_ids >= 0, pert_ids, self.n_perts).clamp(max=self.n_perts)
        p = self.pert(ids).sum(1)                          # combinations add
        z = self.encode(ctrl).mean(1)                      # the control set: the context
        h = torch.cat([z, p], -1)[:, None].expand(-1, ctrl.shape[1], -1)
        return ctrl + self.shift(torch.cat([ctrl, h], -1))


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per set: 2 E|x-y| - E|x-x'| - E|y-y'| (x, y: [B, S, D]) -> [B]."""
    return (2 * torch.cdist(x, y).mean((1, 2)) - torch.cdist(x, x).mean((1, 2))
            - torch.cdist(y, y).mean((1, 2)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")  # a constant prediction (no change) has no correlation
    return float(np.corrcoef(a, b)[0, 1])


def group_means(loader: cellfeed.SetLoader, epoch: int = 0) -> dict:
    """(drug, line) -> mean features of the perturbed and of the control cells of its sets."""
    acc = defaultdict(lambda: [0.0, 0.0, 0])
    for b in _epoch(loader, epoch):
        for i, (d, c) in enumerate(zip(b.pert_names, b.context_names)):
            a = acc[(d, c)]
            a[0] = a[0] + np.asarray(b.pert_X[i]).sum(0)
            a[1] = a[1] + np.asarray(b.ctrl_X[i]).sum(0)
            a[2] += b.pert_X.shape[1]
    return {k: (v[0] / v[2], v[1] / v[2]) for k, v in acc.items()}


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    return iter(loader)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--set-size", type=int, default=32)
    p.add_argument("--sets-per-batch", type=int, default=16)
    p.add_argument("--drugs", type=int, default=10)
    p.add_argument("--cells-per-line", type=int, default=40, help="cells of each line in a well")
    p.add_argument("--held-drug", default="drug0")
    p.add_argument("--held-line", default="H1975")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "results" / "perturb")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    say = (lambda *a: None) if args.quiet else print
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()

    screen = perturb_screen.build(args.out, n_drugs=args.drugs, cells_per_line=args.cells_per_line,
                                  seed=args.seed)
    truth = screen["truth"]
    say(f"screen: {screen['n_cells']} cells (real CellBench cells, SIMULATED drug effects), "
        f"{len(truth['drugs'])} drugs + DMSO, lines {', '.join(truth['lines'])}, "
        f"{len(truth['hvg_genes'])} feature genes (obsm X_hvg)")
    pert = cellfeed.Perturbation("drug", control=["DMSO"], context="cell_line", batch="plate",
                                 match=[["plate"], []], unseen={"test": [args.held_drug]},
                                 zeroshot={"test": [args.held_line]}, controls_from_lower_splits=True)
    kw = dict(set_size=args.set_size, sets_per_batch=args.sets_per_batch, seed=args.seed,
              obsm="X_hvg", output="torch")
    train = cellfeed.SetLoader(str(screen["path"]), pert, split="train", **kw)
    test = cellfeed.SetLoader(str(screen["path"]), pert, split="test", **kw)
    say(train.report()["held_out_controls"])

    # The ground truth is recoverable from the delivered sets: observed delta vs simulated.
    train_means = group_means(train, 0)
    truth_r = {f"{d}|{c}": pearson(m[0] - m[1], np.array(truth["lfc_hvg"][f"{d}|{c}"]))
               for (d, c), m in train_means.items() if d != "DMSO"}

    model = SetModel(len(truth["hvg_genes"]), len(train.vocab["perturbation"]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses, step, epoch, trained, trained_rows = [], 0, 0, set(), []
    t_train, waited = time.perf_counter(), 0.0
    while step < args.steps:
        train.set_epoch(epoch)
        batches = iter(train)
        while True:
            t = time.perf_counter()
            b = next(batches, None)  # the time the training step waits on the loader
            waited += time.perf_counter() - t
            if b is None:
                break
            loss = energy_distance(model(b.ctrl_X, b.pert_ids), b.pert_X).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            trained.update(zip(b.pert_names, b.context_names))
            trained_rows += [b.pert_rows.reshape(-1), b.ctrl_rows.reshape(-1)]
            step += 1
            if step % max(1, args.steps // 10) == 0:
                say(f"step {step:5d}  energy distance {np.mean(losses[-20:]):.4f}")
            if step >= args.steps:
                break
        epoch += 1
    train_s = time.perf_counter() - t_train

    # Baselines from the training sets: each drug's mean delta over the training lines,
    # and the mean delta of all training drugs in each line.
    deltas = {k: m[0] - m[1] for k, m in train_means.items() if k[0] != "DMSO"}
    by_drug, by_line = defaultdict(list), defaultdict(list)
    for (d, c), v in deltas.items():
        by_drug[d].append(v)
        by_line[c].append(v)
    everything = np.mean(list(deltas.values()), 0)

    def mean_delta(d, c):
        if d in by_drug:
            return np.mean(by_drug[d], 0)  # zero-shot line: the drug's effect elsewhere
        return np.mean(by_line[c], 0) if c in by_line else everything

    model.eval()
    per_group = defaultdict(lambda: defaultdict(list))
    with torch.no_grad():
        for b in _epoch(test, 0):
            pred = model(b.ctrl_X, b.pert_ids)
            base = torch.stack([b.ctrl_X[i] + torch.from_numpy(mean_delta(d, c).astype(np.float32))
                                for i, (d, c) in enumerate(zip(b.pert_names, b.context_names))])
            e = {"model": energy_distance(pred, b.pert_X), "control": energy_distance(b.ctrl_X, b.pert_X),
                 "mean training delta": energy_distance(base, b.pert_X)}
            for i, (d, c) in enumerate(zip(b.pert_names, b.context_names)):
                if d == "DMSO":
                    continue
                g = per_group[(d, c)]
                for name, x in (("model", pred), ("control", b.ctrl_X), ("mean training delta", base)):
                    g[name + " mean"].append(x[i].mean(0).numpy())
                    g[name + " energy"].append(float(e[name][i]))
                g["true mean"].append(b.pert_X[i].mean(0).numpy())
                g["ctrl mean"].append(b.ctrl_X[i].mean(0).numpy())

    def kind(d, c):
        return ("unseen drug + zero-shot line" if d == args.held_drug and c == args.held_line else
                "unseen drug" if d == args.held_drug else "zero-shot line")

    rows = defaultdict(lambda: defaultdict(list))
    for (d, c), g in per_group.items():
        ctrl, true = np.mean(g["ctrl mean"], 0), np.mean(g["true mean"], 0)
        for name in ("model", "control", "mean training delta"):
            r = rows[(kind(d, c), name)]
            r["pearson_delta"].append(pearson(np.mean(g[name + " mean"], 0) - ctrl, true - ctrl))
            r["energy"].append(float(np.mean(g[name + " energy"])))
            r["groups"].append((d, c))
    table = [{"held out": k, "predictor": n, "groups": len(v["groups"]),
              "pearson_delta": float(np.mean(v["pearson_delta"])),
              "energy_distance": float(np.mean(v["energy"]))}
             for (k, n), v in sorted(rows.items())]
    kang = perturb_kang.check(args.out)
    result = {
        "cells": screen["n_cells"], "steps": step, "epochs": epoch, "train_seconds": round(train_s, 1),
        "loader_wait_share": round(waited / train_s, 3),
        "loss_first": float(np.mean(losses[:20])), "loss_last": float(np.mean(losses[-20:])),
        "truth_pearson_train": truth_r, "truth_pearson_median": float(np.median(list(truth_r.values()))),
        "trained_groups": sorted(f"{d}|{c}" for d, c in trained), "table": table,
        "kang_top_genes": kang["top_genes"], "kang_top_delta": kang["top_delta"],
        "seconds": round(time.perf_counter() - t0, 1)}
    np.save(args.out / "trained_rows.npy", np.unique(np.concatenate(trained_rows)))
    (args.out / "metrics.json").write_text(json.dumps(result, indent=1))

    say(f"\nground truth in the delivered training sets: Pearson(observed delta, simulated "
        f"log fold change) median {result['truth_pearson_median']:.3f} over {len(truth_r)} groups")
    say(f"trained {step} steps ({epoch} epochs) in {train_s:.1f} s; energy distance "
        f"{result['loss_first']:.4f} -> {result['loss_last']:.4f}; waiting on the loader "
        f"{100 * waited / train_s:.1f}% of the time")
    say(f"\nheld out (test split; drug {args.held_drug} unseen, line {args.held_line} zero-shot):")
    say(f"{'held out':30s} {'predictor':22s} {'groups':>6s} {'pearson_delta':>14s} {'energy_dist':>12s}")
    for r in table:
        say(f"{r['held out']:30s} {r['predictor']:22s} {r['groups']:6d} {r['pearson_delta']:14.3f} "
            f"{r['energy_distance']:12.4f}")
    say("(pearson_delta: predicted vs observed mean shift over the feature genes; the control "
        "predicts no shift, so it has none)")
    say(f"\nreal data, Kang 2018 PBMCs, IFN-beta vs control sets: top genes by delta "
        f"{list(zip(kang['top_genes'], kang['top_delta']))}")
    return result


if __name__ == "__main__":
    main()
