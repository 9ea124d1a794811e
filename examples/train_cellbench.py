"""The main job: train a cell-line classifier on five real CellBench sources, streaming
shuffled minibatches from their h5ad files with cellfeed.

The five sources (CEL-seq2, Drop-seq, three CEL-seq2 plates) have different gene sets;
cellfeed maps them onto their common genes (join="inner") while loading. One cell in five
(by a fixed hash of its row) is held out. Reports held-out accuracy, the loader's
throughput, and the per-batch entropy of the source label (the scDataset paper's
diversity metric).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from tqdm import tqdm

import cellfeed
from cellbench_to_h5ad import main as convert_cellbench


def batch_entropy(codes: np.ndarray) -> float:
    counts = np.bincount(codes[codes >= 0])
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Library-size normalization to 10,000 counts, then log1p."""
    return torch.log1p(x / x.sum(dim=1, keepdim=True).clamp_min(1.0) * 1e4)


def classifier(n_genes: int, n_classes: int) -> torch.nn.Module:
    """The cell-line classifier: one hidden layer on normalized counts (also used by
    bench/shuffle_quality.py)."""
    return torch.nn.Sequential(torch.nn.Linear(n_genes, 128), torch.nn.ReLU(),
                               torch.nn.Dropout(0.2), torch.nn.Linear(128, n_classes))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--block-size", type=int, default=4)
    p.add_argument("--fetch-factor", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    paths = [str(x) for x in convert_cellbench([])]
    loader = cellfeed.Loader(paths, batch_size=args.batch_size, block_size=args.block_size,
                             fetch_factor=args.fetch_factor, seed=args.seed,
                             obs=["cell_line", "source"], join="inner", output="torch-dense")
    col = loader.collection
    labels = col.obs(["cell_line"])["cell_line"]
    classes = list(labels.cat.categories)
    n = col.n_obs
    rows = np.arange(n)
    held_out = (rows * 2654435761 % 2**32) % 5 == 0  # a fixed hash, not the shuffle
    print(f"cellbench: {n} cells from {len(paths)} files, {col.n_vars} common genes "
          f"(join='inner'), {len(classes)} cell lines: {', '.join(classes)}; "
          f"{held_out.sum()} held out")

    model = classifier(col.n_vars, len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    loader_seconds, cells_loaded, entropies = 0.0, 0, []
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        model.train()
        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            batch = next(it, None)
            loader_seconds += time.perf_counter() - t0
            if batch is None:
                break
            cells_loaded += len(batch)
            entropies.append(batch_entropy(batch.obs["source"].numpy()))
            keep = torch.from_numpy(~held_out[batch.rows])
            if keep.sum() == 0:
                bar.update(1)
                continue
            x = normalize(batch.X[keep])
            y = batch.obs["cell_line"][keep].long()
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
            bar.update(1)
        bar.close()

    model.eval()
    test_rows = rows[held_out]
    with torch.no_grad():
        X = torch.from_numpy(col.read(test_rows).toarray())
        pred = model(normalize(X)).argmax(dim=1).numpy()
    truth = labels.cat.codes.to_numpy()[test_rows]
    accuracy = float((pred == truth).mean())
    result = {
        "held_out_accuracy": accuracy,
        "held_out_cells": int(len(test_rows)),
        "loader_cells_per_second": cells_loaded / loader_seconds,
        "source_entropy_bits_mean": float(np.mean(entropies)),
        "source_entropy_bits_std": float(np.std(entropies)),
        "source_entropy_bits_max": math.log2(len(paths)),
    }
    print(f"held-out accuracy: {accuracy:.3f} on {len(test_rows)} cells")
    print(f"loader throughput: {result['loader_cells_per_second']:,.0f} cells/s "
          f"({cells_loaded} cells in {loader_seconds:.2f} s of waiting on the loader)")
    print(f"batch entropy of the source label: {result['source_entropy_bits_mean']:.3f} "
          f"+/- {result['source_entropy_bits_std']:.3f} bits (max {result['source_entropy_bits_max']:.3f})")
    return result


if __name__ == "__main__":
    main()
