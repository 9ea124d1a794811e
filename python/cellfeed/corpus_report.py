"""The report of a corpus: what the files hold, what the declaration asks, what an epoch
delivers (per source, per rank, per label), and how closely batches follow the declared
proportions compared with uniform random sampling of the same batch size."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import _cellfeed


@dataclass
class CorpusReport:
    fingerprint: str
    split: str
    sources: pd.DataFrame          # one row per source
    labels: pd.DataFrame           # one row per (source, column, value)
    batch_proportions: dict        # mean/max deviation of batches from the targets
    leaks: pd.DataFrame
    world_size: int = 1
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"fingerprint": self.fingerprint, "split": self.split, "world_size": self.world_size,
                "sources": json.loads(self.sources.reset_index().to_json(orient="records")),
                "labels": json.loads(self.labels.to_json(orient="records")),
                "batch_proportions": self.batch_proportions,
                "leaks": json.loads(self.leaks.to_json(orient="records")),
                "notes": self.notes}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), indent=kw.pop("indent", 2), **kw)

    def to_markdown(self) -> str:
        lines = [f"**Corpus {self.fingerprint}**, split `{self.split}`, world size {self.world_size}", ""]
        lines += _table(self.sources.reset_index())
        if len(self.labels):
            lines += ["", "**Labels** (delivered per epoch vs target)", ""]
            lines += _table(self.labels)
        bp = self.batch_proportions
        if bp:
            lines += ["", (f"**Batch proportions** over {bp['batches']} batches of {bp['batch_size']}: "
                           f"mean total-variation distance from the declared proportions "
                           f"{bp['mean_tv']:.4f} (max {bp['max_tv']:.4f}); uniform random sampling of "
                           f"the same batches would give {bp['random_tv']:.4f} on average.")]
        if len(self.leaks):
            lines += ["", "**Leakage**: values in more than one split", ""] + _table(self.leaks)
        for n in self.notes:
            lines += ["", n]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def plot(self, path: str) -> None:
        """Bar chart of requested vs available vs delivered cells per source and label."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n_panels = 1 + (1 if len(self.labels) else 0)
        fig, axes = plt.subplots(n_panels, 1, figsize=(max(6, 1.2 * len(self.sources) + 3), 4 * n_panels),
                                 squeeze=False)
        s = self.sources
        x = np.arange(len(s))
        ax = axes[0][0]
        for k, (col, label) in enumerate([("available", "available"), ("requested", "requested"),
                                          ("delivered", "delivered")]):
            ax.bar(x + (k - 1) * 0.27, s[col].to_numpy(), width=0.27, label=label)
        ax.set_xticks(x, s.index, rotation=30, ha="right")
        ax.set_ylabel("cells per epoch")
        ax.set_title(f"corpus {self.fingerprint}: {self.split} split")
        ax.legend()
        if len(self.labels):
            lab = self.labels
            names = (lab["source"] + ": " + lab["value"].astype(str)).to_numpy()
            xl = np.arange(len(lab))
            ax2 = axes[1][0]
            ax2.bar(xl - 0.2, lab["available"].to_numpy(), width=0.4, label="available")
            ax2.bar(xl + 0.2, lab["delivered"].to_numpy(), width=0.4, label="delivered")
            if "target" in lab and lab["target"].notna().any():
                ax2.scatter(xl + 0.2, lab["target"].to_numpy(), color="black", marker="_", s=200,
                            label="target", zorder=3)
            ax2.set_xticks(xl, names, rotation=60, ha="right", fontsize=7)
            ax2.set_ylabel("cells per epoch")
            ax2.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _table(df: pd.DataFrame) -> list[str]:
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for v in row:
            if isinstance(v, (int, np.integer)):
                cells.append(f"{int(v):,}")
            elif isinstance(v, (float, np.floating)):
                cells.append("-" if np.isnan(v) else f"{v:,.3f}")
            else:
                cells.append(str(v))
        out.append("| " + " | ".join(cells) + " |")
    return out


def expected_random_tv(batch_size: int, p: np.ndarray) -> float:
    """E[TV] of a batch of `batch_size` cells drawn i.i.d. with probabilities p:
    0.5 * sum_s E|X_s / n - p_s| with X_s ~ Binomial(n, p_s), summed exactly over the pmf."""
    from scipy.stats import binom

    n = int(batch_size)
    k = np.arange(n + 1)
    return float(0.5 * sum((binom.pmf(k, n, ps) * np.abs(k / n - ps)).sum() for ps in p))


