"""Perturbation declarations for cell-set training (STATE, CPA, GEARS-style models).

:class:`Perturbation` declares which obs columns hold the perturbation, the control
values, the context (cell line, cell type), batches, control matching and held-out
splits; :func:`parse_condition` reads the condition strings (GEARS/CPA "A+B", scPerturb
"A_B", Tahoe-100M's "[('Drug', 0.5, 'uM')]"). :class:`cellfeed.SetLoader` (set_loader.py)
delivers the sets; docs/PERTURBATION.md has the rules.
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

from ._toml import read_toml

SPLITS = ("train", "val", "test")
COMBOS = ("+", "_", "tahoe", None)

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
    controls_from_lower_splits : bool
        Held-out sets may also draw controls from the splits below theirs (val sets from
        train, test sets from val and train), e.g. a few-shot perturbation compared with
        its context's training controls. Default False: a set's controls come from its
        own split. Training sets never draw held-out controls.
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
    datasets : dict, optional
        ``{name: [files]}``: the files of each dataset (cell-load's ``[datasets]``). A
        context is then named ``"<dataset>.<value>"`` (cell-load's TOML keys), so the same
        cell type in two datasets is two contexts; every file must be in one dataset.
    training : sequence of str, optional
        With ``datasets``: the datasets whose every context is used (cell-load's
        ``[training]``); in the others only the contexts named by ``zeroshot`` or
        ``fewshot`` are used and their other cells are left out. Default: all datasets.

    Examples
    --------
    Drugs on cell lines, controls matched on the plate first, then on the cell line alone;
    drugB held out everywhere (its test sets compare with their context's training
    controls, which must be declared):

    >>> import cellfeed
    >>> p = cellfeed.Perturbation("drug", control=["DMSO"], context="cell_line",
    ...                           batch="plate", match=[["plate"], []],
    ...                           unseen={"test": ["drugB"]}, controls_from_lower_splits=True)
    >>> p.context, p.match
    (['cell_line'], [['plate'], []])
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
    controls_from_lower_splits: bool = False
    zeroshot: dict | None = None
    fewshot: dict | None = None
    unseen: dict | None = None
    min_cells: int = 1
    sets_per_group: int | None = None
    skip_uncontrolled: bool = False
    datasets: dict | None = None
    training: Sequence[str] | None = None

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
        if self.datasets is not None:
            if not isinstance(self.datasets, dict) or not self.datasets:
                raise ValueError("Perturbation: datasets must be a dict {name: [files]}")
            self.datasets = {str(k): [os.fspath(f) for f in ([v] if isinstance(v, (str, os.PathLike)) else v)]
                             for k, v in self.datasets.items()}
            for name, files in self.datasets.items():
                if not files:
                    raise ValueError(f"Perturbation: dataset {name!r} has no files")
        if self.training is not None:
            if self.datasets is None:
                raise ValueError("Perturbation: training= names datasets; it needs datasets=")
            self.training = [str(t) for t in self.training]
            unknown = sorted(set(self.training) - set(self.datasets))
            if unknown:
                raise ValueError(f"Perturbation: training names {unknown}, not in datasets "
                                 f"({', '.join(self.datasets)})")

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
        path = os.fspath(path)
        spec = read_toml(path)
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


def from_cell_load_toml(path, pert_col: str = "gene", cell_type_key: str = "cell_type",
                        batch_col: str | None = "gem_group", control_pert: str = "non-targeting",
                        **perturbation) -> tuple[list[str], Perturbation]:
    """Read a cell-load (STATE) TOML split file as cellfeed files and a Perturbation.

    ``[datasets]`` names each dataset's folder (its ``*.h5`` and ``*.h5ad`` files), file
    or glob; ``[training] dataset = "train"`` uses every cell type of a dataset;
    ``[zeroshot] "dataset.cell_type" = "val"|"test"`` holds a cell type of one dataset
    out; ``[fewshot."dataset.cell_type"] val/test = [perturbations]`` holds
    perturbations out in it. The datasets used are cell-load's: those under
    ``[training]`` and those named by a zero-shot or few-shot key (of these, only the
    named cell types). Contexts are named ``"dataset.cell_type"`` as in the TOML, so
    one cell type in two datasets is two contexts. Relative paths are relative to the
    TOML file (cell-load: to the working directory). A perturbation listed under both
    val and test of one cell type goes to test (cell-load puts its cells in both).
    cell-load's keyword defaults are used for the columns; its rule for the controls
    of held-out cell types is ``held_out_controls="shared"`` (the default here is
    ``"with_context"``: docs/PERTURBATION.md).

    Parameters
    ----------
    path : str or os.PathLike
        The TOML file.
    pert_col, cell_type_key, batch_col, control_pert : str
        cell-load's ``pert_col``, ``cell_type_key``, ``batch_col``, ``control_pert``.
    **perturbation
        More :class:`Perturbation` arguments (``combo``, ``match``,
        ``held_out_controls``, ...). ``controls_from_lower_splits`` defaults to True
        (few-shot sets compare with their cell type's training controls, as in
        cell-load).

    Returns
    -------
    files : list of str
        The datasets' files, for :class:`cellfeed.SetLoader`.
    perturbation : Perturbation

    Examples
    --------
    >>> import os, tempfile, numpy as np, pandas as pd, anndata as ad
    >>> from cellfeed.perturb import from_cell_load_toml
    >>> d = tempfile.mkdtemp(); os.mkdir(d + "/rep")
    >>> obs = pd.DataFrame({"gene": ["non-targeting", "TP53"] * 4, "cell_type": ["k562"] * 8,
    ...                     "gem_group": ["g1"] * 8}, index=[f"c{i}" for i in range(8)])
    >>> ad.AnnData(np.ones((8, 5), np.float32), obs=obs).write_h5ad(d + "/rep/k562.h5ad")
    >>> _ = open(d + "/split.toml", "w").write(
    ...     '[datasets]\\nrep = "rep"\\n[training]\\nrep = "train"\\n[zeroshot]\\n"rep.k562" = "test"\\n')
    >>> files, pert = from_cell_load_toml(d + "/split.toml")
    >>> [os.path.basename(f) for f in files], pert.zeroshot
    (['k562.h5ad'], {'test': ['rep.k562']})
    """
    path = os.fspath(path)
    spec = read_toml(path)
    unknown = sorted(set(spec) - {"datasets", "training", "zeroshot", "fewshot"})
    if unknown:
        raise ValueError(f"{path}: unknown tables {unknown}; a cell-load TOML has datasets, training, "
                         "zeroshot, fewshot")
    datasets = {str(k): v for k, v in (spec.get("datasets") or {}).items()}
    if not datasets:
        raise ValueError(f"{path}: no [datasets]")
    training = []
    for name, how in (spec.get("training") or {}).items():
        if name not in datasets:
            raise ValueError(f"{path}: [training] names {name!r}, not in [datasets]")
        if how != "train":
            raise ValueError(f"{path}: [training] {name} = {how!r}; cell-load takes \"train\"")
        training.append(name)

    def split_key(key, table):
        # the longest dataset name that prefixes the key, then "."
        hits = [d for d in datasets if str(key).startswith(d + ".") and len(str(key)) > len(d) + 1]
        if not hits:
            raise ValueError(f"{path}: [{table}] {key!r} is not \"<dataset>.<cell type>\" with a dataset "
                             f"of [datasets] ({', '.join(datasets)})")
        return max(hits, key=len)

    zeroshot: dict = {}
    used = list(training)
    for key, split in (spec.get("zeroshot") or {}).items():
        if split not in ("train", "val", "test"):
            raise ValueError(f"{path}: [zeroshot] {key!r} = {split!r}; expected \"val\" or \"test\"")
        used.append(split_key(key, "zeroshot"))
        if split != "train":
            zeroshot.setdefault(split, []).append(str(key))
    fewshot: dict = {}
    for key, rule in (spec.get("fewshot") or {}).items():
        bad = sorted(set(rule) - {"val", "test"})
        if bad:
            raise ValueError(f"{path}: [fewshot.{key!r}] takes val and test, got {bad}")
        used.append(split_key(key, "fewshot"))
        test = [str(p) for p in rule.get("test", [])]
        fewshot[str(key)] = {"val": [str(p) for p in rule.get("val", []) if str(p) not in test], "test": test}
    used = list(dict.fromkeys(used))
    if not used:
        raise ValueError(f"{path}: no dataset is used (none under [training], [zeroshot] or [fewshot])")
    base = os.path.dirname(os.path.abspath(path))
    files_of = {name: _cell_load_files(path, name, datasets[name], base) for name in used}
    files = [f for name in used for f in files_of[name]]
    if len(set(files)) != len(files):
        raise ValueError(f"{path}: a file is in two datasets")
    kw = dict(pert_col=pert_col, control=[control_pert], context=cell_type_key, batch=batch_col,
              combo=None, zeroshot=zeroshot or None, fewshot=fewshot or None, datasets=files_of,
              training=None if set(training) == set(used) else training,
              controls_from_lower_splits=True)
    kw.update(perturbation)
    return files, Perturbation(**kw)


def _cell_load_files(path, name, where, base) -> list[str]:
    """A dataset's files as cell-load finds them: a file, a folder's *.h5 and *.h5ad, or a glob
    (with {a,b} alternatives) of files or of folders."""
    import glob
    import re

    where = os.path.join(base, os.path.expanduser(str(where)))
    if any(c in where for c in "*?[]{}"):
        patterns = [where]
        while any("{" in p for p in patterns):
            out = []
            for p in patterns:
                m = re.search(r"\{([^}]+)\}", p)
                out.extend([p[:m.start()] + o.strip() + p[m.end():] for o in m.group(1).split(",")] if m else [p])
            patterns = out
        found = []
        for p in patterns:
            if p.endswith((".h5", ".h5ad")):
                found += glob.glob(p)
            else:
                found += glob.glob(os.path.join(p, "*.h5")) + glob.glob(os.path.join(p, "*.h5ad"))
        files = sorted(set(found))
    elif os.path.isdir(where):
        files = sorted(glob.glob(os.path.join(where, "*.h5")) + glob.glob(os.path.join(where, "*.h5ad")))
    elif os.path.exists(where):
        files = [where]
    else:
        raise ValueError(f"{path}: dataset {name!r}: no such file or folder {where}")
    if not files:
        raise ValueError(f"{path}: dataset {name!r}: no .h5 or .h5ad file in {where}")
    return files


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
