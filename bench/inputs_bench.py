"""Model-ready inputs on the engine's threads against the way users compute them today.

    python bench/inputs_bench.py [DATA_DIR] [--cells 50000 --epochs 2 --user-batches 150]

For each preset (AIDO.Cell RDA, scFoundation RDA, Geneformer V2 MLM, scGPT masked value),
in one process on the same warm Tahoe-like plates (uncompressed, generated with
bench/tahoe_like.py when DATA_DIR is not given), with the same batch size, block size and
fetch factor:
- cellfeed: Loader(..., inputs=preset), whole epochs (the prefetched tail included);
- user path: the plain Loader (scipy CSR), then the same transform in numpy on each batch,
  as a collate function or scDataset's batch_transform would run it: vectorized per batch
  for the dense presets (scFoundation's and AIDO.Cell's code), per cell for rank tokens
  and bins (Geneformer's tokenizer and scGPT's binning loop over cells). Its per-batch
  cost does not depend on the position in the epoch, so it is timed over --user-batches
  batches after 10 warm-up batches;
- plain: the plain Loader alone, whole epochs (the sparse presets' overhead is against it).
Dense presets also report bytes of tensors written per second against the machine's
memcpy bandwidth, measured in the same run (torch copy_ with the loader's thread count).
Every preset also reports its write floor: the bytes of its tensors per batch over the
best write bandwidth measured in the run (copy_, fill_ or zero_), as a multiple of the
plain loader's time per batch; no implementation can take less time than that. And it is
measured as a whole ("plain + writing"): the plain loader's epochs while the consumer writes
that many bytes per batch into one warm buffer (libc memset), the least time per batch that
reading a batch and writing its tensors take together on this machine.

Two bounds that the targets meet, printed per preset from the same run (times per batch:
P the plain loader's, C cellfeed's with inputs, W the user path's, added = C - P):
- `speedup_if_free` = W / P: the speedup over the user path that a transform costing
  nothing would reach. It caps the speedup: where the plain loader is slow (gzip plates)
  it is below 10 whatever the transforms cost.
- `user_over_added` = W / (C - P). C <= 1.25 P and W >= 10 C together imply W >= 50 (C - P):
  the sparse presets' two targets can hold at once, for any P, only where this is >= 50.
  `--threads` sets the engine's threads on both paths, to see how `added` scales with cores.

Vocabularies (--vocab): "real" (the default), the shipped ones, as the presets use them: the
scFoundation/AIDO.Cell panel by symbol (the plates hold GENCODE v44 Ensembl IDs, so they are
translated) and Geneformer's gc104M dictionary with its medians. Their genes lie scattered
over the plates' columns in an order of their own, as on real files, so the engine puts
every cell in vocabulary order. "prefix" (every run before this option, up to 2026-12-06): the plates' first
19,264 genes as the panel and the first 20,271 as Geneformer's, with seeded medians; those
keep the file's order, which no real vocabulary does. The user path gets each plate's
column -> vocabulary map from cellfeed.map_genes (a user builds the same from var names);
where several columns map to one panel gene its dense rows keep one of them.
Prints JSON: batches/s per path and preset, ratios, bandwidth.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import glob
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import cellfeed
from cellfeed import inputs as ci
from cellfeed.vocab import Vocabulary

HERE = Path(__file__).resolve().parent
PANEL = 19_264


# -- the user path: numpy on each batch ---------------------------------------------------
class UserTransform:
    """Per-batch numpy, given the column -> vocabulary map a user builds from var names."""

    def __init__(self, col_to_vocab: np.ndarray, vocab_size: int, seed: int):
        self.c2v = col_to_vocab
        self.V = vocab_size
        self.rng = np.random.default_rng(seed)

    def on_vocab(self, X):
        """CSR rows -> (indptr, vocab ids, values) of the mapped genes, and all-gene totals."""
        v = self.c2v[X.indices]
        keep = v >= 0
        per_row = np.add.reduceat(keep.astype(np.int64), X.indptr[:-1]) if X.nnz else np.zeros(X.shape[0], np.int64)
        per_row[np.diff(X.indptr) == 0] = 0
        indptr = np.concatenate([[0], np.cumsum(per_row)])
        return indptr, v[keep], X.data[keep], np.asarray(X.sum(1)).ravel()

    def dense(self, indptr, idx, val):
        B = len(indptr) - 1
        out = np.zeros((B, self.V), np.float32)
        out[np.repeat(np.arange(B), np.diff(indptr)), idx] = val
        return out


class UserRda(UserTransform):
    def __init__(self, c2v, V, seed, variant: str):
        super().__init__(c2v, V, seed)
        self.variant = variant

    def __call__(self, X) -> dict:
        indptr, idx, val = self.on_vocab(X)[:3]
        B, V, rng = len(indptr) - 1, self.V, self.rng
        rows = np.repeat(np.arange(B), np.diff(indptr))
        u = rng.random(B) < 0.5
        b = rng.beta(2, 2, B)
        thin = val.copy()
        sel = u[rows]
        thin[sel] = rng.binomial(val[sel].astype(np.int64), b[rows[sel]])
        raw, x = self.dense(indptr, idx, val), self.dense(indptr, idx, thin)
        raw_total, total = raw.sum(1, dtype=np.float64), x.sum(1, dtype=np.float64)

        def norm(d, t):
            d = d / np.where(t > 0, t, 1.0)[:, None].astype(np.float32) * np.float32(1e4)
            np.log1p(d, out=d)
            if self.variant == "aido":
                np.minimum(d, 20, out=d)
            return d

        values = np.empty((B, V + 2), np.float32)
        values[:, :V] = norm(x, total)
        if self.variant == "aido":
            values[:, V] = np.clip(np.log10(np.maximum(raw_total, 1)), 5, 20)
            values[:, V + 1] = np.clip(np.log10(np.maximum(total, 1)), 5, 20)
        else:
            values[:, V] = np.log10(np.maximum(raw_total, 1))
            values[:, V + 1] = np.log10(np.maximum(total, 1))
        mask = np.zeros((B, V + 2), bool)
        mask[:, :V] = rng.random((B, V)) < np.where(x > 0, 0.30, 0.03)
        values[mask] = -1.0 if self.variant == "aido" else 102.0
        attention = np.ones((B, V + 2), bool)
        return {"values": torch.from_numpy(values), "attention_mask": torch.from_numpy(attention),
                "mask": torch.from_numpy(mask), "target": torch.from_numpy(norm(raw, raw_total)),
                "downsampled": torch.from_numpy(u)}


class UserGeneformer(UserTransform):
    """Geneformer's tokenizer, per cell: normalize by n_counts and the gene medians, rank,
    <cls> ... <eos>, pad to 4,096; then the MLM collator's 15% with 80/10/10."""

    def __init__(self, c2v, V, seed, medians, pad="fixed"):
        super().__init__(c2v, V, seed)
        self.medians = medians
        self.pad = pad

    def __call__(self, X) -> dict:
        indptr, idx, val, n_counts = self.on_vocab(X)
        B, L, rng = len(indptr) - 1, 4096, self.rng
        if self.pad == "batch":  # as Geneformer's collator: to the longest row
            L = min(L, int(np.diff(indptr).max(initial=0)) + 2)
        ids = np.zeros((B, L), np.int64)
        for i in range(B):
            gi, gv = idx[indptr[i]:indptr[i + 1]], val[indptr[i]:indptr[i + 1]]
            xn = gv / n_counts[i] * 1e4 / self.medians[gi]
            toks = gi[np.argsort(-xn, kind="stable")][:L - 2]
            ids[i, 0] = 2
            ids[i, 1:1 + len(toks)] = toks
            ids[i, 1 + len(toks)] = 3
        attention = ids != 0
        genes = ids >= 4
        selected = (rng.random((B, L)) < 0.15) & genes
        labels = np.where(selected, ids, -100)
        r = rng.random((B, L))
        inp = ids.copy()
        inp[selected & (r < 0.8)] = 1
        rand = selected & (r >= 0.8) & (r < 0.9)
        inp[rand] = rng.integers(4, self.V, rand.sum())
        return {"input_ids": torch.from_numpy(inp), "attention_mask": torch.from_numpy(attention),
                "labels": torch.from_numpy(labels)}


