"""cellfeed's reading of cell-load TOML split files against pip cell-load 0.10.4 itself.

Screens are written with anndata in cell-load's layout (a folder of h5ad files per
dataset; categorical obs columns for the perturbation, cell type and batch); cell-load's
own PerturbationDataModule runs in a subprocess from .venv-cellload (scripts/install.sh
makes it; the tests skip, saying so, when it is absent) and reports the cells of each of
its splits and what its DataLoaders yield (tests/python/cell_load_reference.py). cellfeed
reads the same TOML (cellfeed.perturb.from_cell_load_toml) and its SetLoader delivers every
split for one epoch. The cells of each split must be the same, except for the differences
stated in docs/PERTURBATION.md ("cell-load's split files"), each checked here:
- cell-load also yields the controls of a held-out cell type as control sets of the
  held-out split; cellfeed yields control sets in train only (held_out_controls="shared");
- cell-load draws a cell's controls from its own file, cellfeed from its context (the
  dataset's cell type) in every file of the dataset;
- cell-load replaces a group's short last set by S draws with replacement from it, so
  some of its cells can be missing from an epoch; cellfeed yields every cell.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellfeed
from cellfeed.perturb import from_cell_load_toml

REPO = Path(__file__).resolve().parents[2]
PY = Path(os.environ.get("CELLFEED_CELL_LOAD_PYTHON", REPO / ".venv-cellload" / "bin" / "python"))
RUNNER = Path(__file__).with_name("cell_load_reference.py")
pytestmark = pytest.mark.skipif(not PY.exists(), reason=f"no cell-load environment at {PY} "
                                "(scripts/install.sh makes .venv-cellload; or set CELLFEED_CELL_LOAD_PYTHON)")

KW = dict(pert_col="drug", cell_type_key="cell_type", batch_col="gem_group", control_pert="DMSO")
S, B = 8, 4


def write_screen(path: Path, cell_types, drugs, seed: int, n=(3, 14), genes: int = 12):
    """Cells of every (cell type, drug) in shuffled order (not contiguous), 2 gem groups."""
    rng = np.random.default_rng(seed)
    ct, dr = [], []
    for c in cell_types:
        for d in drugs:
            k = int(rng.integers(*n)) * (3 if d == "DMSO" else 1)
            ct += [c] * k
            dr += [d] * k
    order = rng.permutation(len(ct))
    obs = pd.DataFrame({"cell_type": pd.Categorical(np.array(ct)[order]),
                        "drug": pd.Categorical(np.array(dr)[order]),
                        "gem_group": pd.Categorical(rng.choice([f"{path.stem}_g1", f"{path.stem}_g2"], len(ct)))},
                       index=[f"{path.stem}:{i}" for i in range(len(ct))])
    X = sp.csr_matrix(rng.poisson(0.7, (len(ct), genes)).astype(np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"gene{i}" for i in range(genes)])).write_h5ad(path)
    return obs


def run_cell_load(tmp: Path, *tomls: Path) -> list[dict]:
    outs = [tmp / f"cell_load_{t.stem}.json" for t in tomls]
    args = dict(KW, batch_size=B, cell_sentence_len=S)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [str(PY), str(RUNNER), json.dumps(args)] + [str(x) for pair in zip(tomls, outs) for x in pair]
    r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(o.read_text()) for o in outs]


def cellfeed_epoch(files, pert, split):
    """Every set of one epoch: (perturbed cells, control cells, context, condition, batch)."""
    ld = cellfeed.SetLoader(files, pert, set_size=S, sets_per_batch=B, split=split, seed=1, output="numpy")
    col = ld.collection
    offsets = np.asarray(col.file_offsets)

    def name(r):
        f = int(np.searchsorted(offsets, r, side="right") - 1)
        return f"{Path(col.files[f]).stem}:{int(r - offsets[f])}"

    sets = []
    for b in ld:
        for i in range(len(b)):
            sets.append(([name(r) for r in b.pert_rows[i]], [name(r) for r in b.ctrl_rows[i]],
                         b.context_names[i], b.pert_names[i], b))
    return ld, sets


def cell_load_cells(res, split, control: bool, by_dataset=False):
    key = "ctrl" if control else "pert"
    return {(f"{s['dataset']}." if by_dataset else "") + f"{s['file']}:{i}"
            for s in res["splits"][split] for i in s[key]}


def obs_table(screens):
    return pd.concat([o.assign(dataset=d) for d, o in screens])


def check_against_cell_load(files, pert, res, obs, held_out_contexts):
    """Compare every split; returns cellfeed's sets per split."""
    ctx_of = {n: f"{d}.{c}" for n, d, c in zip(obs.index, obs.dataset, obs.cell_type)}
    is_ctrl = dict(zip(obs.index, obs.drug == "DMSO"))
    out = {}
    for split in ("train", "val", "test"):
        if not res["splits"][split]:
            with pytest.raises(ValueError, match="no sets"):
                cellfeed_epoch(files, pert, split)
            continue
        ld, sets = cellfeed_epoch(files, pert, split)
        out[split] = sets
        pert_cells = {c for p, _, _, cond, _ in sets if cond != "DMSO" for c in p}
        ctrl_set_cells = {c for p, _, _, cond, _ in sets if cond == "DMSO" for c in p}
        # perturbed cells: identical to cell-load's split, and to what its loader yields
        assert pert_cells == cell_load_cells(res, split, control=False), split
        yielded = {p for p, _, _, _ in res["yielded"][split] if not is_ctrl[p]}
        if split == "test":  # cell-load's test loader yields sets as they are
            assert pert_cells == yielded
        else:  # documented: it replaces a group's short last set by S draws from it, which
            assert yielded <= pert_cells  # can miss some of its cells; cellfeed yields all
        # control cells yielded as sets
        cl_ctrl = cell_load_cells(res, split, control=True)
        if split == "train":
            assert ctrl_set_cells == cl_ctrl
        else:  # documented: cell-load also yields the held-out cell types' controls here
            assert ctrl_set_cells == set()
            assert {ctx_of[c] for c in cl_ctrl} <= held_out_contexts
        # each perturbed cell's controls: controls of its context (dataset.cell type) that
        # cell-load also gives this split; cell-load's: of the cell's own file as well
        pool = {}
        for c in cl_ctrl:
            pool.setdefault(ctx_of[c], set()).add(c)
        for p, c, ctx, cond, _ in sets:
            assert all(ctx_of[x] == ctx for x in p)
            if cond != "DMSO":
                assert all(is_ctrl[x] for x in c) and set(c) <= pool[ctx], (split, ctx, cond)
        for p, c, ct, _ in res["yielded"][split]:
            assert is_ctrl[c] and ctx_of[c] == ctx_of[p] and c.split(":")[0] == p.split(":")[0]
    return out


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    """Two configurations, run by cell-load in one process: one dataset of two plates, and
    three datasets that share cell type names."""
    tmp = tmp_path_factory.mktemp("cell_load")
    drugs = ["DMSO", "drugA", "drugB", "drugC", "drugD"]
    one = [("screen", write_screen(tmp / "screen" / f"plate{p}.h5ad",
                                   ["K562", "RPE1", "HepG2", "Jurkat"], drugs, seed=p)) for p in (1, 2)]
    toml1 = tmp / "split.toml"
    toml1.write_text(f'[datasets]\nscreen = "{tmp / "screen"}"\n[training]\nscreen = "train"\n'
                     '[zeroshot]\n"screen.Jurkat" = "test"\n"screen.HepG2" = "val"\n'
                     '[fewshot."screen.RPE1"]\nval = ["drugA"]\ntest = ["drugB", "drugC"]\n')
    drugs = drugs[:4]
    multi = [("a", write_screen(tmp / "a" / "a1.h5ad", ["K562", "RPE1"], drugs, seed=1)),
             ("a", write_screen(tmp / "a" / "a2.h5ad", ["K562", "RPE1"], drugs, seed=2)),
             ("b", write_screen(tmp / "b" / "b1.h5ad", ["K562", "HepG2"], drugs, seed=3)),
             ("c", write_screen(tmp / "c" / "c1.h5ad", ["K562", "Jurkat"], drugs, seed=4))]
    toml2 = tmp / "multi.toml"
    toml2.write_text(f'[datasets]\na = "{tmp / "a"}"\nb = "{tmp / "b"}"\nc = "{tmp / "c"}"\n'
                     '[training]\na = "train"\nb = "train"\n'
                     '[zeroshot]\n"a.K562" = "test"\n"c.Jurkat" = "val"\n'
                     '[fewshot."b.HepG2"]\ntest = ["drugA"]\n')
    res1, res2 = run_cell_load(tmp, toml1, toml2)
    return {"one": (tmp, toml1, obs_table(one), res1), "multi": (tmp, toml2, obs_table(multi), res2)}