def _engine(corpus, split, rank, world_size, batch_size, block_size, fetch_factor, drop_last, remainder):
    return _cellfeed.Loader.make(
        corpus.collection._c, int(batch_size), 1 if block_size == "chunk" else int(block_size),
        int(fetch_factor), True, corpus.seed, bool(drop_last), rank, world_size, remainder, [], 1, 0, 1,
        chunk_blocks=block_size == "chunk", corpus=corpus._engine, split=split)


def build_report(corpus, columns, split, epoch, world_size, batch_size, block_size, fetch_factor,
                 drop_last, remainder, max_batches) -> CorpusReport:
    counts = corpus.counts()
    names = corpus.source_names
    delivered = np.asarray(corpus._engine.lane_counts(split, epoch), dtype=np.int64)
    df = counts.copy()
    df["available"] = df[split]
    if split != "train":
        df["requested"] = df[split]
    df["delivered"] = delivered
    with np.errstate(divide="ignore", invalid="ignore"):
        df["repeat_factor"] = np.where(df["available"] > 0, df["delivered"] / df["available"], np.nan)
    for r in range(world_size):
        eng = _engine(corpus, split, r, world_size, batch_size, block_size, fetch_factor, drop_last, remainder)
        df[f"rank_{r}"] = np.asarray(eng.source_cells_of_rank(epoch), dtype=np.int64)
    df = df[["in_files", "passing", "train", "val", "test", "available", "requested", "delivered",
             "repeat_factor"] + [f"rank_{r}" for r in range(world_size)]]

    # Batch proportions on rank 0, from the plan alone.
    eng = _engine(corpus, split, 0, world_size, batch_size, block_size, fetch_factor, drop_last, remainder)
    per_batch = np.asarray(eng.batch_source_counts(epoch, max_batches), dtype=np.int64).reshape(-1, len(names))
    bp = {}
    total = delivered.sum()
    if len(per_batch) and total > 0:
        target = delivered / total
        full = per_batch.sum(axis=1) == batch_size
        pb = per_batch[full] if full.any() else per_batch
        frac = pb / pb.sum(axis=1, keepdims=True)
        tv = 0.5 * np.abs(frac - target).sum(axis=1)
        bp = {"batches": int(len(pb)), "batch_size": int(batch_size), "mean_tv": float(tv.mean()),
              "max_tv": float(tv.max()), "random_tv": expected_random_tv(batch_size, target),
              "target": {n: float(t) for n, t in zip(names, target)}}

    # Labels: available (in the split) vs delivered in this epoch (copies counted) vs target.
    label_rows = []
    lanes = corpus.epoch_rows(split, epoch)
    targets = corpus._engine.class_targets()
    col = corpus.collection
    for column in columns:
        if column not in col.obs_columns:
            raise ValueError(f"corpus report: obs column {column!r} is not in every file of the corpus "
                             f"(columns: {col.obs_columns})")
        for s, name in enumerate(names):
            avail_rows = corpus._engine.split_rows(s, split)
            got = [r for (src, _, r) in lanes if src == name]
            deliv_rows = np.concatenate(got) if got else np.zeros(0, np.int64)
            a = _value_counts(col, column, avail_rows)
            d = _value_counts(col, column, deliv_rows)
            t = {v: tg for v, _, tg in targets[s]} if split == "train" else {}
            for value in sorted(set(a) | set(d), key=str):
                label_rows.append({"source": name, "column": column, "value": value,
                                   "available": int(a.get(value, 0)), "delivered": int(d.get(value, 0)),
                                   "target": float(t[str(value)]) if str(value) in t else np.nan})
    labels = pd.DataFrame(label_rows, columns=["source", "column", "value", "available", "delivered", "target"])
    notes = []
    if split == "train" and not (df["delivered"] == df["requested"]).all():
        notes.append("WARNING: delivered differs from requested for some source")
    return CorpusReport(fingerprint=corpus.fingerprint, split=split, sources=df, labels=labels,
                        batch_proportions=bp, leaks=corpus.leaks(), world_size=world_size, notes=notes)


def _value_counts(col, column, rows) -> dict:
    if len(rows) == 0:
        return {}
    values = col.obs([column], rows=rows)[column]
    return {k: int(v) for k, v in values.astype(object).value_counts(dropna=True).items()}