class UserScgpt(UserTransform):
    """scGPT's binning (per cell: quantile edges of the nonzero values, digitize) and its
    collator (<cls>, sample 1,199 genes, pad, mask 40%)."""

    def __init__(self, c2v, V, seed, pad="fixed"):
        super().__init__(c2v, V, seed)
        self.pad = pad

    def __call__(self, X) -> dict:
        indptr, idx, val, _ = self.on_vocab(X)
        B, L, nb, rng = len(indptr) - 1, 1200, 51, self.rng
        if self.pad == "batch":
            L = min(L, int(np.diff(indptr).max(initial=0)) + 1)
        gene_ids = np.full((B, L), self.V + 1, np.int64)
        values = np.full((B, L), -2.0, np.float32)
        for i in range(B):
            gi, gv = idx[indptr[i]:indptr[i + 1]], val[indptr[i]:indptr[i + 1]].astype(np.float64)
            x = np.log1p(gv / max(gv.sum(), 1e-12) * 1e4)
            edges = np.quantile(x, np.linspace(0, 1, nb - 1))
            left, right = np.digitize(x, edges), np.digitize(x, edges, right=True)
            bins = np.ceil(rng.random(len(x)) * (right - left) + left)
            if len(gi) > L - 1:
                keep = np.sort(rng.choice(len(gi), L - 1, replace=False))
                gi, bins = gi[keep], bins[keep]
            gene_ids[i, 0], values[i, 0] = self.V, 0.0
            gene_ids[i, 1:1 + len(gi)], values[i, 1:1 + len(gi)] = gi, bins
        attention = gene_ids != self.V + 1
        masked = values.copy()
        m = (rng.random((B, L)) < 0.4) & attention
        m[:, 0] = False
        masked[m] = -1.0
        return {"gene_ids": torch.from_numpy(gene_ids), "values": torch.from_numpy(values),
                "masked_values": torch.from_numpy(masked), "attention_mask": torch.from_numpy(attention)}


