"""Cell sets for perturbation-response training (STATE, CPA, GEARS-style models).

:class:`Perturbation` declares which obs columns hold the perturbation, the control
values, the context (cell line, cell type), batches, control matching and held-out
splits. :class:`SetLoader` turns files or a :class:`cellfeed.Corpus` into batches of cell
sets: each set holds ``set_size`` cells of one (context, perturbation) group and as many
control cells of the same context, matched on declared keys. Grouping, splits, control
matching and the epoch's set order are computed in C++ (``include/cellfeed/perturb.h``)
from one int32 code per cell; this module reads obs, parses the distinct condition
values and converts types. docs/PERTURBATION.md has the rules.
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import _cellfeed
from .collection import Collection, open as open_collection
from .corpus import Corpus

try:  # torch is optional
    import torch
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover
    torch = None
    _Base = object

SPLITS = ("train", "val", "test")
COMBOS = ("+", "_", "tahoe", None)

# Engines inherited through fork() hold threads that do not exist in the child.
_INHERITED: list[Any] = []


# -- conditions -------------------------------------------------------------------------------
def parse_condition(value, combo: str | None = "+", control: Sequence[str] = (), dose=None):
    """Parse one perturbation condition into its parts.

    Parameters
    ----------
    value : str
        The condition as stored in obs: ``"A+B"`` (GEARS/CPA), ``"A_B"`` (scPerturb),
        ``"[('Drug', 0.5, 'uM')]"`` (Tahoe-100M's ``drugname_drugconc``), or one name.
    combo : {"+", "_", "tahoe", None}
        How combinations are written; None: the value is one perturbation.
    control : sequence of str
        Control values. Parts equal to one are dropped (``"A+ctrl"`` is ``A``); a value
        whose parts are all controls (or that equals one) is a control condition.
    dose : str or float, optional
        The dose column's value: a number, or for combinations a string joined with the
        same separator (CPA), one dose per part.

    Returns
    -------
    parts : list of (str, float, str)
        (name, dose, unit) per perturbation, sorted by name; dose is None and unit ""
        when not given. A control condition has one part, the control name.
    is_control : bool
        True for a control condition.

    Raises
    ------
    ValueError
        When the value or its dose does not parse (the message says what was expected).
    """
    controls = set(str(c) for c in control)
    text = str(value)
    if combo not in COMBOS:
        raise ValueError(f"combo must be one of {COMBOS}, got {combo!r}")
    if text in controls:
        return [(text, _dose_number(dose, text), "")], True
    if combo == "tahoe":
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"{text!r} is not a list of (name, dose, unit) tuples") from None
        if isinstance(parsed, tuple) and len(parsed) == 3 and isinstance(parsed[0], str):
            parsed = [parsed]
        if not isinstance(parsed, (list, tuple)) or not parsed:
            raise ValueError(f"{text!r} is not a non-empty list of (name, dose, unit) tuples")
        raw = []
        for item in parsed:
            if (not isinstance(item, (list, tuple)) or len(item) != 3 or not isinstance(item[0], str)
                    or isinstance(item[1], bool) or not isinstance(item[1], (int, float))
                    or not isinstance(item[2], str)):
                raise ValueError(f"{text!r}: {item!r} is not a (name, dose, unit) tuple")
            raw.append((item[0], float(item[1]), item[2]))
    else:
        names = [text] if combo is None else text.split(combo)
        names = [n.strip() for n in names]
        if any(not n for n in names):
            raise ValueError(f"{text!r} has an empty part (separator {combo!r})")
        doses = _doses(dose, len(names), combo, text)
        raw = [(n, d, "") for n, d in zip(names, doses)]
    kept = [p for p in raw if p[0] not in controls]
    if not kept:
        return [raw[0]], True
    return sorted(kept, key=_part_order), False


def _part_order(part):
    return (part[0], -math.inf if part[1] is None else part[1], part[2])


def _missing(dose) -> bool:
    return dose is None or (isinstance(dose, float) and math.isnan(dose))


def _dose_number(dose, text) -> float | None:
    if _missing(dose):
        return None
    try:
        return float(dose)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r}: dose {dose!r} is not a number") from None


def _doses(dose, n: int, combo, text) -> list:
    if _missing(dose):
        return [None] * n
    if isinstance(dose, str) and combo is not None and combo in dose:
        parts = dose.split(combo)
        if len(parts) != n:
            raise ValueError(f"{text!r}: {len(parts)} doses ({dose!r}) for {n} perturbations")
        return [_dose_number(p, text) for p in parts]
    d = _dose_number(dose, text)
    if n > 1:
        return [d] * n
    return [d]


# -- declaration ------------------------------------------------------------------------------
@dataclass
class Perturbation:
    """A perturbation view over files or a corpus: what groups cells into sets.

    Parameters
    ----------
    pert_col : str
        obs column holding each cell's condition (``gene``, ``condition``,
        ``drugname_drugconc``, ...).
    control : sequence of str
        The control values of ``pert_col`` (``"DMSO_TF"``, ``"non-targeting"``,
        ``"ctrl"``); also the control names inside combinations.
    context : str or sequence of str
        obs column(s) whose values make a context (cell line, cell type); several columns
        make one context per combination of values, named by the values joined with "|".
    batch : str or sequence of str, optional
        obs column(s) of the batch (plate, well, gem group): per-cell batch ids, and
        groups per batch with ``group_by_batch``.
    dose_col : str, optional
        obs column of doses (numbers, or strings joined like the combinations).
    combo : {"+", "_", "tahoe", None}
        How combinations are written (see :func:`parse_condition`).
    match : list of list of str
        Control matching levels, finest first: a perturbed cell's control shares its
        context and the columns of the first level where some control does. ``[]`` is
        the context alone. Default ``[[]]``.
    group_by_batch : bool
        Groups are (context, perturbation, batch) instead of (context, perturbation).
    control_sets : bool
        Control cells also make sets (their perturbation is the control), as cell-load
        does. Default True.
    controls : {"epoch", "fixed"}
        Controls drawn anew every epoch, or one control per perturbed cell for the run.
    held_out_controls : {"with_context", "shared"}
        Controls of a held-out context go to its split (default), or stay in train.
    zeroshot : dict, optional
        ``{"val": [contexts], "test": [contexts]}``: whole contexts held out.
    fewshot : dict, optional
        ``{context: {"val": [perturbations], "test": [...]}}``: perturbations held out
        in one context.
    unseen : dict, optional
        ``{"val": [perturbations], "test": [...]}``: perturbations held out everywhere.
        An entry is a condition value as stored, or a perturbation name: every condition
        that includes it is held out.
    min_cells : int
        Groups with fewer cells make no sets (reported).
    sets_per_group : int, optional
        Sets per group per epoch; default: every cell once (ceil(n / set_size) sets).
    skip_uncontrolled : bool
        Cells with no control at any level are left out (reported) instead of an error.
    """

    pert_col: str
    control: Sequence[str]
    context: Any
    batch: Any = None
    dose_col: str | None = None
    combo: str | None = "+"
    match: Sequence[Sequence[str]] = ((),)
    group_by_batch: bool = False
    control_sets: bool = True
    controls: str = "epoch"
    held_out_controls: str = "with_context"
    zeroshot: dict | None = None
    fewshot: dict | None = None
    unseen: dict | None = None
    min_cells: int = 1
    sets_per_group: int | None = None
    skip_uncontrolled: bool = False

    def __post_init__(self):
        if isinstance(self.control, str):
            self.control = [self.control]
        self.control = [str(c) for c in self.control]
        if not self.control:
            raise ValueError("Perturbation: control= needs at least one control value")
        self.context = _as_columns(self.context, "context")
        self.batch = None if self.batch is None else _as_columns(self.batch, "batch")
        if self.combo not in COMBOS:
            raise ValueError(f"Perturbation: combo must be one of {COMBOS}, got {self.combo!r}")
        if self.controls not in ("epoch", "fixed"):
            raise ValueError(f"Perturbation: controls must be 'epoch' or 'fixed', got {self.controls!r}")
        if self.held_out_controls not in ("with_context", "shared"):
            raise ValueError("Perturbation: held_out_controls must be 'with_context' or 'shared', "
                             f"got {self.held_out_controls!r}")
        if isinstance(self.match, str) or any(isinstance(level, str) for level in self.match):
            raise ValueError("Perturbation: match is a list of levels, each a list of columns, "
                             "e.g. [['plate'], []]")
        self.match = [list(level) for level in self.match]
        if not self.match:
            raise ValueError("Perturbation: match needs at least one level ([] = the context alone)")
        if self.group_by_batch and self.batch is None:
            raise ValueError("Perturbation: group_by_batch needs batch= columns")
        if int(self.min_cells) < 1:
            raise ValueError("Perturbation: min_cells must be >= 1")
        if self.sets_per_group is not None and int(self.sets_per_group) < 1:
            raise ValueError("Perturbation: sets_per_group must be >= 1 (None = every cell once)")
        for name, rule in (("zeroshot", self.zeroshot), ("unseen", self.unseen)):
            if rule is not None:
                _check_split_keys(rule, name)
        if self.fewshot is not None:
            for ctx, rule in self.fewshot.items():
                _check_split_keys(rule, f"fewshot[{ctx!r}]")

    @classmethod
    def from_dict(cls, spec: dict, where: str = "perturbation") -> "Perturbation":
        """Build from a dict (a TOML ``[perturbation]`` table); unknown keys are errors.

        Parameters
        ----------
        spec : dict
            Keys as the constructor's parameters.
        where : str
            Named in error messages (e.g. the TOML file).

        Returns
        -------
        Perturbation
        """
        unknown = sorted(set(spec) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; expected some of "
                             f"{sorted(cls.__dataclass_fields__)}")
        return cls(**spec)

    @classmethod
    def from_toml(cls, path) -> "Perturbation":
        """Read the ``[perturbation]`` table of a TOML file (beside a corpus declaration).

        Parameters
        ----------
        path : str or os.PathLike
            The TOML file.

        Returns
        -------
        Perturbation
        """
        import tomllib

        path = os.fspath(path)
        with open(path, "rb") as f:
            try:
                spec = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: not valid TOML: {e}") from None
        if "perturbation" not in spec:
            raise ValueError(f"{path}: no [perturbation] table")
        return cls.from_dict(spec["perturbation"], where=f"{path}: [perturbation]")

    def columns(self) -> list[str]:
        """Every obs column this declaration reads.

        Returns
        -------
        list of str
        """
        cols = [self.pert_col, *self.context, *(self.batch or [])]
        if self.dose_col:
            cols.append(self.dose_col)
        for level in self.match:
            cols.extend(level)
        return list(dict.fromkeys(cols))


def _as_columns(value, what) -> list[str]:
    cols = [value] if isinstance(value, str) else list(value)
    if not cols or not all(isinstance(c, str) for c in cols):
        raise ValueError(f"Perturbation: {what} must be a column name or a list of them, got {value!r}")
    return cols


def _check_split_keys(rule, name):
    if not isinstance(rule, dict):
        raise ValueError(f"Perturbation: {name} must be a dict {{'val': [...], 'test': [...]}}")
    bad = sorted(set(rule) - {"val", "test"})
    if bad:
        raise ValueError(f"Perturbation: {name} takes 'val' and 'test', got {bad}")


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


# -- the set index ------------------------------------------------------------------------------
class _Index:
    """Codes, conditions, the C++ SetIndex and the vocabularies of one declaration."""

    def __init__(self, col: Collection, pert: Perturbation, rows: np.ndarray, split_codes,
                 set_size: int, sets_per_batch: int, seed: int, drop_last: bool, vocab):
        self.rows = rows
        self.pert = pert
        context, self.context_names = _sorted_key(col, pert.context, rows, "context")
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
                "held_out_controls": pert.held_out_controls, "drop_last": bool(drop_last),
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
        distinct, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        canon: dict = {}
        parsed = []
        for k, i in zip(distinct, first):
            if pert.dose_col:
                c, d = divmod(int(k), len(dlabels) + 1)
                value, dose = labels[c], (dlabels[d - 1] if d > 0 else None)
            else:
                value, dose = labels[int(k)], None
            try:
                parts, is_control = parse_condition(value, pert.combo, pert.control, dose)
            except ValueError as e:
                raise ValueError(f"perturbation: {pert.pert_col!r} value {value!r} at "
                                 f"{_locate(col, int(rows[i]))} does not parse: {e}") from None
            ckey = (is_control, tuple(parts))
            parsed.append(ckey)
            canon.setdefault(ckey, value)
        keys = sorted(canon, key=lambda c: (not c[0], repr(c[1])))
        cid = {k: i for i, k in enumerate(keys)}
        self.condition_names = [canon[k] for k in keys]
        self.condition_parts = [list(k[1]) for k in keys]
        self.condition_control = np.array([k[0] for k in keys], dtype=bool)
        self._raw_to_condition = {}
        for (k, _), ckey in zip(zip(distinct, first), parsed):
            value = labels[int(k) // (len(dlabels) + 1)] if pert.dose_col else labels[int(k)]
            self._raw_to_condition.setdefault(value, set()).add(cid[ckey])
        per_distinct = np.array([cid[c] for c in parsed], dtype=np.int32)
        condition = per_distinct[inverse.reshape(-1)]
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
            if self.pert.group_by_batch:
                ids = np.unique(self._group_batch[train])
            else:
                # batches of the train cells: the groups' contexts and conditions decide
                keys = pd.MultiIndex.from_arrays([self._group_context[train], self._group_condition[train]])
                cell_keys = pd.MultiIndex.from_arrays([self._context, self._condition])
                ids = np.unique(self._batch[cell_keys.isin(keys)])
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


def save_vocabulary(vocab: dict, path) -> None:
    """Write perturbation, context and batch vocabularies to a JSON file.

    Parameters
    ----------
    vocab : dict
        ``{"perturbation": [...], "context": [...], "batch": [...]}`` (id = position;
        values not listed get id ``len(list)``).
    path : str or os.PathLike
        The JSON file to write.
    """
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        json.dump({k: list(vocab.get(k, [])) for k in ("perturbation", "context", "batch")}, f, indent=1)


def load_vocabulary(path) -> dict:
    """Read vocabularies written by :func:`save_vocabulary`.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.

    Returns
    -------
    dict
        ``{"perturbation": [...], "context": [...], "batch": [...]}``.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        try:
            v = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(v, dict) or not all(isinstance(v.get(k, []), list)
                                          for k in ("perturbation", "context", "batch")):
        raise ValueError(f"{path}: expected an object with lists 'perturbation', 'context', 'batch'")
    return {k: [str(x) for x in v.get(k, [])] for k in ("perturbation", "context", "batch")}


