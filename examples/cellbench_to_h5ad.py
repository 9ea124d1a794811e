"""Convert the CellBench CSVs (data/cellbench) into one .h5ad per source, with anndata.

X: csr_matrix of float32 UMI counts (cells x genes, gzip-compressed like CELLxGENE files);
obs: cell_line (categorical, from cell_line_demuxlet), source (categorical), total_counts;
var index: Ensembl gene IDs (different in each source).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

SOURCES = ["sc_celseq2", "sc_dropseq", "sc_celseq2_5cl_p1", "sc_celseq2_5cl_p2", "sc_celseq2_5cl_p3"]
DATA = Path(__file__).resolve().parent.parent / "data" / "cellbench"


def convert(source: str, out_dir: Path) -> Path:
    counts = pd.read_csv(DATA / f"{source}.count.csv.gz", index_col=0)  # genes x cells
    meta = pd.read_csv(DATA / f"{source}.metadata.csv.gz", index_col=0)
    cells = [c for c in counts.columns if c in meta.index]
    counts = counts[cells]
    X = sp.csr_matrix(counts.to_numpy(dtype=np.float32).T)
    obs = pd.DataFrame(index=pd.Index([f"{source}:{c}" for c in cells], name=None))
    obs["cell_line"] = pd.Categorical(meta.loc[cells, "cell_line_demuxlet"].astype(str).to_numpy())
    obs["source"] = pd.Categorical([source] * len(cells))
    obs["total_counts"] = np.asarray(X.sum(axis=1)).ravel().astype(np.float32)
    var = pd.DataFrame(index=pd.Index(counts.index.astype(str), name=None))
    out = out_dir / f"{source}.h5ad"
    ad.AnnData(X=X, obs=obs, var=var).write_h5ad(out, compression="gzip")
    return out


def main(argv=None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=DATA / "h5ad")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in SOURCES:
        out = args.out / f"{s}.h5ad"
        if not out.exists():
            convert(s, args.out)
        paths.append(out)
    return paths


if __name__ == "__main__":
    for path in main():
        print(path)