# -- timing ----------------------------------------------------------------------------
def tensor_bytes(d: dict) -> int:
    return sum(t.numel() * t.element_size() for t in d.values())


def time_epochs(loader, epochs: int, with_inputs: bool, write_bytes: int = 0) -> dict:
    """Whole epochs of the loader. write_bytes > 0: after each batch, also write that many
    bytes (libc memset of one buffer, allocated once and so cache-warm, on the consumer's
    thread: the cheapest way to write them here), as if an implementation did nothing but
    read the plain batch and write its tensors."""
    batches, cells, nbytes = 0, 0, 0
    buf = np.empty(write_bytes, np.uint8) if write_bytes else None
    memset = ctypes.CDLL(None).memset
    memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    t0 = time.perf_counter()
    for e in range(epochs):
        loader.set_epoch(e)
        for b in loader:
            batches += 1
            cells += len(b)
            if with_inputs:
                nbytes += tensor_bytes(b.inputs)
            if buf is not None:
                memset(buf.ctypes.data, batches & 1, write_bytes)
    dt = time.perf_counter() - t0
    return {"batches": batches, "cells": cells, "seconds": dt, "batches_per_second": batches / dt,
            "cells_per_second": cells / dt, "bytes_written_per_second": nbytes / dt}


def time_user(loader, fn, n_batches: int, warmup: int = 10) -> dict:
    loader.set_epoch(0)
    it = iter(loader)
    for _ in range(warmup):
        fn(next(it).X)
    t0 = time.perf_counter()
    cells = 0
    for _ in range(n_batches):
        b = next(it)
        fn(b.X)
        cells += len(b)
    dt = time.perf_counter() - t0
    return {"batches": n_batches, "cells": cells, "seconds": dt, "batches_per_second": n_batches / dt,
            "cells_per_second": cells / dt}


