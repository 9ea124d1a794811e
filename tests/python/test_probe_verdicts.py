"""A probe that passed is not run again on the same file bytes: reopening a collection in
the same process, and DataLoader workers forked after the open, do not probe its files
again; a file whose bytes or metadata changed (its ctime moved), another probe program or
other limits are probed again. Probes are counted with a CELLFEED_PROBE wrapper that logs
each start and then runs the real probe."""

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

import cellfeed

REAL_PROBE = Path(cellfeed.__file__).parent / "cellfeed-probe"


def _files(d: Path, n: int = 3) -> list[str]:
    rng = np.random.default_rng([5, 1])
    out = []
    for i in range(n):
        x = sp.random(64, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
        x.data = np.ceil(x.data * 5)
        obs = pd.DataFrame({"donor": [f"d{j % 3}" for j in range(64)]}, index=[f"f{i}c{j}" for j in range(64)])
        p = d / f"f{i}.h5ad"
        ad.AnnData(X=x, obs=obs).write_h5ad(p)
        out.append(str(p))
    return out


def _run(tmp_path: Path, code: str, *args) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = tmp_path / "probes.log"
    log.write_text("")
    wrapper = tmp_path / "probe.sh"
    wrapper.write_text(f'#!/bin/sh\necho "$1 $(basename "$2") $3" >> {log}\nexec {REAL_PROBE} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLFEED_")}
    env["CELLFEED_PROBE"] = str(wrapper)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r, [line.strip() for line in log.read_text().splitlines()]


def test_reopening_does_not_probe_the_same_files_again(tmp_path):
    paths = _files(tmp_path)
    r, probes = _run(tmp_path, """
        import os, sys, cellfeed
        paths = sys.argv[1:]
        cellfeed.open(paths)
        print("first", flush=True)
        c = cellfeed.open(paths)
        c.obs_names()  # the obs index: one strings probe per file
        cellfeed.open(paths).obs_names()
        os.chmod(paths[1], 0o600)  # metadata only: its ctime moves
        cellfeed.open(paths)
        cellfeed.open(paths, open_timeout=30)  # other limits
        cellfeed._cellfeed._forget_open_probes()
        cellfeed.open(paths)
        """, *paths)
    opens = [p for p in probes if p.startswith("open ")]
    strings = [p for p in probes if p.startswith("strings ")]
    # first open: 3; chmod: f1 again; other limits: 3; after forgetting: 3.
    assert sorted(opens) == sorted(["open f0.h5ad", "open f1.h5ad", "open f2.h5ad"] * 3
                                   + ["open f1.h5ad"]), probes
    assert sorted(strings) == sorted(f"strings f{i}.h5ad obs/_index" for i in range(3)), probes


def test_forked_dataloader_workers_do_not_probe_again(tmp_path):
    paths = _files(tmp_path)
    r, probes = _run(tmp_path, """
        import sys, cellfeed
        from torch.utils.data import DataLoader
        loader = cellfeed.Loader(sys.argv[1:], batch_size=16, obs=["donor"], seed=1)
        want = sorted(int(i) for b in loader for i in b.rows)
        got = []
        for epoch in range(2):  # non-persistent workers: started (and reopening) each epoch
            loader.set_epoch(epoch)
            dl = DataLoader(loader, batch_size=None, num_workers=2,
                            multiprocessing_context="fork")
            got.append(sorted(int(i) for b in dl for i in b.rows))
        assert got[0] == want and got[1] == want
        print("ok")
        """, *paths)
    assert r.stdout.strip().endswith("ok")
    assert sorted(p for p in probes if p.startswith("open ")) == [
        "open f0.h5ad", "open f1.h5ad", "open f2.h5ad"], probes
