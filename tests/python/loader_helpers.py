"""Helpers of the Loader tests: small .h5ad files written by the real anndata writer,
anndata-side expectations, and batch fingerprints that can cross process boundaries.

Also the entry point of the subprocesses the tests start (``python loader_helpers.py
resume ...``): a fresh interpreter that resumes a Loader from a saved state_dict.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# Files with the same genes: sizes chosen so that n = 131 (prime) divides by nothing.
SAME_SIZES = (37, 1, 52, 41)
SAME_GZIP = (False, True, True, False)
N_GENES = 40
# Files with different genes (see _diff_gene_names).
DIFF_SIZES = (45, 33, 26)


@dataclass
class LoaderFiles:
    root: Path
    same: list[Path] = field(default_factory=list)          # same var_names
    diff: list[Path] = field(default_factory=list)          # different var_names
    medium: Path | None = None                              # a larger file (promptness)
    zero: Path | None = None                                # a file of zero cells
    vocab_txt: Path | None = None                           # one gene per line
    vocab_tsv: Path | None = None                           # gene_id<TAB>symbol, header
    gene_list: list[str] = field(default_factory=list)      # explicit gene space

    @property
    def n_same(self) -> int:
        return sum(SAME_SIZES)

    @property
    def n_diff(self) -> int:
        return sum(DIFF_SIZES)


def _obs(n: int, rng: np.random.Generator, prefix: str, cell_types):
    import pandas as pd

    return pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(rng.integers(-1, len(cell_types), n),
                                                   categories=list(cell_types)),
            "n_counts": rng.integers(0, 50000, n).astype(np.int32),
            "score": rng.standard_normal(n),
            "pct": rng.random(n).astype(np.float32),
        },
        index=pd.Index([f"{prefix}_{i}" for i in range(n)], dtype=object),
    )


def _csr(rng: np.random.Generator, n: int, g: int, integer: bool = False):
    import scipy.sparse as sp

    dense = np.zeros((n, g), dtype=np.float32)
    for r in range(n):
        if r % 7 == 3:
            continue  # empty rows
        k = int(rng.integers(1, max(2, g // 3)))
        cols = rng.choice(g, k, replace=False)
        vals = rng.integers(1, 1000, k) if integer else rng.gamma(1.5, 3.0, k) + 0.01
        dense[r, cols] = vals
    return sp.csr_matrix(dense.astype(np.int32) if integer else dense)


def _write(path: Path, X, obs, var_names, **kw) -> Path:
    import anndata as ad
    import pandas as pd

    a = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=pd.Index(list(var_names), dtype=object)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.write_h5ad(path, **kw)
    return path


def _diff_gene_names(rng: np.random.Generator) -> list[list[str]]:
    a = [f"G{j}" for j in range(30)]
    b = list(reversed([f"G{j}" for j in range(4, 28)])) + ["X1", "X2"]
    c = [f"G{j}" for j in range(2, 30)] + ["X2", "Y1"]
    rng.shuffle(c)
    return [a, b, c]


def write_files(root: Path) -> LoaderFiles:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    out = LoaderFiles(root=root)
    genes = [f"gene{j}" for j in range(N_GENES)]
    types = [("T", "B", "NK"), ("B", "Mono"), ("NK", "T", "DC"), ("T",)]
    for i, (n, gz) in enumerate(zip(SAME_SIZES, SAME_GZIP)):
        X = _csr(rng, n, N_GENES, integer=(i == 2))
        kw = {"compression": "gzip"} if gz else {}
        if i == 3:  # one file with a dense X
            kw["as_dense"] = ("X",)
        out.same.append(_write(root / f"same{i}.h5ad", X, _obs(n, rng, f"s{i}", types[i]),
                               genes, **kw))
    for i, (n, names) in enumerate(zip(DIFF_SIZES, _diff_gene_names(rng))):
        X = _csr(rng, n, len(names))
        kw = {"compression": "gzip"} if i != 1 else {}
        out.diff.append(_write(root / f"diff{i}.h5ad", X, _obs(n, rng, f"d{i}", types[i]),
                               names, **kw))
    import scipy.sparse as sp
    out.zero = _write(root / "zero.h5ad", sp.csr_matrix((0, N_GENES), dtype=np.float32),
                      _obs(0, rng, "z", ("T",)), genes)
    out.medium = _write(root / "medium.h5ad", _csr(rng, 6000, 300),
                        _obs(6000, rng, "m", ("a", "b")), [f"m{j}" for j in range(300)],
                        compression="gzip")
    out.gene_list = ["G29", "X2", "ABSENT", "G0", "Y1", "G7", "X1", "G15"]
    out.vocab_txt = root / "vocab.txt"
    out.vocab_txt.write_text("\n".join(out.gene_list) + "\n")
    out.vocab_tsv = root / "vocab.tsv"
    out.vocab_tsv.write_text("gene_id\tsymbol\n" + "".join(
        f"{g}\tsym_{g}\n" for g in out.gene_list))
    return out


# --------------------------------------------------------------------------------------
# Expectations from anndata

def read_anndata(paths):
    import anndata as ad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [ad.read_h5ad(p) for p in paths]


def expected_dense(adatas, var_names) -> np.ndarray:
    """The row-concatenation of the files, each file's X columns reindexed by gene name
    onto var_names (absent genes are 0), as float32."""
    import scipy.sparse as sp

    var_names = list(var_names)
    parts = []
    for a in adatas:
        X = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
        pos = {g: j for j, g in enumerate(a.var_names)}
        out = np.zeros((a.n_obs, len(var_names)), dtype=np.float32)
        for k, g in enumerate(var_names):
            if g in pos:
                out[:, k] = X[:, pos[g]]
        parts.append(out)
    return np.vstack(parts)


def expected_obs(adatas, column: str) -> np.ndarray:
    """The column over all files: labels (object, None for missing) or values."""
    import pandas as pd

    vals = []
    for a in adatas:
        s = a.obs[column]
        if isinstance(s.dtype, pd.CategoricalDtype):
            vals.extend(None if pd.isna(v) else v for v in s.tolist())
        else:
            vals.extend(s.to_numpy().tolist())
    return np.asarray(vals, dtype=object)


# --------------------------------------------------------------------------------------
# Batches

def x_to_dense(X) -> np.ndarray:
    """Any output kind's X as a dense float32 numpy array."""
    import scipy.sparse as sp

    if sp.issparse(X):
        return X.toarray()
    if isinstance(X, np.ndarray):
        return X
    import torch

    if X.layout == torch.sparse_csr:
        return X.to_dense().numpy()
    return X.numpy()


