"""Generate Tahoe-100M-like h5ad files with h5py, following the anndata on-disk spec.

14 plate files of unequal sizes (random-sampling plate entropy at batch 64: 3.62-3.63
bits), 62,710 genes, values per cell log-normal (median ~1,200, mean ~1,380), integer
counts with mean ~1.5 per stored value, float32 data, int32 indices, int64 indptr, and obs
columns modeled on Tahoe-100M; var names are real GENCODE v44 Ensembl IDs. Chunks hold 75,000 values, what h5py picks for a full-size
plate (FORMATS.md), so reads cost what they cost on the real atlas.

    python bench/tahoe_like.py OUT_DIR --cells 150000 --compression gzip
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

N_GENES = 62_710
CHUNK_VALUES = 75_000
# Relative plate sizes (smallest/largest ~0.54); entropy 3.627 bits at batch 64 under
# random sampling, as docs/SAMPLING.md's Table 2 layout.
PLATE_WEIGHTS = np.array([90113, 72031, 115007, 84211, 106009, 67103, 124001, 80021,
                          100003, 89017, 110119, 75041, 120007, 86011], dtype=np.float64)
DRUGS = [f"drug_{i:03d}" for i in range(380)]
CELL_LINES = [f"CVCL_{i:04d}" for i in range(50)]
PHASES = ["G1", "G2M", "S"]


def gene_ids() -> list[str]:
    """The first 62,710 Ensembl IDs of GENCODE v44 (shipped with cellfeed): Tahoe-100M's
    62,710 genes are of that kind, so vocabularies map onto these as onto the real files."""
    table = Path(__file__).resolve().parents[1] / "python/cellfeed/vocab/cellxgene_gencode_v44_genes.csv"
    with open(table, encoding="utf-8") as fh:
        ids = [line.split(",", 1)[0] for line in fh if line.strip()]
    if len(ids) < N_GENES:
        raise ValueError(f"{table}: {len(ids)} genes, expected at least {N_GENES}")
    return ids[:N_GENES]


def plate_sizes(total: int) -> list[int]:
    sizes = np.floor(PLATE_WEIGHTS / PLATE_WEIGHTS.sum() * total).astype(np.int64)
    sizes[: total - sizes.sum()] += 1
    return sizes.tolist()


def _write_strings(group, name, values):
    ds = group.create_dataset(name, data=np.asarray(values, dtype=object),
                              dtype=h5py.string_dtype("utf-8"))
    ds.attrs["encoding-type"] = "string-array"
    ds.attrs["encoding-version"] = "0.2.0"


def _write_categorical(group, name, codes, categories):
    g = group.create_group(name)
    g.attrs["encoding-type"] = "categorical"
    g.attrs["encoding-version"] = "0.2.0"
    g.attrs["ordered"] = False
    dtype = np.int8 if len(categories) < 128 else np.int16
    g.create_dataset("codes", data=codes.astype(dtype))
    _write_strings(g, "categories", categories)


def _write_array(group, name, values):
    ds = group.create_dataset(name, data=values)
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "0.2.0"


def _write_header_and_csr_group(f: h5py.File, n_cells: int):
    f.attrs["encoding-type"] = "anndata"
    f.attrs["encoding-version"] = "0.1.0"
    X = f.create_group("X")
    X.attrs["encoding-type"] = "csr_matrix"
    X.attrs["encoding-version"] = "0.1.0"
    X.attrs["shape"] = np.array([n_cells, N_GENES], dtype=np.int64)
    return X


def _write_dataframe_group(f: h5py.File, name: str, columns: list[str]):
    g = f.create_group(name)
    g.attrs["encoding-type"] = "dataframe"
    g.attrs["encoding-version"] = "0.2.0"
    g.attrs["_index"] = "_index"
    g.attrs["column-order"] = columns if columns else np.array([], dtype=object).astype("S")
    return g


def _write_var(f: h5py.File) -> None:
    var = _write_dataframe_group(f, "var", [])
    _write_strings(var, "_index", gene_ids())


def write_plate(path: Path, plate: int, n_cells: int, compression: str | None, seed: int,
                values_per_cell_scale: float = 1.0) -> None:
    rng = np.random.default_rng([seed, plate])
    comp = {"compression": "gzip", "compression_opts": 4} if compression == "gzip" else {}
    # Values per cell: log-normal, median 1,200, mean ~1,380 (sigma 0.529).
    per_cell = np.clip(rng.lognormal(np.log(1200 * values_per_cell_scale), 0.529, n_cells),
                       1, N_GENES).astype(np.int64)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(per_cell, out=indptr[1:])
    nnz = int(indptr[-1])
    with h5py.File(path, "w") as f:
        X = _write_header_and_csr_group(f, n_cells)
        chunks = (min(CHUNK_VALUES, max(nnz, 1)),)
        data = X.create_dataset("data", shape=(nnz,), dtype=np.float32, chunks=chunks,
                                maxshape=(None,), **comp)
        indices = X.create_dataset("indices", shape=(nnz,), dtype=np.int32, chunks=chunks,
                                   maxshape=(None,), **comp)
        X.create_dataset("indptr", data=indptr, chunks=(min(CHUNK_VALUES, n_cells + 1),),
                         maxshape=(None,), **comp)
        # Write in slabs of cells so memory stays bounded.
        step = max(1, 2_000_000 // max(int(per_cell.mean()), 1))
        for c0 in range(0, n_cells, step):
            c1 = min(n_cells, c0 + step)
            lo, hi = int(indptr[c0]), int(indptr[c1])
            idx = np.empty(hi - lo, dtype=np.int32)
            for c in range(c0, c1):
                k = int(per_cell[c])
                genes = rng.choice(N_GENES, size=k, replace=False) if k > N_GENES // 4 else \
                    np.unique(rng.integers(0, N_GENES, size=k + k // 8))[:k]
                while len(genes) < k:  # rare: too many duplicates drawn
                    genes = np.unique(np.concatenate([genes, rng.integers(0, N_GENES, size=k)]))[:k]
                genes.sort()
                idx[int(indptr[c]) - lo:int(indptr[c + 1]) - lo] = genes
            indices[lo:hi] = idx
            # Counts >= 1 with mean ~1.5: 1 + Poisson(0.5).
            data[lo:hi] = (1 + rng.poisson(0.5, size=hi - lo)).astype(np.float32)
        obs = _write_dataframe_group(f, "obs", ["plate", "sample", "drug", "cell_line",
                                               "gene_count", "tscp_count", "pcnt_mito", "phase"])
        _write_strings(obs, "_index", [f"p{plate}_c{i}" for i in range(n_cells)])
        _write_categorical(obs, "plate", np.full(n_cells, 0), [f"plate{plate + 1}"])
        samples = [f"smp_{plate * 100 + i}" for i in range(96)]
        _write_categorical(obs, "sample", rng.integers(0, 96, n_cells), samples)
        _write_categorical(obs, "drug", rng.integers(0, len(DRUGS), n_cells), DRUGS)
        _write_categorical(obs, "cell_line", rng.integers(0, len(CELL_LINES), n_cells), CELL_LINES)
        _write_array(obs, "gene_count", per_cell.astype(np.int64))
        _write_array(obs, "tscp_count", (per_cell * 1.5).astype(np.int64))
        _write_array(obs, "pcnt_mito", rng.beta(2, 40, n_cells).astype(np.float64) * 100)
        _write_categorical(obs, "phase", rng.integers(0, 3, n_cells), PHASES)
        _write_var(f)
        for name in ("layers", "obsm", "varm", "obsp", "varp", "uns"):
            g = f.create_group(name)
            g.attrs["encoding-type"] = "dict"
            g.attrs["encoding-version"] = "0.1.0"


def write_tiny_plate(path: Path, plate: int, n_cells: int, seed: int = 0) -> None:
    """A plate of n_cells with one stored value per cell, written in slabs with numpy only:
    a 100M-cell collection that fits the disk, to show that opening costs what is read,
    not what the collection holds. Index strings are fixed-length (anndata reads them)."""
    rng = np.random.default_rng([seed, plate, 1])
    slab = 5_000_000
    with h5py.File(path, "w") as f:
        X = _write_header_and_csr_group(f, n_cells)
        kw = {"chunks": (min(CHUNK_VALUES, max(n_cells, 1)),), "maxshape": (None,)}
        data = X.create_dataset("data", shape=(n_cells,), dtype=np.float32, **kw)
        indices = X.create_dataset("indices", shape=(n_cells,), dtype=np.int32, **kw)
        indptr = X.create_dataset("indptr", shape=(n_cells + 1,), dtype=np.int64,
                                  chunks=(min(CHUNK_VALUES, n_cells + 1),), maxshape=(None,))
        obs = _write_dataframe_group(f, "obs", ["plate", "drug", "pcnt_mito"])
        index = obs.create_dataset("_index", shape=(n_cells,), dtype="S16")
        index.attrs["encoding-type"] = "string-array"
        index.attrs["encoding-version"] = "0.2.0"
        for lo in range(0, n_cells, slab):
            hi = min(n_cells, lo + slab)
            data[lo:hi] = np.ones(hi - lo, dtype=np.float32)
            indices[lo:hi] = rng.integers(0, N_GENES, hi - lo, dtype=np.int32)
            indptr[lo:hi] = np.arange(lo, hi, dtype=np.int64)
            index[lo:hi] = np.char.add(f"p{plate}_".encode(), np.arange(lo, hi).astype("S10"))
        indptr[n_cells] = n_cells
        _write_categorical(obs, "plate", np.zeros(n_cells, dtype=np.int8), [f"plate{plate + 1}"])
        # Columns to filter on (bench/corpus_scale_bench.py), as in the full plates.
        _write_categorical(obs, "drug", rng.integers(0, len(DRUGS), n_cells, dtype=np.int16), DRUGS)
        _write_array(obs, "pcnt_mito", (rng.beta(2, 40, n_cells) * 100).astype(np.float32))
        _write_var(f)


def generate(out_dir: Path, cells: int, compression: str | None, seed: int = 0,
             plates: int = 14, values_per_cell_scale: float = 1.0) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = plate_sizes(cells)[:plates]
    paths = []
    for p, n in enumerate(sizes):
        path = out_dir / f"plate{p + 1:02d}.h5ad"
        write_plate(path, p, n, compression, seed, values_per_cell_scale)
        paths.append(path)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cells", type=int, default=150_000)
    ap.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    ap.add_argument("--plates", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    comp = None if args.compression == "none" else args.compression
    for p in generate(args.out, args.cells, comp, args.seed, args.plates):
        print(p)


if __name__ == "__main__":
    main()