@pytest.fixture(scope="module")
def one_dataset(screens):
    return screens["one"]


def test_one_dataset_splits_match_cell_load(one_dataset):
    tmp, toml, obs, res = one_dataset
    files, pert = from_cell_load_toml(toml, held_out_controls="shared", **KW)
    assert [Path(f).name for f in files] == ["plate1.h5ad", "plate2.h5ad"]
    assert pert.zeroshot == {"test": ["screen.Jurkat"], "val": ["screen.HepG2"]}
    sets = check_against_cell_load(files, pert, res, obs, {"screen.Jurkat", "screen.HepG2", "screen.RPE1"})
    assert {ctx for _, _, ctx, _, _ in sets["test"]} == {"screen.Jurkat", "screen.RPE1"}


def test_one_dataset_default_rule_holds_controls_out(one_dataset):
    """cellfeed's default (held_out_controls="with_context"): the zero-shot cell types'
    controls leave train (cell-load trains on them) and serve only their split."""
    tmp, toml, obs, res = one_dataset
    files, pert = from_cell_load_toml(toml, **KW)
    _, train = cellfeed_epoch(files, pert, "train")
    ctrl = {c for _, cs, _, _, _ in train for c in cs} | {c for p, _, _, cond, _ in train if cond == "DMSO" for c in p}
    ctx_of = {n: f"screen.{c}" for n, c in zip(obs.index, obs.cell_type)}
    assert {ctx_of[c] for c in ctrl} == {"screen.K562", "screen.RPE1"}
    held = {ctx_of[c] for c in cell_load_cells(res, "train", control=True)}
    assert held == {"screen.K562", "screen.RPE1", "screen.HepG2", "screen.Jurkat"}  # cell-load's train
    _, test = cellfeed_epoch(files, pert, "test")
    for _, cs, ctx, cond, _ in test:
        assert {ctx_of[c] for c in cs} == {ctx}