# -- batches ------------------------------------------------------------------------------------
@dataclass
class SetBatch:
    """One batch of cell sets: B sets of S perturbed cells and S matched control cells.

    Made by :class:`SetLoader`; the fields are:

    Parameters
    ----------
    pert_X, ctrl_X : array [B, S, G]
        Dense float32 expression of the perturbed and control cells.
    pert_ids : array [B, max_combo]
        Perturbation vocabulary ids of each set's condition (-1 pads combinations; an id
        equal to the vocabulary's length = unseen in training).
    doses : array [B, max_combo]
        Doses (1.0 where none is declared, 0 in padding).
    context : array [B]
        Context vocabulary ids.
    set_batch : array [B]
        Batch ids of the sets (group_by_batch), else -1.
    batch : array [B, S]
        Batch id of each perturbed cell (-1 without batch columns).
    pert_repeat, ctrl_repeat : array [B, S] bool
        True where the cell is a padding draw or already earlier in the set.
    pert_rows, ctrl_rows : array [B, S] int64
        Global rows (into the collection) of every cell.
    ctrl_level : array [B, S] int8
        The control matching level each control came from.
    pert_names, context_names, batch_names : list of str
        Names of each set's condition, context and batch (None without one).
    index : int
        Position of the batch in the rank's epoch.
    """

    pert_X: Any
    ctrl_X: Any
    pert_ids: Any
    doses: Any
    context: Any
    set_batch: Any
    batch: Any
    pert_repeat: Any
    ctrl_repeat: Any
    pert_rows: np.ndarray
    ctrl_rows: np.ndarray
    ctrl_level: Any
    pert_names: list
    context_names: list
    batch_names: list
    index: int
    _sizes: tuple = field(default=(0, 0, 0), repr=False)  # vocabulary sizes (pert, ctx, batch)

    def __len__(self) -> int:
        return len(self.pert_names)

    def as_cell_load(self) -> dict:
        """The batch with cell-load's field names, flattened to [B*S, ...].

        Returns
        -------
        dict
            ``pert_cell_emb``, ``ctrl_cell_emb`` [B*S, G]; ``pert_emb`` [B*S, P+1]
            (multi-hot over the perturbation vocabulary, last column = unseen);
            ``cell_type_onehot`` [B*S, C+1]; ``batch`` [B*S, K+1] one-hot; ``pert_name``,
            ``cell_type``, ``batch_name`` lists of B*S names.
        """
        B, S = self.pert_rows.shape
        n_pert, n_ctx, n_batch = self._sizes
        is_torch = torch is not None and isinstance(self.pert_X, torch.Tensor)
        ids = np.asarray(self.pert_ids.cpu() if is_torch else self.pert_ids)
        ctx = np.asarray(self.context.cpu() if is_torch else self.context)
        bat = np.asarray(self.batch.cpu() if is_torch else self.batch)
        pert_emb = np.zeros((B, n_pert + 1), np.float32)
        for b in range(B):
            for i in ids[b]:
                if i >= 0:
                    pert_emb[b, i] = 1.0
        ctx_oh = np.zeros((B, n_ctx + 1), np.float32)
        ctx_oh[np.arange(B), ctx] = 1.0
        batch_oh = np.zeros((B * S, n_batch + 1), np.float32)
        flat = bat.reshape(-1)
        ok = flat >= 0
        batch_oh[np.nonzero(ok)[0], flat[ok]] = 1.0
        out = {"pert_emb": np.repeat(pert_emb, S, axis=0), "cell_type_onehot": np.repeat(ctx_oh, S, axis=0),
               "batch": batch_oh}
        if is_torch:
            out = {k: torch.from_numpy(v) for k, v in out.items()}
        out["pert_cell_emb"] = self.pert_X.reshape(B * S, -1)
        out["ctrl_cell_emb"] = self.ctrl_X.reshape(B * S, -1)
        out["pert_name"] = [n for n in self.pert_names for _ in range(S)]
        out["cell_type"] = [n for n in self.context_names for _ in range(S)]
        names = self._cell_batch_names
        out["batch_name"] = names
        return out

    _cell_batch_names: list = field(default_factory=list, repr=False)