def best_rate(ops, nbytes: int, threads: int, repeats: int) -> float:
    """nbytes over the fastest of `repeats` calls of each op, with torch on `threads`."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    best = 0.0
    for op in ops:
        for _ in range(repeats):
            t0 = time.perf_counter()
            op()
            best = max(best, nbytes / (time.perf_counter() - t0))
    torch.set_num_threads(old)
    return best


def memcpy_bandwidth(threads: int, mb: int = 512, repeats: int = 5) -> float:
    """Bytes written per second by torch's copy_ (parallel over `threads`), best of repeats."""
    src = torch.ones(mb * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return best_rate([lambda: dst.copy_(src)], dst.numel() * 4, threads, repeats)


def write_bandwidth(threads: int, mb: int = 512, repeats: int = 5) -> float:
    """Bytes written per second by the fastest of torch's fill_ and zero_ (memset), best
    of repeats: what writing tensors can reach here without reading anything."""
    dst = torch.empty(mb * 2**20 // 4)
    dst.zero_()
    return best_rate([lambda: dst.fill_(1.0), dst.zero_], dst.numel() * 4, threads, repeats)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", nargs="?")
    ap.add_argument("--cells", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--user-batches", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--block-size", type=lambda v: v if v == "chunk" else int(v), default=16,
                    help="cells per block, or 'chunk' (a storage chunk's cells: the way to read gzip plates)")
    ap.add_argument("--fetch-factor", type=int, default=64)
    ap.add_argument("--presets", nargs="*", default=["aido_cell_rda", "scfoundation_rda", "geneformer_mlm",
                                                     "scgpt_masked_value"])
    ap.add_argument("--pad", choices=["fixed", "batch"], default="fixed",
                    help="token presets' padding, on both paths: to the maximum length or the batch's longest row")
    ap.add_argument("--vocab", choices=["real", "prefix"], default="real",
                    help="the shipped vocabularies, or the plates' first genes in file order")
    ap.add_argument("--threads", type=int, default=None, help="engine threads (default: one per core)")
    ap.add_argument("--out", default=None, help="write the JSON here too")
    args = ap.parse_args(argv)
    if args.data_dir is None:
        sys.path.insert(0, str(HERE))
        import tahoe_like

        args.data_dir = f"/tmp/cellfeed_bench/tahoe_{args.cells}_none"
        if not glob.glob(os.path.join(args.data_dir, "*.h5ad")):
            tahoe_like.generate(Path(args.data_dir), args.cells, None)
    paths = sorted(glob.glob(os.path.join(args.data_dir, "*.h5ad")))
    for p in paths:  # warm the page cache
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    settings = dict(batch_size=args.batch_size, block_size=args.block_size, fetch_factor=args.fetch_factor,
                    seed=0, values="counts", threads=args.threads)
    plain = cellfeed.Loader(paths, **settings)
    names = list(plain.var_names)
    threads = plain.collection.threads if hasattr(plain.collection, "threads") else os.cpu_count()
    if args.vocab == "real":
        panel, gf_vocab = Vocabulary.scfoundation(), Vocabulary.geneformer()
    else:
        panel = Vocabulary.from_genes(names[:PANEL], by="ensembl", name="bench_panel")
        rng = np.random.default_rng(7)
        n_gf = 20_275 - 4
        gf_vocab = Vocabulary("bench_geneformer", ("",) * 4 + tuple(names[:n_gf]), "ensembl",
                              (float("nan"),) * 4 + tuple(float(m) for m in np.exp(rng.normal(0.0, 0.7, n_gf))))
    # The plates share their genes, so one column -> vocabulary map serves every batch.
    c2v_panel = cellfeed.map_genes(plain.collection, panel).column_to_vocab(0)
    c2v_gf = cellfeed.map_genes(plain.collection, gf_vocab).column_to_vocab(0)
    gf_medians = np.asarray(gf_vocab.medians, np.float64)

    presets = {
        "aido_cell_rda": (dataclasses.replace(ci.aido_cell_rda(), vocab=panel), lambda: UserRda(c2v_panel, len(panel), 1, "aido"), True),
        "scfoundation_rda": (dataclasses.replace(ci.scfoundation_rda(), vocab=panel), lambda: UserRda(c2v_panel, len(panel), 1, "scf"), True),
        "geneformer_mlm": (dataclasses.replace(ci.geneformer_mlm(pad=args.pad), vocab=gf_vocab),
                           lambda: UserGeneformer(c2v_gf, len(gf_vocab), 1, gf_medians, args.pad), False),
        "scgpt_masked_value": (dataclasses.replace(ci.scgpt_masked_value(pad=args.pad), vocab=panel),
                               lambda: UserScgpt(c2v_panel, len(panel), 1, args.pad), False),
    }
    result = {"data_dir": args.data_dir, "cells": plain.collection.n_obs, "settings": settings, "pad": args.pad,
              "vocab": args.vocab, "mapped": {"panel": int((c2v_panel >= 0).sum()), "geneformer": int((c2v_gf >= 0).sum())},
              "epochs": args.epochs, "user_batches": args.user_batches, "threads": threads,
              "memcpy_bytes_per_second": memcpy_bandwidth(threads),
              "memcpy_bytes_per_second_1_thread": memcpy_bandwidth(1),
              "write_bytes_per_second": write_bandwidth(threads),
              "plain": time_epochs(plain, args.epochs, False), "presets": {}}
    for name in args.presets:
        pipe, user_factory, dense = presets[name]
        ours = time_epochs(cellfeed.Loader(paths, inputs=pipe, **settings), args.epochs, True)
        user = time_user(plain, user_factory(), args.user_batches)
        r = {"cellfeed": ours, "user_numpy": user,
             "speedup_vs_user": ours["batches_per_second"] / user["batches_per_second"],
             "time_per_batch_vs_plain": result["plain"]["batches_per_second"] / ours["batches_per_second"]}
        # The floor: writing this preset's tensors alone, at the best write bandwidth
        # measured here (memcpy's or memset's), as a multiple of the plain loader's whole
        # time per batch. No build can take less time per batch than this.
        per_batch = ours["bytes_written_per_second"] / ours["batches_per_second"]
        best_write = max(result["write_bytes_per_second"], result["memcpy_bytes_per_second"])
        r["bytes_per_batch"] = per_batch
        r["write_floor_vs_plain"] = per_batch / best_write * result["plain"]["batches_per_second"]
        # The same floor measured as a whole: the plain loader while the consumer writes
        # this many bytes per batch. The engine's threads and the writer share the cores,
        # so this is the least time per batch that reading and writing together take.
        both = time_epochs(plain, args.epochs, False, int(per_batch))
        r["plain_plus_writing"] = both
        r["plain_plus_writing_vs_plain"] = result["plain"]["batches_per_second"] / both["batches_per_second"]
        plain_s = 1 / result["plain"]["batches_per_second"]
        added_s = 1 / ours["batches_per_second"] - plain_s
        user_s = 1 / user["batches_per_second"]
        r["ms_per_batch"] = {"plain": plain_s * 1e3, "added": added_s * 1e3, "user": user_s * 1e3}
        r["speedup_if_free"] = user_s / plain_s
        r["user_over_added"] = user_s / added_s if added_s > 0 else float("inf")
        if dense:
            r["bytes_written_vs_memcpy"] = ours["bytes_written_per_second"] / result["memcpy_bytes_per_second"]
        result["presets"][name] = r
        print(f"{name:20s} cellfeed {ours['batches_per_second']:8.1f} batches/s  user numpy "
              f"{user['batches_per_second']:7.1f}  speedup {r['speedup_vs_user']:6.1f}x  time/batch vs plain "
              f"{r['time_per_batch_vs_plain']:.2f}x (writing alone {r['write_floor_vs_plain']:.2f}x, "
              f"plain + writing {r['plain_plus_writing_vs_plain']:.2f}x; if free {r['speedup_if_free']:.1f}x, "
              f"user / added {r['user_over_added']:.1f})"
              + (f"  written {ours['bytes_written_per_second'] / 1e9:.2f} GB/s = "
                 f"{r['bytes_written_vs_memcpy']:.2f} of memcpy" if dense else ""), flush=True)
    print(f"plain loader {result['plain']['batches_per_second']:.1f} batches/s; memcpy "
          f"{result['memcpy_bytes_per_second'] / 1e9:.2f} GB/s ({threads} threads), "
          f"{result['memcpy_bytes_per_second_1_thread'] / 1e9:.2f} GB/s (1 thread); memset/fill "
          f"{result['write_bytes_per_second'] / 1e9:.2f} GB/s ({threads} threads)")
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