def epoch_rows_and_x(loader) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a loader: the global rows in delivery order and their X, dense."""
    rows, xs = [], []
    for b in loader:
        rows.append(np.asarray(b.rows))
        xs.append(x_to_dense(b.X))
    return np.concatenate(rows), np.concatenate(xs)


def x_parts(X) -> tuple[bytes, ...]:
    """The bytes that define X: data/indices/indptr (sparse) or the values (dense)."""
    import scipy.sparse as sp

    if sp.issparse(X):
        return (np.ascontiguousarray(X.data).tobytes(), np.ascontiguousarray(X.indices).tobytes(),
                np.ascontiguousarray(X.indptr).tobytes(), repr(X.shape).encode())
    if isinstance(X, np.ndarray):
        return (np.ascontiguousarray(X).tobytes(), repr(X.shape).encode())
    import torch

    if X.layout == torch.sparse_csr:
        return (X.values().numpy().tobytes(), X.col_indices().numpy().tobytes(),
                X.crow_indices().numpy().tobytes(), repr(tuple(X.shape)).encode())
    return (X.contiguous().numpy().tobytes(), repr(tuple(X.shape)).encode())


def fingerprint(batch) -> dict:
    """A JSON-able record of a batch: index, rows, X bytes (hex of a digest), obs."""
    import hashlib

    h = hashlib.sha256()
    for part in x_parts(batch.X):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    obs = {}
    for k, v in sorted(batch.obs.items()):
        arr = v.numpy() if hasattr(v, "numpy") else v
        obs[k] = hashlib.sha256(np.asarray(arr).tobytes()).hexdigest() \
            if isinstance(arr, np.ndarray) else repr(list(arr))
    return {"index": int(batch.index), "rows": np.asarray(batch.rows).tolist(),
            "x": h.hexdigest(), "obs": obs}


def resume_main(argv) -> int:
    """python loader_helpers.py resume SPEC.json OUT.json

    SPEC: {"paths": [...], "kwargs": {...}, "states": [state_dict, ...]}. For each state,
    a new Loader is built, given load_state_dict(state) and iterated to the end; OUT holds
    the fingerprints of the batches of each."""
    import cellfeed

    spec = json.loads(Path(argv[0]).read_text())
    results = []
    for state in spec["states"]:
        loader = cellfeed.Loader(spec["paths"], **spec["kwargs"])
        loader.load_state_dict(state)
        results.append([fingerprint(b) for b in loader])
        del loader
    # A mismatched configuration must be refused in this process too.
    kw = dict(spec["kwargs"], block_size=spec["kwargs"]["block_size"] + 1)
    try:
        cellfeed.Loader(spec["paths"], **kw).load_state_dict(spec["states"][0])
        mismatch = "accepted"
    except ValueError:
        mismatch = "ValueError"
    Path(argv[1]).write_text(json.dumps({"results": results, "mismatch": mismatch}))
    return 0


def abandon_main(argv) -> int:
    """python loader_helpers.py abandon PATH: take one batch of a loader with a full
    prefetch queue, then let the interpreter exit with the producer still running."""
    import cellfeed

    loader = cellfeed.Loader([argv[0]], batch_size=16, block_size=4, fetch_factor=4,
                             prefetch=4, threads=2)
    it = iter(loader)
    next(it)
    print("took one batch", flush=True)
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"resume": resume_main, "abandon": abandon_main}[cmd](args))