def test_batch_fields_match_cell_load(one_dataset):
    tmp, toml, obs, res = one_dataset
    files, pert = from_cell_load_toml(toml, held_out_controls="shared", **KW)
    ld = cellfeed.SetLoader(files, pert, set_size=S, sets_per_batch=B, output="torch")
    d = next(iter(ld)).as_cell_load()
    f = res["fields"]
    base = {"pert_cell_emb", "ctrl_cell_emb", "pert_emb", "pert_name", "cell_type", "cell_type_onehot",
            "batch", "batch_name"}
    # barcode=True adds the two barcodes; dataset_name (documented) is not in as_cell_load():
    # with a cell-load TOML the dataset is the prefix of cellfeed's cell_type
    assert set(f) - {"pert_cell_barcode", "ctrl_cell_barcode"} == base | {"dataset_name"}
    assert set(d) == base
    for k in base:
        if "shape" in f[k]:
            assert d[k].shape[0] == f[k]["shape"][0] == B * S, k
            assert str(d[k].dtype).replace("torch.", "") == f[k]["dtype"], k
        else:
            assert isinstance(d[k], list) and len(d[k]) == f[k]["len"], k
    assert d["pert_cell_emb"].shape[1] == f["pert_cell_emb"]["shape"][1] == 12
    # one-hot widths differ (documented): cell-load's vocabularies span every file, test
    # perturbations and control included; cellfeed's the training split, plus one unseen column
    assert f["pert_emb"]["shape"][1] == len(res["vocab"]["perturbation"]) == 5
    assert d["pert_emb"].shape[1] == len(ld.vocab["perturbation"]) + 1
    first = res["first_batch"]
    order = res["onehot_order"]
    for row, name in zip(first["pert_emb"], first["pert_name"]):
        assert order["perturbation"][int(np.argmax(row))] == name
    for row, name in zip(first["cell_type_onehot"], first["cell_type"]):
        assert order["cell_type"][int(np.argmax(row))] == name  # cell-load: the cell type value
    assert set(d["cell_type"]) <= {f"screen.{c}" for c in ["K562", "RPE1", "HepG2", "Jurkat"]}


