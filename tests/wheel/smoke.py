"""The wheel smoke test's Python half, run by scripts/wheel_smoke.sh in a clean venv that
holds only the repaired wheel and its dependencies: imports cellfeed from there, opens the
fixture stores (tests/wheel/make_fixture.py) with libhdf5 isolation on, so the bundled
cellfeed-probe must start and load its libraries, and checks every value read and every
batch of a Loader against expected.npz (written by another Python's anndata); then runs
the venv's `cellfeed` program: `inspect` (the native CLI and its probe) and `corpus` (which
the CLI hands to this venv's Python).

usage: python smoke.py FIXTURE_DIR SITE_PACKAGES VENV_BIN
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def fail(msg: str) -> None:
    print(f"wheel smoke: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def cli(bin_dir: Path, fixtures: Path, *args: str):
    cmd = [str(bin_dir / "cellfeed"), *args, "--json"]
    r = subprocess.run(cmd, cwd=fixtures, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main(fixtures: Path, site: Path, bin_dir: Path) -> None:
    for mod in ("anndata", "h5py", "zarr"):  # the venv must be clean of the fixtures' writers
        if importlib.util.find_spec(mod) is not None:
            fail(f"{mod} is importable: the venv is not clean")
    import cellfeed

    if Path(cellfeed.__file__).resolve().parent != (site / "cellfeed").resolve():
        fail(f"cellfeed imported from {cellfeed.__file__}, not from {site}")
    if os.environ.get("CELLFEED_ISOLATE") not in (None, "", "1"):
        fail("CELLFEED_ISOLATE is set: the probe would not run")
    exp = np.load(fixtures / "expected.npz")
    files = [str(fixtures / f) for f in exp["files"]]

    # Each store alone, isolation on (the default) and explicitly: values and obs.
    for f, name in zip(files, exp["files"]):
        for isolate in (None, True):
            col = cellfeed.open(f, isolate=isolate)
            want = exp[f"{name}:X"]
            if (col.n_obs, col.n_vars) != want.shape:
                fail(f"{name}: shape {(col.n_obs, col.n_vars)}, expected {want.shape}")
            if list(col.var_names) != list(exp["var_names"]):
                fail(f"{name}: var_names differ")
            got = col.read(list(range(col.n_obs))[::-1]).toarray()
            if not np.array_equal(got, want[::-1]):
                fail(f"{name}: values read differ from anndata's")
            obs = col.obs(["cell_type"])
            if list(obs["cell_type"].astype(str)) != list(exp[f"{name}:cell_type"]):
                fail(f"{name}: obs cell_type differs")
            if list(obs.index) != list(exp[f"{name}:obs_names"]):
                fail(f"{name}: obs names differ")

    # The probe is really in the way: a probe that fails makes opening fail.
    os.environ["CELLFEED_PROBE"] = "/bin/false"
    try:
        cellfeed.open(files[0])
    except Exception:  # noqa: BLE001
        pass
    else:
        fail("opening with CELLFEED_PROBE=/bin/false succeeded: isolation did not run the probe")
    del os.environ["CELLFEED_PROBE"]

    # One epoch of a Loader over all four stores: every cell once, values as written.
    want = np.concatenate([exp[f"{n}:X"] for n in exp["files"]])
    loader = cellfeed.Loader(files, batch_size=16, block_size=4, fetch_factor=2, seed=3,
                             obs=["cell_type"])
    seen = np.zeros(len(want), dtype=int)
    batches = 0
    for batch in loader:
        rows = np.asarray(batch.rows)
        if not np.array_equal(batch.X.toarray(), want[rows]):
            fail(f"batch {batches}: values differ from anndata's for rows {rows.tolist()}")
        seen[rows] += 1
        batches += 1
    if not (seen == 1).all():
        fail(f"the epoch did not give every cell once: counts {np.bincount(seen).tolist()}")
    print(f"python: {len(files)} stores, {len(want)} cells, {batches} batches: values equal to anndata's")

    info = cli(bin_dir, fixtures, "inspect", *exp["files"])
    got = [(i["path"], i["n_obs"], i["n_vars"]) for i in info]
    expect = [(n, *exp[f"{n}:X"].shape) for n in exp["files"]]
    if got != expect:
        fail(f"cellfeed inspect: {got}, expected {expect}")
    report = cli(bin_dir, fixtures, "corpus", "corpus.toml")
    passing = {s["source"]: s["passing"] for s in report["sources"]}
    b_cells = sum(int((exp[f"{n}:cell_type"] == "B").sum()) for n in ("gzip.h5ad", "lzf.h5ad"))
    zarr_cells = sum(len(exp[f"{n}:X"]) for n in ("blosc_v2.zarr", "zstd_v3.zarr"))
    if passing != {"hdf5": b_cells, "zarr": zarr_cells}:
        fail(f"cellfeed corpus: passing {passing}, expected {{'hdf5': {b_cells}, 'zarr': {zarr_cells}}}")
    print(f"cli: cellfeed inspect ({len(info)} stores) and cellfeed corpus ({sum(passing.values())} cells) as expected")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
