"""Conversion of engine column records (dicts of numpy arrays) into pandas objects,
with the same dtypes anndata gives when it reads the file."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _categories_index(cats: dict) -> pd.Index:
    if cats["kind"] == "string":
        return pd.Index(np.asarray(cats["strings"], dtype=object))
    return pd.Index(cats["values"])


def to_pandas(col: dict):
    """An array-like ready to become a DataFrame column."""
    kind = col["kind"]
    if kind in ("numeric", "bool"):
        return col["values"]
    if kind == "string":
        return np.asarray(col["strings"], dtype=object)
    if kind == "categorical":
        return pd.Categorical.from_codes(
            col["values"].astype(np.int64, copy=False),
            categories=_categories_index(col["categories"]),
            ordered=bool(col["ordered"]),
        )
    if kind == "nullable-integer":
        return pd.arrays.IntegerArray(col["values"], col["mask"])
    if kind == "nullable-boolean":
        return pd.arrays.BooleanArray(col["values"], col["mask"])
    if kind == "nullable-string":
        values = np.asarray(col["strings"], dtype=object)
        values[col["mask"]] = pd.NA
        return pd.array(values, dtype="string")
    raise ValueError(f"unknown column kind {kind!r}")