def test_several_datasets_match_cell_load(screens):
    """Two datasets share cell type names; holding out "a.K562" holds out K562 of a only.
    Dataset c is named only by a zero-shot key: cell-load uses that cell type of c alone."""
    tmp, toml, obs, res = screens["multi"]
    files, pert = from_cell_load_toml(toml, held_out_controls="shared", **KW)
    assert [Path(f).name for f in files] == ["a1.h5ad", "a2.h5ad", "b1.h5ad", "c1.h5ad"]
    assert pert.training == ["a", "b"]
    sets = check_against_cell_load(files, pert, res, obs, {"a.K562", "c.Jurkat", "b.HepG2"})
    train_ctx = {ctx for _, _, ctx, _, _ in sets["train"]}
    assert train_ctx == {"a.K562", "a.RPE1", "b.K562", "b.HepG2", "c.Jurkat"}  # held out: controls (shared)
    assert {ctx for _, _, ctx, cond, _ in sets["train"] if cond != "DMSO"} == {"a.RPE1", "b.K562", "b.HepG2"}
    # c.K562 is in no split, in either loader
    c_k562 = {n for n, d, c in zip(obs.index, obs.dataset, obs.cell_type) if d == "c" and c == "K562"}
    used = set().union(*(cell_load_cells(res, s, control=k) for s in ("train", "val", "test") for k in (0, 1)))
    assert not c_k562 & used
    ld = cellfeed.SetLoader(files, pert, set_size=S, sets_per_batch=B, output="numpy")
    assert "c.K562" not in set(ld.groups.context)


def test_cell_load_toml_bad_input(tmp_path):
    write_screen(tmp_path / "a" / "a1.h5ad", ["K562"], ["DMSO", "drugA"], seed=1)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[datasets]\na = "{tmp_path / "a"}"\n[zeroshot]\n"b.K562" = "val"\n')
    with pytest.raises(ValueError, match=r"bad.toml: \[zeroshot\] 'b.K562' is not \"<dataset>.<cell type>\""):
        from_cell_load_toml(bad)
    missing = tmp_path / "missing.toml"
    missing.write_text(f'[datasets]\na = "{tmp_path / "nothere"}"\n[training]\na = "train"\n')
    with pytest.raises(ValueError, match="dataset 'a': no such file or folder"):
        from_cell_load_toml(missing)
    globbed = tmp_path / "glob.toml"  # globs with {a,b} alternatives, as cell-load expands them
    write_screen(tmp_path / "x" / "x1.h5", ["K562"], ["DMSO", "drugA"], seed=3)
    globbed.write_text('[datasets]\na = "{a,x}"\nb = "a/*.h5ad"\n[training]\na = "train"\nb = "train"\n')
    with pytest.raises(ValueError, match="a file is in two datasets"):
        from_cell_load_toml(globbed)
    globbed.write_text('[datasets]\na = "{a,x}"\n[training]\na = "train"\n')
    assert [Path(f).name for f in from_cell_load_toml(globbed)[0]] == ["a1.h5ad", "x1.h5"]
    ok = tmp_path / "ok.toml"
    ok.write_text(f'[datasets]\na = "{tmp_path / "a"}"\n[training]\na = "train"\n')
    files, pert = from_cell_load_toml(ok, **KW)
    write_screen(tmp_path / "b1.h5ad", ["K562"], ["DMSO", "drugA"], seed=2)
    with pytest.raises(ValueError, match="b1.h5ad is in no dataset"):
        cellfeed.SetLoader(files + [str(tmp_path / "b1.h5ad")], pert, set_size=S, output="numpy")
