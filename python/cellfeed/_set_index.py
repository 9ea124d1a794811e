"""obs -> per-cell int32 codes for the cell-set planner (include/cellfeed/perturb.h).

Reads the declared obs columns through the collection (categoricals as their codes),
parses each distinct condition value once, turns the held-out rules into per-id splits,
builds the C++ SetIndex and the vocabularies (from the cells it put in train).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from . import _cellfeed
from .collection import Collection
from .perturb import SPLITS, Perturbation, load_vocabulary, parse_condition


# -- reading obs as codes -----------------------------------------------------------------------
def _locate(col: Collection, row: int) -> str:
    offsets = col.file_offsets
    f = int(np.searchsorted(offsets, row, side="right") - 1)
    return f"{col.files[f]}, row {row - int(offsets[f])}"


def _column_codes(col: Collection, name: str):
    """(codes over every row of the collection, labels): -1 = missing."""
    if name not in col.obs_columns:
        raise ValueError(f"perturbation: obs column {name!r} is not in the files "
                         f"(columns: {', '.join(col.obs_columns)})")
    rec = col._c.obs_column(name, None)
    kind = rec["kind"]
    if kind == "categorical":
        cats = rec["categories"]
        labels = (list(cats["strings"]) if cats["kind"] in ("string", "nullable-string")
                  else [_label(v) for v in cats["values"]])
        return rec["values"].astype(np.int32), labels
    if kind in ("string", "nullable-string"):
        values = pd.array(np.asarray(rec["strings"], dtype=object), dtype=object)
        if kind == "nullable-string":
            values = np.asarray(values, dtype=object)
            values[rec["mask"]] = None
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        return codes.astype(np.int32), [str(u) for u in uniques]
    values = rec["values"]
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = codes.astype(np.int32)
    if "mask" in rec and rec["mask"] is not None and len(rec["mask"]):
        codes[np.asarray(rec["mask"], dtype=bool)] = -1
    return codes, [_label(u) for u in uniques]


def _label(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v)) if not isinstance(v, (bool, np.bool_)) else str(v)
    return str(v)


def _sorted_key(col, names, rows, what, allow_missing=False):
    """One id per eligible row for the combination of columns `names`, ids in the sorted
    order of the value names ("|"-joined), and the names. -1 = missing."""
    parts = [_column_codes(col, n) for n in names]
    codes = [c[rows] for c, _ in parts]
    missing = np.zeros(len(rows), bool)
    for c in codes:
        missing |= c < 0
    if missing.any() and not allow_missing:
        i = int(np.argmax(missing))
        raise ValueError(f"perturbation: {what} column(s) {names} missing at {_locate(col, int(rows[i]))}")
    if len(codes) == 1:
        combined = codes[0].astype(np.int64)
    else:
        combined = np.zeros(len(rows), np.int64)
        for c, (_, labels) in zip(codes, parts):
            combined = combined * (len(labels) + 1) + (c.astype(np.int64) + 1)
    ids, uniques = pd.factorize(np.where(missing, -1, combined), sort=False)
    names_of = []
    for u in uniques:
        if len(codes) == 1:
            names_of.append(parts[0][1][u] if u >= 0 else None)
        else:
            vals, rest = [], int(u)
            if rest < 0:
                names_of.append(None)
                continue
            for _, labels in reversed(parts):
                rest, d = divmod(rest, len(labels) + 1)
                vals.append(labels[d - 1] if d > 0 else None)
            names_of.append(None if any(v is None for v in vals) else "|".join(reversed(vals)))
    valid = [i for i, n in enumerate(names_of) if n is not None]
    order = sorted(valid, key=lambda i: names_of[i])
    remap = np.full(len(uniques), -1, np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    out = remap[ids] if len(uniques) else np.zeros(0, np.int32)
    return np.ascontiguousarray(out, dtype=np.int32), [names_of[i] for i in order]


def _dataset_contexts(col: Collection, pert: Perturbation, rows, split_codes):
    """Contexts named "<dataset>.<value>" (cell-load's keys); the rows of datasets outside
    `training` whose context no held-out rule names are left out (cell-load uses only
    those cell types of such a dataset)."""
    names = list(pert.datasets)
    where: dict = {}
    for d, files in pert.datasets.items():
        for f in files:
            where.setdefault(os.path.realpath(f), []).append(d)
    ds_of_file = np.empty(len(col.files), np.int64)
    for i, f in enumerate(col.files):
        hit = where.get(os.path.realpath(f), [])
        if len(hit) != 1:
            raise ValueError(f"perturbation: {f} is in {'no dataset' if not hit else 'datasets ' + str(hit)} "
                             f"of datasets= ({', '.join(names)}); each file is in one dataset")
        ds_of_file[i] = names.index(hit[0])
    file_of_row = np.searchsorted(np.asarray(col.file_offsets), rows, side="right") - 1
    ctx, ctx_names = _sorted_key(col, pert.context, rows, "context")
    n = max(1, len(ctx_names))
    uniq, inverse = np.unique(ds_of_file[file_of_row] * n + ctx, return_inverse=True)
    full = [f"{names[u // n]}.{ctx_names[u % n]}" for u in uniq]
    keep = np.ones(len(uniq), bool)
    if pert.training is not None:
        named = set((pert.fewshot or {}).keys())
        for split in (pert.zeroshot or {}).values():
            named.update("|".join(c) if isinstance(c, (list, tuple)) else str(c) for c in split)
        train = {names.index(t) for t in pert.training}
        keep = np.array([u // n in train or full[j] in named for j, u in enumerate(uniq)], bool)
    kept = np.flatnonzero(keep)
    order = sorted(kept, key=lambda j: full[j])
    remap = np.full(len(uniq), -1, np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    code = remap[inverse.reshape(-1)]
    used = code >= 0
    if not used.all():
        rows = np.ascontiguousarray(rows[used])
        split_codes = None if split_codes is None else np.ascontiguousarray(split_codes[used])
        code = code[used]
    return rows, split_codes, np.ascontiguousarray(code, np.int32), [full[j] for j in order]


# -- the set index ------------------------------------------------------------------------------
class _Index:
    """Codes, conditions, the C++ SetIndex and the vocabularies of one declaration."""

    def __init__(self, col: Collection, pert: Perturbation, rows: np.ndarray, split_codes,
                 set_size: int, sets_per_batch: int, seed: int, drop_last: bool, vocab):
        self.pert = pert
        if pert.datasets is not None:
            rows, split_codes, context, self.context_names = _dataset_contexts(col, pert, rows, split_codes)
        else:
            context, self.context_names = _sorted_key(col, pert.context, rows, "context")
        self.rows = rows  # the cells used (datasets= may leave some out)
        self._context = context
        self.batch_names = []
        batch = None
        if pert.batch is not None:
            batch, self.batch_names = _sorted_key(col, pert.batch, rows, "batch")
        self._batch = batch
        condition, control = self._conditions(col, rows)
        match_cols = list(dict.fromkeys(c for level in pert.match for c in level))
        match = [_sorted_key(col, [c], rows, c, allow_missing=True)[0] for c in match_cols]
        spec = {"set_size": int(set_size), "sets_per_batch": int(sets_per_batch),
                "min_cells": int(pert.min_cells), "sets_per_group": int(pert.sets_per_group or 0),
                "group_by_batch": bool(pert.group_by_batch), "control_sets": bool(pert.control_sets),
                "match_levels": [[match_cols.index(c) for c in level] for level in pert.match],
                "controls_fixed": pert.controls == "fixed",
                "skip_uncontrolled": bool(pert.skip_uncontrolled),
                "held_out_controls": pert.held_out_controls,
                "controls_from_lower_splits": bool(pert.controls_from_lower_splits), "drop_last": bool(drop_last),
                "seed": int(seed), "context_names": self.context_names,
                "condition_names": self.condition_names, "match_names": match_cols}
        spec.update(self._split_rules())
        self.engine = _cellfeed.SetIndex.make(rows, context, condition, control, batch,
                                              split_codes, match, spec)
        g = self.engine.groups()
        self.groups = pd.DataFrame({
            "split": [SPLITS[s] for s in g["split"]],
            "context": [self.context_names[c] for c in g["context"]],
            "condition": [self.condition_names[c] for c in g["condition"]],
            "control": g["control"].astype(bool),
            "batch": [self.batch_names[b] if b >= 0 else None for b in g["batch"]],
            "cells": g["cells"], "sets": g["sets"]})
        self._group_context = g["context"]
        self._group_condition = g["condition"]
        self._group_batch = g["batch"]
        self.match_cols = match_cols
        self.vocab = self._vocabulary(vocab)
        self._tables()

    # conditions: parsed once per distinct value (or value and dose)
    def _conditions(self, col, rows):
        pert = self.pert
        codes, labels = _column_codes(col, pert.pert_col)
        codes = codes[rows]
        if (codes < 0).any():
            i = int(np.argmax(codes < 0))
            raise ValueError(f"perturbation: {pert.pert_col!r} is missing at {_locate(col, int(rows[i]))}")
        if pert.dose_col:
            dcodes, dlabels = _column_codes(col, pert.dose_col)
            dcodes = dcodes[rows]
            key = codes.astype(np.int64) * (len(dlabels) + 1) + (dcodes.astype(np.int64) + 1)
        else:
            dlabels = []
            key = codes.astype(np.int64)
        inverse, distinct = pd.factorize(key)  # hashing: no sort of every cell
        canon: dict = {}
        parsed = []
        for j, k in enumerate(distinct):
            if pert.dose_col:
                c, d = divmod(int(k), len(dlabels) + 1)
                value, dose = labels[c], (dlabels[d - 1] if d > 0 else None)
            else:
                value, dose = labels[int(k)], None
            try:
                parts, is_control = parse_condition(value, pert.combo, pert.control, dose)
            except ValueError as e:
                raise ValueError(f"perturbation: {pert.pert_col!r} value {value!r} at "
                                 f"{_locate(col, int(rows[np.argmax(inverse == j)]))} does not parse: {e}") from None
            ckey = (is_control, tuple(parts))
            parsed.append(ckey)
            canon[ckey] = min(canon.get(ckey, value), value)  # a name independent of row order
        keys = sorted(canon, key=lambda c: (not c[0], repr(c[1])))
        cid = {k: i for i, k in enumerate(keys)}
        self.condition_names = [canon[k] for k in keys]
        self.condition_parts = [list(k[1]) for k in keys]
        self.condition_control = np.array([k[0] for k in keys], dtype=bool)
        self._raw_to_condition = {}
        for k, ckey in zip(distinct, parsed):
            value = labels[int(k) // (len(dlabels) + 1)] if pert.dose_col else labels[int(k)]
            self._raw_to_condition.setdefault(value, set()).add(cid[ckey])
        per_distinct = np.array([cid[c] for c in parsed], dtype=np.int32)
        condition = per_distinct[inverse]
        control = self.condition_control[condition].astype(np.uint8)
        self._condition = condition
        return np.ascontiguousarray(condition), np.ascontiguousarray(control)

    def _conditions_named(self, entry, where) -> set[int]:
        if entry in self._raw_to_condition:
            return set(self._raw_to_condition[entry])
        hits = {i for i, parts in enumerate(self.condition_parts)
                if not self.condition_control[i] and any(p[0] == entry for p in parts)}
        if not hits:
            raise ValueError(f"perturbation: {where}: no cell has the perturbation {entry!r}")
        return hits

    def _split_rules(self) -> dict:
        pert = self.pert
        ctx_index = {n: i for i, n in enumerate(self.context_names)}
        context_split = [0] * len(self.context_names)
        condition_split = [0] * len(self.condition_names)
        pairs = []

        def context_id(name, where):
            name = "|".join(name) if isinstance(name, (list, tuple)) else str(name)
            if name not in ctx_index:
                raise ValueError(f"perturbation: {where}: no cell has the context {name!r} "
                                 f"(contexts: {', '.join(self.context_names[:20])})")
            return ctx_index[name]

        def held(ids, where):
            for i in ids:
                if self.condition_control[i]:
                    raise ValueError(f"perturbation: {where}: the control {self.condition_names[i]!r} "
                                     "cannot be held out")
            return ids

        for s, name in ((1, "val"), (2, "test")):
            for c in (pert.zeroshot or {}).get(name, []):
                i = context_id(c, f"zeroshot[{name!r}]")
                context_split[i] = max(context_split[i], s)
            for p in (pert.unseen or {}).get(name, []):
                for i in held(self._conditions_named(str(p), f"unseen[{name!r}]"), f"unseen[{name!r}]"):
                    condition_split[i] = max(condition_split[i], s)
            for ctx, rule in (pert.fewshot or {}).items():
                ci = context_id(ctx, f"fewshot[{ctx!r}]")
                for p in rule.get(name, []):
                    for i in held(self._conditions_named(str(p), f"fewshot[{ctx!r}][{name!r}]"),
                                  f"fewshot[{ctx!r}]"):
                        pairs.append([ci, i, s])
        return {"context_split": context_split, "condition_split": condition_split,
                "pair_split": pairs}

    # vocabularies: from the training split's groups (or given)
    def _vocabulary(self, given) -> dict:
        if given is not None:
            v = load_vocabulary(given) if isinstance(given, (str, os.PathLike)) else dict(given)
            for k in ("perturbation", "context", "batch"):
                v.setdefault(k, [])
            return {k: list(v[k]) for k in ("perturbation", "context", "batch")}
        train = self.groups["split"].to_numpy() == "train"
        train_conditions = np.unique(self._group_condition[train])
        perts = sorted({p[0] for c in train_conditions for p in self.condition_parts[c]})
        contexts = sorted({self.context_names[c] for c in np.unique(self._group_context[train])})
        batches = []
        if self._batch is not None:
            # the batches of the cells the C++ step put in train (after every split rule)
            train = self._batch[self.engine.cell_splits() == 0]
            ids = np.flatnonzero(np.bincount(train, minlength=len(self.batch_names)))
            batches = sorted(self.batch_names[b] for b in ids)
        return {"perturbation": perts, "context": contexts, "batch": batches}

    def _tables(self):
        """Per condition / context / batch id: the vocabulary ids (unseen = len(vocab))."""
        v = self.vocab
        pid = {n: i for i, n in enumerate(v["perturbation"])}
        self.max_combo = max((len(p) for p in self.condition_parts), default=1)
        n = len(self.condition_names)
        self.cond_ids = np.full((n, self.max_combo), -1, np.int64)
        self.cond_doses = np.zeros((n, self.max_combo), np.float32)
        for c, parts in enumerate(self.condition_parts):
            for k, (name, dose, _unit) in enumerate(parts):
                self.cond_ids[c, k] = pid.get(name, len(pid))
                self.cond_doses[c, k] = 1.0 if dose is None else dose
        cid = {n: i for i, n in enumerate(v["context"])}
        self.ctx_ids = np.array([cid.get(n, len(cid)) for n in self.context_names], np.int64)
        bid = {n: i for i, n in enumerate(v["batch"])}
        self.batch_ids = np.array([bid.get(n, len(bid)) for n in self.batch_names], np.int64)
