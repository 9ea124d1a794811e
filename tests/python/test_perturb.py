"""Cell sets with matched controls (cellfeed.SetLoader), checked against pandas on obs read
by anndata from real h5ad files written by anndata.

The files are laid out like drug-screen plates: each plate a file, each well one
condition, the cells of a well contiguous, several cell lines per well (multiplexed), DMSO
("ctrl") wells as controls. Plate 2 has no control cells of cell line C3, so C3's cells
on plate 2 fall back from the (plate) level to the context alone.
"""

from __future__ import annotations

import json
import os
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellfeed
from cellfeed.perturb import parse_condition

CONDITIONS = ["ctrl", "D1+ctrl", "D2+ctrl", "D1+D2", "D3+ctrl", "D4+ctrl", "D2+D4"]
DOSES = {"ctrl": 0.0, "D1": 0.5, "D2": 1.0, "D3": 5.0, "D4": 0.05}
LINES = ["C1", "C2", "C3"]


def _tahoe(cond: str) -> str:
    parts = [p for p in cond.split("+") if p != "ctrl"] or ["DMSO_TF"]
    return "[" + ", ".join(f"('{p}', {DOSES.get(p, 0.0)}, 'uM')" for p in parts) + "]"


def _plate(plate: int, seed: int, n_vars: int = 30) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    rows = []
    well = 0
    for rep in range(2):
        for cond in CONDITIONS:
            n = int(rng.integers(15, 40))
            lines = rng.choice(LINES, size=n, p=[0.5, 0.3, 0.2])
            if cond == "ctrl" and plate == 2:
                lines = rng.choice(["C1", "C2"], size=n)  # no C3 controls on plate 2
            for line in lines:
                rows.append((cond, line, f"P{plate}", f"P{plate}_W{well}"))
            well += 1
    obs = pd.DataFrame(rows, columns=["condition", "cell_line", "plate", "well"])
    obs["drugname_drugconc"] = [_tahoe(c) for c in obs["condition"]]
    obs["scperturb"] = [c.replace("+", "_") for c in obs["condition"]]
    for col in obs.columns:
        obs[col] = obs[col].astype("category")
    obs.index = [f"p{plate}_c{i}" for i in range(len(obs))]
    X = sp.random(len(obs), n_vars, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    X.data = np.ceil(X.data * 10)
    var = pd.DataFrame(index=[f"g{i}" for i in range(n_vars)])
    return ad.AnnData(X=X, obs=obs, var=var)


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    d = tmp_path_factory.mktemp("perturb")
    paths = []
    for p in (1, 2):
        a = _plate(p, seed=p)
        path = d / f"plate{p}.h5ad"
        a.write_h5ad(path)
        paths.append(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ad.concat([ad.read_h5ad(p) for p in paths])
    return paths, ref


def _pert(**kw):
    base = dict(pert_col="condition", control=["ctrl"], context="cell_line", batch="plate",
                match=[["plate"], []])
    base.update(kw)
    return cellfeed.Perturbation(**base)


def _epoch(loader, epoch=None):
    if epoch is not None:
        loader.set_epoch(epoch)
    return list(loader)


# -- condition strings --------------------------------------------------------------------------
def test_parse_conditions_each_format():
    assert parse_condition("A+B", "+", ["ctrl"]) == ([("A", None, ""), ("B", None, "")], False)
    assert parse_condition("B+A", "+", ["ctrl"]) == parse_condition("A+B", "+", ["ctrl"])
    parts, ctl = parse_condition("A+ctrl", "+", ["ctrl"])
    assert [p[0] for p in parts] == ["A"] and not ctl
    assert parse_condition("ctrl", "+", ["ctrl"])[1]
    assert parse_condition("ctrl+ctrl", "+", ["ctrl"])[1]
    parts, _ = parse_condition("KLF1_MAP2K6", "_", ["control"])
    assert [p[0] for p in parts] == ["KLF1", "MAP2K6"]
    parts, ctl = parse_condition("[('Drug', 0.5, 'uM'), ('Other', 5, 'nM')]", "tahoe", ["DMSO_TF"])
    assert parts == [("Drug", 0.5, "uM"), ("Other", 5.0, "nM")] and not ctl
    parts, ctl = parse_condition("[('DMSO_TF', 0.0, 'uM')]", "tahoe", ["DMSO_TF"])
    assert ctl and parts[0][0] == "DMSO_TF"
    parts, _ = parse_condition("A+B", "+", [], dose="0.1+2")
    assert [p[1] for p in parts] == [0.1, 2.0]
    for bad, combo in [("A++B", "+"), ("", "+"), ("[('Drug', 'x', 'uM')]", "tahoe"),
                       ("Drug 0.5", "tahoe"), ("[]", "tahoe"), ("_A", "_")]:
        with pytest.raises(ValueError):
            parse_condition(bad, combo, ["ctrl"])
    with pytest.raises(ValueError, match="2 doses"):
        parse_condition("A+B+C", "+", [], dose="1+2")


def test_unparseable_value_names_file_row_and_value(tmp_path):
    a = _plate(1, seed=3)
    obs = a.obs.copy()
    obs["drugname_drugconc"] = obs["drugname_drugconc"].astype(str)
    bad_row = 17
    obs.iloc[bad_row, obs.columns.get_loc("drugname_drugconc")] = "[('Drug', 'high', 'uM')]"
    a.obs = obs
    path = tmp_path / "bad.h5ad"
    a.write_h5ad(path)
    pert = cellfeed.Perturbation(pert_col="drugname_drugconc", control=["DMSO_TF"], context="cell_line",
                                 combo="tahoe")
    with pytest.raises(ValueError) as e:
        cellfeed.SetLoader([str(path)], pert, set_size=4, output="numpy")
    msg = str(e.value)
    assert "bad.h5ad" in msg and f"row {bad_row}" in msg and "high" in msg


# -- sets and controls against pandas -----------------------------------------------------------
def test_sets_and_controls_match_pandas(plates):
    paths, ref = plates
    obs = ref.obs.reset_index(drop=True)
    S = 8
    loader = cellfeed.SetLoader(paths, _pert(), set_size=S, sets_per_batch=4, output="numpy", seed=3)
    batches = _epoch(loader)
    assert len(batches) == len(loader)
    controls = obs[obs.condition == "ctrl"]
    has_plate_ctrl = set(zip(controls.cell_line, controls.plate))
    X = ref.X.toarray()
    seen = []
    level_sets = [0, 0]
    for b in batches:
        for i in range(len(b)):
            prow, crow = b.pert_rows[i], b.ctrl_rows[i]
            p = obs.iloc[prow]
            # every cell of the set has the set's context and condition
            assert (p.cell_line == b.context_names[i]).all()
            assert (p.condition == b.pert_names[i]).all()
            c = obs.iloc[crow]
            assert (c.condition == "ctrl").all(), "a control is a perturbed cell"
            assert (c.cell_line.to_numpy() == p.cell_line.to_numpy()).all()
            for k in range(S):
                plate_ok = (p.cell_line.iloc[k], p.plate.iloc[k]) in has_plate_ctrl
                if b.ctrl_level[i, k] == 0:
                    assert c.plate.iloc[k] == p.plate.iloc[k]
                else:  # the fallback only where the plate has no control of this line
                    assert b.ctrl_level[i, k] == 1 and not plate_ok
                assert plate_ok == (b.ctrl_level[i, k] == 0)
            level_sets[int(b.ctrl_level[i].max())] += 1
            seen.extend(prow[~b.pert_repeat[i]].tolist())
            # controls within a set are distinct while the pool lasts
            assert len(set(crow[~b.ctrl_repeat[i]])) == int((~b.ctrl_repeat[i]).sum())
            np.testing.assert_array_equal(b.pert_X[i], X[prow])
            np.testing.assert_array_equal(b.ctrl_X[i], X[crow])
    # every cell once per epoch (control sets included: control_sets=True)
    assert sorted(seen) == list(range(len(obs)))
    rep = loader.report()
    lv = rep["control_levels"]
    perturbed = obs[obs.condition != "ctrl"]
    fallback = sum((l, pl) not in has_plate_ctrl for l, pl in zip(perturbed.cell_line, perturbed.plate))
    assert lv["train_cells"].tolist() == [len(perturbed) - fallback, fallback]
    assert fallback > 0
    assert lv["train_sets_epoch_0"].tolist() == level_sets


def test_group_sizes_and_padding(plates):
    paths, ref = plates
    obs = ref.obs.reset_index(drop=True)
    S = 16
    loader = cellfeed.SetLoader(paths, _pert(group_by_batch=True, min_cells=10), set_size=S,
                                sets_per_batch=3, output="numpy")
    expect = obs.astype(str).groupby(["plate", "cell_line", "condition"]).size()
    got = loader.groups.set_index(["batch", "context", "condition"])["cells"]
    assert {k: int(v) for k, v in got.items()} == {k: int(v) for k, v in expect.items()}
    want_sets = expect.map(lambda n: 0 if n < 10 else -(-n // S)).sum()
    batches = _epoch(loader)
    assert sum(len(b) for b in batches) == want_sets
    repeats: dict = {}
    for b in batches:
        for i in range(len(b)):
            key = (b.batch_names[i], b.context_names[i], b.pert_names[i])
            assert int(expect[key]) >= 10
            assert (obs.plate.iloc[b.pert_rows[i]] == b.batch_names[i]).all()
            repeats[key] = repeats.get(key, 0) + int(b.pert_repeat[i].sum())
    # padding fills each group's last set: ceil(n/S)*S - n draws with replacement
    assert repeats == {k: -(-int(n) // S) * S - int(n) for k, n in expect.items() if n >= 10}
    skipped = loader.report()["skipped"].set_index("split").loc["train"]
    assert skipped["small_groups"] == int((expect < 10).sum()) > 0
    assert skipped["small_group_cells"] == int(expect[expect < 10].sum())


def test_sets_per_group_balances(plates):
    paths, _ = plates
    loader = cellfeed.SetLoader(paths, _pert(sets_per_group=2, control_sets=False), set_size=8,
                                sets_per_batch=5, output="numpy")
    counts = {}
    for b in _epoch(loader):
        for i in range(len(b)):
            key = (b.context_names[i], b.pert_names[i])
            counts[key] = counts.get(key, 0) + 1
            assert b.pert_names[i] != "ctrl"
    assert set(counts.values()) == {2}


# -- splits and leakage -------------------------------------------------------------------------
def test_splits_and_leakage(plates):
    paths, ref = plates
    obs = ref.obs.reset_index(drop=True)
    pert = _pert(zeroshot={"val": ["C3"]}, unseen={"test": ["D4"]}, fewshot={"C1": {"val": ["D2+ctrl"]}},
                 controls_from_lower_splits=True)
    held_pairs = {(c, p) for c, p in zip(obs.cell_line, obs.condition)
                  if c == "C3" or "D4" in p or (c == "C1" and p == "D2+ctrl")}
    held_pairs = {(c, p) for c, p in held_pairs if p != "ctrl" or c == "C3"}
    train = cellfeed.SetLoader(paths, pert, set_size=8, sets_per_batch=4, output="numpy")
    delivered = set()
    rows = []
    for b in _epoch(train):
        for i in range(len(b)):
            delivered.add((b.context_names[i], b.pert_names[i]))
            rows.extend(b.pert_rows[i].tolist() + b.ctrl_rows[i].tolist())
    assert not (delivered & held_pairs)
    # counted from the delivered rows as well: no held-out cell, no C3 control in training
    d = obs.iloc[np.unique(rows)]
    assert not set(zip(d.cell_line, d.condition)) & held_pairs
    assert "C3" not in set(d.cell_line)
    # vocabularies from train only
    assert train.vocab["context"] == ["C1", "C2"]
    assert "D4" not in train.vocab["perturbation"]
    assert "D2" in train.vocab["perturbation"]  # D2 stays seen (D2 in C2, D1+D2)
    val = cellfeed.SetLoader(paths, pert, set_size=8, sets_per_batch=4, output="numpy", split="val")
    vpairs = set()
    for b in _epoch(val):
        for i in range(len(b)):
            vpairs.add((b.context_names[i], b.pert_names[i]))
            c = obs.iloc[b.ctrl_rows[i]]
            assert (c.cell_line == b.context_names[i]).all() and (c.condition == "ctrl").all()
            if b.context_names[i] == "C3":
                assert b.context[i] == len(val.vocab["context"])  # unseen context id
    want_val = {(c, p) for c, p in zip(obs.cell_line, obs.condition)
                if (c == "C3" and "D4" not in p) or (c == "C1" and p == "D2+ctrl")}
    assert vpairs == want_val
    test = cellfeed.SetLoader(paths, pert, set_size=8, sets_per_batch=4, output="numpy", split="test")
    tpairs = {(b.context_names[i], b.pert_names[i]) for b in _epoch(test) for i in range(len(b))}
    assert tpairs == {(c, p) for c, p in zip(obs.cell_line, obs.condition) if "D4" in p}
    assert "held out with their context" in train.report()["held_out_controls"]
    # without controls_from_lower_splits, C1's few-shot val sets have no val controls
    strict = _pert(zeroshot={"val": ["C3"]}, fewshot={"C1": {"val": ["D2+ctrl"]}})
    with pytest.raises(ValueError, match=r"context 'C1' \(val split\).*controls_from_lower_splits"):
        cellfeed.SetLoader(paths, strict, set_size=8, sets_per_batch=4, output="numpy")
    # zero-shot alone works with the default: C3's val sets use C3's own (val) controls
    zs = cellfeed.SetLoader(paths, _pert(zeroshot={"val": ["C3"]}), set_size=8, output="numpy", split="val")
    for b in zs:
        c = obs.iloc[b.ctrl_rows.ravel()]
        assert set(c.cell_line) == {"C3"} and set(c.condition) == {"ctrl"}


def test_shared_controls_of_held_out_context(plates):
    paths, ref = plates
    obs = ref.obs.reset_index(drop=True)
    pert = _pert(zeroshot={"val": ["C3"]}, held_out_controls="shared")
    train = cellfeed.SetLoader(paths, pert, set_size=8, sets_per_batch=4, output="numpy")
    batches = _epoch(train)
    ctx = {(b.context_names[i], b.pert_names[i]) for b in batches for i in range(len(b))}
    assert not any(c == "C3" and p != "ctrl" for c, p in ctx)
    # its control cells train as control sets: every one of them, once
    c3 = [r for b in batches for i in range(len(b)) if b.context_names[i] == "C3"
          for r in b.pert_rows[i][~b.pert_repeat[i]]]
    assert sorted(c3) == obs.index[(obs.cell_line == "C3") & (obs.condition == "ctrl")].tolist()
    # and serve C3's val sets too
    val = cellfeed.SetLoader(paths, pert, set_size=8, sets_per_batch=4, output="numpy", split="val")
    ctrl = np.concatenate([b.ctrl_rows.ravel() for b in val])
    assert set(ctrl) <= set(c3) and len(ctrl) > 0


def test_corpus_filter_and_split(plates):
    paths, ref = plates
    obs = ref.obs.reset_index(drop=True)
    corpus = cellfeed.Corpus([cellfeed.Source("screen", paths, where="condition != 'D3+ctrl'")],
                             split=cellfeed.Split(by="plate", test=["P2"]))
    # plate 2 (test) has no C3 controls: its C3 sets take train (plate 1) controls, as declared
    loader = cellfeed.SetLoader(corpus, _pert(match=[[]], controls_from_lower_splits=True), set_size=8,
                                sets_per_batch=4, output="numpy")
    rows = np.concatenate([np.concatenate([b.pert_rows.ravel(), b.ctrl_rows.ravel()]) for b in _epoch(loader)])
    d = obs.iloc[np.unique(rows)]
    assert set(d.plate) == {"P1"} and "D3+ctrl" not in set(d.condition)
    assert loader.vocab["batch"] == ["P1"]  # vocabularies from train cells only
    want = obs[(obs.plate == "P1") & (obs.condition != "D3+ctrl")]
    got = set(np.concatenate([b.pert_rows[i][~b.pert_repeat[i]] for b in _epoch(loader) for i in range(len(b))]))
    assert got == set(want.index)
    with pytest.raises(ValueError, match="quota"):
        cellfeed.SetLoader(cellfeed.Corpus([cellfeed.Source("s", paths, cells=10)]), _pert())


# -- determinism: epochs, threads, ranks, resume, workers ---------------------------------------
def _keys(batches):
    return [tuple(map(tuple, b.pert_rows)) + tuple(map(tuple, b.ctrl_rows)) for b in batches]


def test_epochs_reshuffle_and_threads(plates):
    paths, _ = plates
    a = cellfeed.SetLoader(paths, _pert(), set_size=8, sets_per_batch=4, output="numpy", threads=1,
                           prefetch=0)
    b = cellfeed.SetLoader(paths, _pert(), set_size=8, sets_per_batch=4, output="numpy", threads=2,
                           prefetch=3)
    assert _keys(_epoch(a, 0)) == _keys(_epoch(b, 0))
    assert _keys(_epoch(a, 1)) == _keys(_epoch(b, 1))
    assert _keys(_epoch(a, 0)) != _keys(_epoch(a, 1))
    c = cellfeed.SetLoader(paths, _pert(controls="fixed"), set_size=8, sets_per_batch=4, output="numpy")
    ctrl_of = {}
    for e in (0, 1):
        for bt in _epoch(c, e):
            for p, q in zip(bt.pert_rows.ravel(), bt.ctrl_rows.ravel()):
                assert ctrl_of.setdefault(int(p), int(q)) == int(q)  # fixed for the run


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_partition_the_epoch(plates, world):
    paths, _ = plates
    kw = dict(set_size=8, sets_per_batch=4, output="numpy", seed=5)
    whole = cellfeed.SetLoader(paths, _pert(), **kw)
    whole.set_epoch(2)
    sets = [tuple(r) for b in whole for r in b.pert_rows]
    per_rank = []
    lens = set()
    for r in range(world):
        ld = cellfeed.SetLoader(paths, _pert(), rank=r, world_size=world, **kw)
        ld.set_epoch(2)
        bs = list(ld)
        lens.add(len(bs))
        per_rank.append([tuple(x) for b in bs for x in b.pert_rows])
    assert len(lens) == 1
    union = [s for p in per_rank for s in p]
    assert set(union) == set(sets)
    assert len(union) - len(sets) < world  # padding: fewer than world_size sets wrap
    for i in range(world):
        for j in range(i + 1, world):
            common = set(per_rank[i]) & set(per_rank[j])
            assert len(common) <= world - 1


def test_resume_mid_epoch(plates):
    paths, _ = plates
    kw = dict(set_size=8, sets_per_batch=3, output="numpy", seed=1)
    a = cellfeed.SetLoader(paths, _pert(), **kw)
    a.set_epoch(1)
    full = list(a)
    it = iter(a)
    for _ in range(4):
        next(it)
    state = a.state_dict()
    b = cellfeed.SetLoader(paths, _pert(), **kw)
    b.load_state_dict(json.loads(json.dumps(state)))
    rest = list(b)
    assert _keys(rest) == _keys(full[4:])
    assert [x.index for x in rest] == list(range(4, len(full)))
    with pytest.raises(ValueError, match="configuration"):
        cellfeed.SetLoader(paths, _pert(), **{**kw, "set_size": 4}).load_state_dict(state)


def test_dataloader_workers_same_batches(plates):
    torch = pytest.importorskip("torch")
    paths, _ = plates
    ld = cellfeed.SetLoader(paths, _pert(), set_size=8, sets_per_batch=4, seed=2)
    ld.set_epoch(1)
    direct = [np.asarray(b.pert_rows).tolist() for b in ld]
    dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [np.asarray(b.pert_rows).tolist() for b in dl]
    assert got == direct
    b = ld.batch(0)
    assert isinstance(b.pert_X, torch.Tensor) and b.pert_X.dtype == torch.float32
    assert tuple(b.pert_X.shape) == (4, 8, 30)


# -- formats, doses, vocabularies, cell-load fields ----------------------------------------------
def test_tahoe_and_scperturb_columns_give_the_same_groups(plates):
    paths, _ = plates
    kw = dict(set_size=8, sets_per_batch=4, output="numpy")
    gears = cellfeed.SetLoader(paths, _pert(), **kw)
    tahoe = cellfeed.SetLoader(paths, _pert(pert_col="drugname_drugconc", control=["DMSO_TF"], combo="tahoe"), **kw)
    scp = cellfeed.SetLoader(paths, _pert(pert_col="scperturb", control=["ctrl"], combo="_"), **kw)
    sizes = [sorted(ld.groups["cells"].tolist()) for ld in (gears, tahoe, scp)]
    assert sizes[0] == sizes[1] == sizes[2]
    assert tahoe.vocab["perturbation"] == ["D1", "D2", "D3", "D4", "DMSO_TF"]
    assert gears.vocab["perturbation"] == ["D1", "D2", "D3", "D4", "ctrl"]
    for b in tahoe:
        for i in range(len(b)):
            names = [tahoe.vocab["perturbation"][j] for j in b.pert_ids[i] if j >= 0]
            assert b.pert_ids.shape[1] == 2
            want = [p for p in b.pert_names[i].split("'") if p in DOSES or p == "DMSO_TF"]
            assert sorted(names) == sorted(want)
            for j, n in zip(b.pert_ids[i], b.doses[i]):
                if j >= 0 and tahoe.vocab["perturbation"][j] in DOSES:
                    assert n == np.float32(DOSES[tahoe.vocab["perturbation"][j]])


def test_vocabulary_roundtrip_and_cell_load_fields(plates, tmp_path):
    paths, ref = plates
    pert = _pert(zeroshot={"val": ["C3"]})
    a = cellfeed.SetLoader(paths, pert, set_size=8, sets_per_batch=4, output="numpy")
    path = tmp_path / "vocab.json"
    a.save_vocabulary(path)
    assert json.loads(path.read_text())["context"] == ["C1", "C2"]
    b = cellfeed.SetLoader(paths, pert, set_size=8, sets_per_batch=4, output="numpy", split="val", vocab=path)
    assert b.vocab == a.vocab
    bt = b.batch(0)
    d = bt.as_cell_load()
    B, S = bt.pert_rows.shape
    assert d["pert_cell_emb"].shape == (B * S, 30) and d["ctrl_cell_emb"].shape == (B * S, 30)
    assert d["pert_emb"].shape == (B * S, len(a.vocab["perturbation"]) + 1)
    assert d["cell_type_onehot"].shape == (B * S, 3)
    assert (d["cell_type_onehot"][:, -1] == 1).all()  # C3 is unseen in training
    assert d["batch"].shape == (B * S, len(a.vocab["batch"]) + 1)
    obs = ref.obs.reset_index(drop=True)
    assert d["batch_name"] == obs.plate.iloc[bt.pert_rows.ravel()].tolist()
    assert d["cell_type"] == obs.cell_line.iloc[bt.pert_rows.ravel()].tolist()
    assert set(d) >= {"pert_cell_emb", "ctrl_cell_emb", "pert_emb", "cell_type_onehot", "batch",
                      "pert_name", "cell_type", "batch_name"}


def test_gene_subset(plates):
    paths, ref = plates
    genes = ["g7", "g2", "g29"]
    ld = cellfeed.SetLoader(paths, _pert(), set_size=4, sets_per_batch=2, output="numpy", genes=genes)
    b = ld.batch(0)
    X = ref[:, genes].X.toarray()
    np.testing.assert_array_equal(b.pert_X.reshape(-1, 3), X[b.pert_rows.ravel()])


# -- bad declarations: errors before any batch --------------------------------------------------
def test_bad_declarations(plates, tmp_path):
    paths, _ = plates
    kw = dict(set_size=8, sets_per_batch=4, output="numpy")
    with pytest.raises(ValueError, match="not in the files"):
        cellfeed.SetLoader(paths, _pert(context="tissue"), **kw)
    with pytest.raises(ValueError, match="no cell has the context 'C9'"):
        cellfeed.SetLoader(paths, _pert(zeroshot={"val": ["C9"]}), **kw)
    with pytest.raises(ValueError, match="no cell has the perturbation 'D9'"):
        cellfeed.SetLoader(paths, _pert(unseen={"val": ["D9"]}), **kw)
    with pytest.raises(ValueError, match="cannot be held out"):
        cellfeed.SetLoader(paths, _pert(unseen={"val": ["ctrl"]}), **kw)
    with pytest.raises(ValueError, match="combo"):
        _pert(combo="|")
    with pytest.raises(ValueError, match="match is a list of levels"):
        _pert(match=["plate"])
    with pytest.raises(ValueError, match="takes 'val' and 'test'"):
        _pert(zeroshot={"valid": ["C3"]})
    with pytest.raises(ValueError, match="group_by_batch needs"):
        _pert(batch=None, group_by_batch=True)
    with pytest.raises(ValueError, match="set_size"):
        cellfeed.SetLoader(paths, _pert(), set_size=0)
    with pytest.raises(ValueError, match="the val split has no sets"):
        cellfeed.SetLoader(paths, _pert(), split="val")
    # C3 has no controls on plate 2 and matching may not fall back to the context alone
    with pytest.raises(ValueError, match=r"context 'C3' \(train split\).*no control cells at any matching level"):
        cellfeed.SetLoader(paths, _pert(match=[["plate"]]), **kw)
    skipped = cellfeed.SetLoader(paths, _pert(match=[["plate"]], skip_uncontrolled=True), **kw)
    report = skipped.report()
    # the skipped cells, per context, from obs by pandas: perturbed cells of a (line, plate)
    # that has no control cell
    obs = plates[1].obs.astype(str)
    has_ctrl = set(map(tuple, obs.loc[obs.condition == "ctrl", ["cell_line", "plate"]].values))
    lacking = obs[(obs.condition != "ctrl")
                  & ~obs[["cell_line", "plate"]].apply(tuple, axis=1).isin(has_ctrl)]
    expected = lacking.groupby("cell_line").size()
    assert len(expected) > 0
    got = report["uncontrolled"]
    assert set(got.split) == {"train"}
    assert dict(zip(got.context, got.cells)) == expected.to_dict()
    assert report["skipped"].set_index("split").loc["train", "uncontrolled_cells"] == expected.sum()
    # a held-out context whose controls went with it and has none in its split
    a = _plate(1, seed=9)
    obs = a.obs.copy()
    obs["condition"] = obs["condition"].astype(str)
    obs.loc[(obs.cell_line == "C2") & (obs.condition == "ctrl"), "condition"] = "D1+ctrl"
    a.obs = obs
    p = tmp_path / "noctrl.h5ad"
    a.write_h5ad(p)
    with pytest.raises(ValueError, match="context 'C2'"):
        cellfeed.SetLoader([str(p)], _pert(match=[[]]), **kw)
    toml = tmp_path / "p.toml"
    toml.write_text('[perturbation]\npert_col = "condition"\ncontrol = ["ctrl"]\ncontext = "cell_line"\nbogus = 1\n')
    with pytest.raises(ValueError, match="unknown keys"):
        cellfeed.Perturbation.from_toml(toml)


def test_toml_declaration(plates, tmp_path):
    paths, _ = plates
    toml = tmp_path / "p.toml"
    toml.write_text('[perturbation]\npert_col = "condition"\ncontrol = ["ctrl"]\ncontext = "cell_line"\n'
                    'batch = "plate"\nmatch = [["plate"], []]\n[perturbation.zeroshot]\nval = ["C3"]\n')
    p = cellfeed.Perturbation.from_toml(toml)
    assert p == _pert(zeroshot={"val": ["C3"]})


def test_toml_beside_a_corpus(plates, tmp_path):
    paths, ref = plates
    toml = tmp_path / "screen.toml"
    toml.write_text(
        "seed = 0\n[split]\nby = \"plate\"\ntest = [\"P2\"]\n"
        "[[source]]\nname = \"screen\"\nfiles = " + json.dumps(paths) + "\n"
        "[perturbation]\npert_col = \"condition\"\ncontrol = [\"ctrl\"]\ncontext = \"cell_line\"\n"
        "controls_from_lower_splits = true\n")
    corpus = cellfeed.Corpus.from_toml(toml)
    loader = cellfeed.SetLoader(corpus, cellfeed.Perturbation.from_toml(toml), set_size=8, output="numpy")
    obs = ref.obs.reset_index(drop=True)
    rows = np.concatenate([b.pert_rows[i][~b.pert_repeat[i]] for b in loader for i in range(len(b))])
    assert sorted(rows) == obs.index[obs.plate == "P1"].tolist()


def test_missing_values_and_unknown_genes_are_errors(plates, tmp_path):
    paths, _ = plates
    a = _plate(1, seed=4)
    obs = a.obs.copy()
    obs["cell_line"] = obs["cell_line"].astype(object)
    obs.iloc[23, obs.columns.get_loc("cell_line")] = np.nan
    obs["cell_line"] = obs["cell_line"].astype("category")
    a.obs = obs
    p = tmp_path / "missing.h5ad"
    a.write_h5ad(p)
    with pytest.raises(ValueError, match=r"missing\.h5ad, row 23"):
        cellfeed.SetLoader([str(p)], _pert(), set_size=4, output="numpy")
    with pytest.raises(ValueError, match="not in the files' var_names"):
        cellfeed.SetLoader(paths, _pert(), set_size=4, output="numpy", genes=["g1", "nope"])


def test_drop_last_and_state_after_a_dataloader_batch(plates):
    torch = pytest.importorskip("torch")
    paths, _ = plates
    kw = dict(set_size=8, sets_per_batch=5, seed=4)
    keep = cellfeed.SetLoader(paths, _pert(), output="numpy", **kw)
    drop = cellfeed.SetLoader(paths, _pert(), output="numpy", drop_last=True, **kw)
    n_sets = int(keep.groups["sets"].sum())
    assert len(keep) == -(-n_sets // 5) and len(drop) == n_sets // 5
    assert all(len(b) == 5 for b in drop)
    ld = cellfeed.SetLoader(paths, _pert(), **kw)
    direct = [np.asarray(b.pert_rows).tolist() for b in ld]
    dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, b in enumerate(dl):
            if k == 4:
                state = ld.state_dict(after=b)
                break
    fresh = cellfeed.SetLoader(paths, _pert(), **kw)
    fresh.load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dl2 = torch.utils.data.DataLoader(fresh, batch_size=None, num_workers=3)
        rest = [np.asarray(b.pert_rows).tolist() for b in dl2]
    assert rest == direct[5:]


def test_cell_load_toml(plates, tmp_path):
    from cellfeed.perturb import from_cell_load_toml

    paths, ref = plates
    folder = os.path.dirname(paths[0])
    toml = tmp_path / "cell_load.toml"
    toml.write_text(f'[datasets]\nscreen = "{folder}"\n[training]\nscreen = "train"\n'
                    '[zeroshot]\n"screen.C3" = "val"\n'
                    '[fewshot."screen.C1"]\nval = ["D2+ctrl", "D1+ctrl"]\ntest = ["D1+ctrl"]\n')
    files, pert = from_cell_load_toml(toml, pert_col="condition", cell_type_key="cell_line",
                                      batch_col="plate", control_pert="ctrl")
    assert files == sorted(paths)
    assert pert.zeroshot == {"val": ["screen.C3"]}  # contexts: "dataset.cell type", as the TOML's keys
    assert pert.fewshot == {"screen.C1": {"val": ["D2+ctrl"], "test": ["D1+ctrl"]}}
    assert pert.controls_from_lower_splits and pert.held_out_controls == "with_context"
    obs = ref.obs.reset_index(drop=True)
    val = cellfeed.SetLoader(files, pert, set_size=8, output="numpy", split="val")
    pairs = {(b.context_names[i], b.pert_names[i]) for b in val for i in range(len(b))}
    assert pairs == {("screen." + c, p) for c, p in zip(obs.cell_line, obs.condition)
                     if c == "C3" or (c == "C1" and p == "D2+ctrl")}
    # several datasets (compared with cell-load itself in test_cell_load_splits.py)
    two = tmp_path / "two.toml"
    two.write_text(f'[datasets]\na = "{folder}"\nb = "{folder}"\n[training]\na = "train"\nb = "train"\n')
    with pytest.raises(ValueError, match="a file is in two datasets"):
        from_cell_load_toml(two)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[datasets]\na = "{folder}"\n[zeroshot]\n"b.C3" = "val"\n')
    with pytest.raises(ValueError, match=r"\"<dataset>.<cell type>\""):
        from_cell_load_toml(bad)


def test_spawned_worker_and_pickle(plates):
    torch = pytest.importorskip("torch")
    import pickle

    paths, _ = plates
    ld = cellfeed.SetLoader(paths, _pert(), set_size=8, sets_per_batch=4, seed=6, output="numpy")
    ld.set_epoch(2)
    direct = _keys(list(ld))
    copy = pickle.loads(pickle.dumps(ld))  # rebuilt from the declaration
    assert _keys(list(copy)) == direct
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=1, multiprocessing_context="spawn")
        assert _keys(list(dl)) == direct
