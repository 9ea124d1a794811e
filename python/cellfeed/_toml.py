"""Reading declaration files (corpus, perturbation, cell-load TOML): one error wording."""

from __future__ import annotations

import os


def read_toml(path) -> dict:
    """The TOML file at `path` as a dict; a ValueError naming the file if it does not parse."""
    import tomllib

    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
