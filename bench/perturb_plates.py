"""Tahoe-100M-like drug-screen plates for the cell-set benchmark (bench/perturb_bench.py).

Each plate is a file of wells; a well holds one drug (one DMSO_TF control well per plate,
`dmso_scale` times larger), its cells contiguous in the file, and the 50 cell lines
multiplexed in every well (as Tahoe's plates). Within a well the cells are ordered by cell
line, so each (cell line, drug) group is one run in its file: the order pip cell-load's
consecutive mode requires (real Tahoe files would need that sort first). Drugs are spread
over the plates, each in one well. X is a CSR matrix of `genes` columns (the HVG panel
a STATE model trains on; cell-load reads X when no obsm key is given), integer counts
with ~`density` of the values stored; obs: drug, cell_line, sample (the well), plate,
categorical, written with h5py following the anndata spec (helpers of bench/tahoe_like.py),
chunks of 75,000 values as there.

    python bench/perturb_plates.py OUT_DIR --plates 2 --drugs 100 --cells-per-well 6000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

from tahoe_like import CHUNK_VALUES, _write_array, _write_categorical, _write_dataframe_group, _write_strings

LINES = [f"CVCL_{i:04d}" for i in range(50)]
CONTROL = "DMSO_TF"


def plate_layout(plates: int, drugs: int, cells_per_well: int, dmso_scale: int, seed: int):
    """Per plate: (well drug names, well sizes). Drug d goes to plate d % plates."""
    rng = np.random.default_rng([seed, 7])
    out = []
    for p in range(plates):
        names = [CONTROL] + [f"drug_{d:03d}" for d in range(p, drugs, plates)]
        sizes = rng.poisson(cells_per_well, len(names)).astype(np.int64)
        sizes[0] = cells_per_well * dmso_scale
        order = rng.permutation(len(names))  # the DMSO well anywhere on the plate
        out.append(([names[i] for i in order], sizes[order]))
    return out


def write_plate(path: Path, plate: int, wells, sizes, genes: int, density: float, compression, seed: int):
    rng = np.random.default_rng([seed, plate])
    n = int(sizes.sum())
    comp = {"compression": "gzip", "compression_opts": 4} if compression == "gzip" else {}
    well = np.repeat(np.arange(len(wells)), sizes)
    line = np.concatenate([np.sort(rng.integers(0, len(LINES), s)) for s in sizes])
    drug_names = sorted(set(wells))
    drug_code = np.array([drug_names.index(w) for w in wells])[well]
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        X = f.create_group("X")
        X.attrs["encoding-type"] = "csr_matrix"
        X.attrs["encoding-version"] = "0.1.0"
        X.attrs["shape"] = np.array([n, genes], dtype=np.int64)
        kw = dict(chunks=(CHUNK_VALUES,), maxshape=(None,), **comp)
        data = X.create_dataset("data", shape=(0,), dtype=np.float32, **kw)
        indices = X.create_dataset("indices", shape=(0,), dtype=np.int32, **kw)
        indptr = np.zeros(n + 1, np.int64)
        step = 20_000
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            # per-cell depth varies (log-normal), genes drawn independently per value
            p = np.clip(density * rng.lognormal(0, 0.4, (c1 - c0, 1)), 0, 1)
            mask = rng.random((c1 - c0, genes)) < p
            rows, cols = np.nonzero(mask)
            counts = np.bincount(rows, minlength=c1 - c0)
            indptr[c0 + 1:c1 + 1] = indptr[c0] + np.cumsum(counts)
            lo, hi = int(indptr[c0]), int(indptr[c1])
            data.resize((hi,))
            indices.resize((hi,))
            data[lo:hi] = (1 + rng.poisson(0.5, hi - lo)).astype(np.float32)
            indices[lo:hi] = cols.astype(np.int32)
        X.create_dataset("indptr", data=indptr, chunks=(min(CHUNK_VALUES, n + 1),), maxshape=(None,), **comp)
        obs = _write_dataframe_group(f, "obs", ["drug", "cell_line", "sample", "plate", "tscp_count"])
        _write_strings(obs, "_index", [f"p{plate}_c{i}" for i in range(n)])
        _write_categorical(obs, "drug", drug_code, drug_names)
        _write_categorical(obs, "cell_line", line, LINES)
        _write_categorical(obs, "sample", well, [f"smp_{plate * 1000 + i}" for i in range(len(wells))])
        _write_categorical(obs, "plate", np.zeros(n, np.int64), [f"plate{plate + 1}"])
        _write_array(obs, "tscp_count", np.diff(indptr).astype(np.int64))
        var = _write_dataframe_group(f, "var", [])
        _write_strings(var, "_index", [f"HVG{i:04d}" for i in range(genes)])
        for name in ("layers", "obsm", "varm", "obsp", "varp", "uns"):
            g = f.create_group(name)
            g.attrs["encoding-type"] = "dict"
            g.attrs["encoding-version"] = "0.1.0"
    return n


def generate(out_dir: Path, plates: int, drugs: int, cells_per_well: int, genes: int = 2000,
             density: float = 0.1, compression=None, dmso_scale: int = 8, seed: int = 0) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for p, (wells, sizes) in enumerate(plate_layout(plates, drugs, cells_per_well, dmso_scale, seed)):
        path = out_dir / f"plate{p + 1:02d}.h5ad"
        write_plate(path, p, wells, sizes, genes, density, compression, seed)
        paths.append(path)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--plates", type=int, default=2)
    ap.add_argument("--drugs", type=int, default=100)
    ap.add_argument("--cells-per-well", type=int, default=6000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    args = ap.parse_args(argv)
    for p in generate(args.out, args.plates, args.drugs, args.cells_per_well, args.genes,
                      compression=None if args.compression == "none" else "gzip"):
        print(p)


if __name__ == "__main__":
    main()