class SetLoader(_Base):
    """Batches of cell sets with matched controls, for perturbation-response models.

    Parameters
    ----------
    source : str, list of str, Collection or Corpus
        The files (paths or an opened :class:`cellfeed.Collection`), or a declared
        :class:`cellfeed.Corpus`: its filters, sources and splits decide which cells are
        eligible (quotas do not apply to sets and are refused).
    perturbation : Perturbation
        The declaration (columns, controls, matching, held-out splits).
    set_size : int
        Cells per set (S).
    sets_per_batch : int
        Sets per batch (B).
    split : {"train", "val", "test"}
        Which split's sets to deliver.
    seed : int
        Seed of every random choice (set cells, set order, padding, controls).
    genes : sequence of str, optional
        Deliver only these genes (of the collection's var_names), in this order.
    drop_last : bool
        Drop each rank's last batch when it has fewer than sets_per_batch sets.
    rank, world_size : int, optional
        Distributed position (default: torch.distributed's, else 0 of 1).
    output : {"torch", "numpy"}
        Array type of the batches.
    vocab : dict or path, optional
        Vocabularies to use instead of building them from the training split.
    threads, layer, join : optional
        As :func:`cellfeed.open`, when the loader opens the files.
    """

    def __init__(self, source, perturbation: Perturbation, set_size: int = 64, sets_per_batch: int = 16,
                 split: str = "train", seed: int = 0, genes=None, drop_last: bool = False,
                 rank: int | None = None, world_size: int | None = None, output: str = "torch",
                 vocab=None, threads: int | None = None, layer: str | None = None, join="inner"):
        from .loader import _distributed_defaults, _EpochCell

        if not isinstance(perturbation, Perturbation):
            raise TypeError("perturbation must be a cellfeed.Perturbation")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if output not in ("torch", "numpy"):
            raise ValueError(f"output must be 'torch' or 'numpy', got {output!r}")
        if output == "torch" and torch is None:
            raise ValueError("output='torch' needs torch installed")
        if int(set_size) < 1 or int(sets_per_batch) < 1:
            raise ValueError(f"set_size and sets_per_batch must be >= 1, got {set_size}, {sets_per_batch}")
        self.perturbation = perturbation
        self.set_size, self.sets_per_batch = int(set_size), int(sets_per_batch)
        self.split, self.seed, self.drop_last, self.output = split, int(seed), bool(drop_last), output
        self.rank, self.world_size = _distributed_defaults(rank, world_size)
        self.corpus = None
        self._open_args = None
        if isinstance(source, Corpus):
            self.corpus = source
            for s in source.sources:
                if s.cells is not None or s.weight is not None or s.balance_by or s.weight_column:
                    raise ValueError(f"SetLoader: corpus source {s.name!r} declares a quota "
                                     "(cells/weight/balance_by/weight_column); quotas do not apply "
                                     "to cell sets (use Perturbation(sets_per_group=...) to balance)")
        elif isinstance(source, Collection):
            self._open_args = source._open_args
        else:
            self._open_args = (source, layer, threads, join)
        self._source = source if isinstance(source, Collection) else None
        self._vocab_arg = vocab
        self._genes_arg = None if genes is None else [str(g) for g in genes]
        self._epoch_cell = _EpochCell(0)
        self._yielded = 0
        self._pid = os.getpid()
        self._build()

    # -- building ----------------------------------------------------------------------------
    def _open(self) -> Collection:
        if self.corpus is not None:
            return self.corpus.build().collection
        if self._source is not None and os.getpid() == self._pid:
            return self._source
        src, layer, threads, join = self._open_args[:4]
        return open_collection(src, layer=layer, threads=threads, join=join)

    def _build(self) -> None:
        col = self._open()
        self._collection = col
        if self.corpus is not None:
            parts = [self.corpus.rows(s) for s in SPLITS]
            rows = np.concatenate(parts)
            split_codes = np.concatenate([np.full(len(p), i, np.int8) for i, p in enumerate(parts)])
            order = np.argsort(rows, kind="stable")
            rows, split_codes = rows[order], split_codes[order]
            if len(rows) and (np.diff(rows) == 0).any():
                raise ValueError("SetLoader: a cell is in two splits of the corpus")
        else:
            rows = np.arange(col.n_obs, dtype=np.int64)
            split_codes = None
        self._index = _Index(col, self.perturbation, np.ascontiguousarray(rows, np.int64),
                             None if split_codes is None else np.ascontiguousarray(split_codes),
                             self.set_size, self.sets_per_batch, self.seed, self.drop_last, self._vocab_arg)
        self._row_index = rows
        if self._genes_arg is not None:
            var = {g: i for i, g in enumerate(col.var_names)}
            missing = [g for g in self._genes_arg if g not in var]
            if missing:
                raise ValueError(f"SetLoader: {len(missing)} genes are not in the files' var_names "
                                 f"(first: {missing[:5]})")
            self._gene_cols = np.array([var[g] for g in self._genes_arg], np.int64)
        else:
            self._gene_cols = None
        self._plans = {}
        self._num_batches = self._plan(0).num_batches

    def _plan(self, epoch: int):
        key = (epoch, self.seed)
        if key not in self._plans:
            self._plans = {key: self._index.engine.plan(SPLITS.index(self.split), epoch, self.rank,
                                                        self.world_size)}
        return self._plans[key]

    # -- properties ---------------------------------------------------------------------------
    @property
    def collection(self) -> Collection:
        """The opened files.

        Returns
        -------
        Collection
        """
        self._ensure_open()
        return self._collection

    @property
    def vocab(self) -> dict:
        """Vocabularies in use: ``{"perturbation": [...], "context": [...], "batch": [...]}``.

        Returns
        -------
        dict
        """
        return self._index.vocab

    @property
    def groups(self) -> pd.DataFrame:
        """Every group: split, context, condition, control, batch, cells, sets per epoch.

        Returns
        -------
        pandas.DataFrame
        """
        return self._index.groups.copy()

    @property
    def epoch(self) -> int:
        """The current epoch (changed by :meth:`set_epoch`).

        Returns
        -------
        int
        """
        return self._epoch_cell.value

    def __len__(self) -> int:
        """Batches per epoch for this rank (the same on every rank)."""
        return self._num_batches

    def save_vocabulary(self, path) -> None:
        """Write the vocabularies in use to a JSON file (see :func:`save_vocabulary`).

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file.
        """
        save_vocabulary(self.vocab, path)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch; sets and controls are drawn anew for each epoch.

        Parameters
        ----------
        epoch : int
            The epoch number.
        """
        self._epoch_cell.value = int(epoch)
        self._epoch_cell.clear_resume()
        self._yielded = 0

    def _config(self) -> dict:
        p = self.perturbation
        return {"set_size": self.set_size, "sets_per_batch": self.sets_per_batch, "split": self.split,
                "drop_last": self.drop_last, "rank": self.rank, "world_size": self.world_size,
                "perturbation": repr(p), "n_obs": int(self.collection.n_obs),
                "corpus": None if self.corpus is None else self.corpus.fingerprint}

    def state_dict(self, after: SetBatch | None = None) -> dict:
        """Where this loader stands; a new SetLoader given it continues exactly.

        Parameters
        ----------
        after : SetBatch, optional
            The last batch the training loop consumed (needed under a DataLoader with
            workers, whose batches the loader in the training process does not see).

        Returns
        -------
        dict
        """
        yielded = self._yielded if after is None else int(after.index) + 1
        return {"epoch": self.epoch, "batches_yielded": yielded, "seed": self.seed, "config": self._config()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`.

        Parameters
        ----------
        state : dict
            As returned by :meth:`state_dict` with the same declaration and configuration.
        """
        if state["config"] != self._config():
            raise ValueError(f"state_dict was taken with another configuration: {state['config']} != "
                             f"{self._config()}")
        if int(state["seed"]) != self.seed:
            raise ValueError("state_dict was taken with another seed")
        self._epoch_cell.value = int(state["epoch"])
        self._yielded = int(state["batches_yielded"])
        self._epoch_cell.set_resume(self.seed, self._yielded, None)

    # -- reports -------------------------------------------------------------------------------
    def report(self) -> dict:
        """What the declaration holds and what this epoch's split delivers.

        Returns
        -------
        dict
            ``groups`` (a DataFrame: cells and sets per split, perturbed / control),
            ``control_levels`` (a DataFrame: per level, its columns, perturbed cells
            matched there per split, and this epoch's sets whose coarsest control came
            from it), ``skipped`` (groups below min_cells and cells without controls, per
            split), ``held_out_controls`` (the rule, in words), ``vocab_sizes``.
        """
        ix = self._index
        g = ix.groups
        groups = g.groupby(["split", "control"]).agg(groups=("cells", "size"), cells=("cells", "sum"),
                                                     sets=("sets", "sum")).reset_index()
        counts = ix.engine.counts()
        per_set = self._plan(self.epoch).sets_per_level()
        levels = pd.DataFrame({
            "level": range(len(self.perturbation.match)),
            "columns": [", ".join(["context", *lv]) for lv in self.perturbation.match],
            **{f"{s}_cells": [c[i] for c in counts["cells_per_level"]] for i, s in enumerate(SPLITS)},
            f"{self.split}_sets_epoch_{self.epoch}": per_set})
        skipped = pd.DataFrame({"split": SPLITS, "small_groups": counts["small_groups"],
                                "small_group_cells": counts["small_group_cells"],
                                "uncontrolled_cells": counts["uncontrolled_cells"]})
        common = ("sets draw controls of their own context from their own split or a lower one "
                  "(train < val < test): training sets never use held-out controls")
        rule = ("controls of held-out contexts are held out with their context; " + common
                if self.perturbation.held_out_controls == "with_context" else
                "controls of held-out contexts stay in train (shared); " + common)
        return {"groups": groups, "control_levels": levels, "skipped": skipped,
                "held_out_controls": rule,
                "vocab_sizes": {k: len(v) for k, v in self.vocab.items()}}

    # -- iteration -----------------------------------------------------------------------------
    def _ensure_open(self) -> None:
        if os.getpid() == self._pid and getattr(self, "_collection", None) is not None:
            return
        # A forked DataLoader worker: the parent's engines hold threads that are not here.
        _INHERITED.append(getattr(self, "_collection", None))
        if self.corpus is not None and self.corpus._built is not None:
            self.corpus._reopen_forked(None)
            self._collection = self.corpus.collection
        elif self.corpus is not None:
            self._collection = self.corpus.build().collection
        else:
            src, layer, threads, join = self._open_args[:4]
            self._collection = open_collection(src, layer=layer, threads=threads, join=join)
        self._pid = os.getpid()

    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("_collection", "_index", "_plans", "_source"):
            state[k] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.corpus is not None:
            self.corpus._built = None
        self._pid = os.getpid()
        self._build()

    def batch(self, index: int, epoch: int | None = None) -> SetBatch:
        """Batch `index` of this rank's epoch (random access; iteration uses it too).

        Parameters
        ----------
        index : int
            0 <= index < len(self).
        epoch : int, optional
            Default: the current epoch.

        Returns
        -------
        SetBatch
        """
        self._ensure_open()
        ix = self._index
        plan = self._plan(self.epoch if epoch is None else int(epoch))
        n_sets, groups, _sets, pr, prep, cr, crep, clev = plan.get_batch(int(index))
        S = self.set_size
        shape = (int(n_sets), S)
        both = np.concatenate([pr, cr])
        uniq, inverse = np.unique(both, return_inverse=True)
        m = self._collection.read(uniq)
        if self._gene_cols is not None:
            m = m[:, self._gene_cols]
        dense = m.toarray().astype(np.float32, copy=False)
        X = dense[inverse.reshape(-1)]
        G = X.shape[1]
        pert_X = X[: len(pr)].reshape(shape + (G,))
        ctrl_X = X[len(pr):].reshape(shape + (G,))
        cond = ix._group_condition[groups]
        ctx = ix._group_context[groups]
        gb = ix._group_batch[groups]
        pert_ids = ix.cond_ids[cond]
        doses = ix.cond_doses[cond]
        context = ix.ctx_ids[ctx]
        set_batch = np.where(gb >= 0, ix.batch_ids[np.maximum(gb, 0)] if len(ix.batch_ids) else -1, -1)
        if ix._batch is not None:
            pos = np.searchsorted(self._row_index, pr)
            cell_b = ix._batch[pos]
            batch = ix.batch_ids[cell_b].reshape(shape)
            cell_batch_names = [ix.batch_names[b] for b in cell_b]
        else:
            batch = np.full(shape, -1, np.int64)
            cell_batch_names = [None] * len(pr)
        out = SetBatch(
            pert_X=pert_X, ctrl_X=ctrl_X, pert_ids=pert_ids, doses=doses, context=context,
            set_batch=set_batch.astype(np.int64), batch=batch, pert_repeat=prep.astype(bool).reshape(shape),
            ctrl_repeat=crep.astype(bool).reshape(shape), pert_rows=pr.reshape(shape),
            ctrl_rows=cr.reshape(shape), ctrl_level=clev.reshape(shape),
            pert_names=[ix.condition_names[c] for c in cond],
            context_names=[ix.context_names[c] for c in ctx],
            batch_names=[ix.batch_names[b] if b >= 0 else None for b in gb],
            index=int(index),
            _sizes=(len(ix.vocab["perturbation"]), len(ix.vocab["context"]), len(ix.vocab["batch"])),
            _cell_batch_names=cell_batch_names)
        if self.output == "torch":
            for name in ("pert_X", "ctrl_X", "pert_ids", "doses", "context", "set_batch", "batch",
                         "pert_repeat", "ctrl_repeat", "ctrl_level"):
                setattr(out, name, torch.from_numpy(np.ascontiguousarray(getattr(out, name))))
        return out

    def __iter__(self):
        self._ensure_open()
        info = torch.utils.data.get_worker_info() if torch is not None else None
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # Worker w of k takes batches start + w, start + w + k, ...: a DataLoader's in-order
        # round robin over its workers then yields them in index order.
        taken = self._epoch_cell.take_resume(worker)
        start = 0 if taken is None else int(taken[0])
        epoch = self.epoch
        b = start + worker
        while b < self._num_batches:
            out = self.batch(b, epoch)
            self._yielded = b + 1
            yield out
            b += workers
