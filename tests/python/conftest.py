"""Shared pytest fixtures: the generated .h5ad files (written once per session into a
temporary directory) and their anndata references (read once per file)."""

from __future__ import annotations

import warnings

import anndata as ad
import pytest

import fixtures


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> fixtures.Generated:
    return fixtures.generate(tmp_path_factory.mktemp("h5ad"))


@pytest.fixture(scope="session")
def paths(generated) -> dict:
    """Single-file case name -> path."""
    return generated.single


@pytest.fixture(scope="session")
def reference(generated):
    """reference(path) -> anndata.read_h5ad(path), cached for the session."""
    cache: dict = {}

    def get(path) -> ad.AnnData:
        key = str(path)
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[key] = ad.read_h5ad(key)
        return cache[key]

    return get
