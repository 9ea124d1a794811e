"""The `loader_files` fixture of the Loader tests (import it from the test module:
``from conftest_loader import loader_files``). The files are written once per session,
whichever test modules import the fixture."""

from __future__ import annotations

import pytest

from loader_helpers import LoaderFiles, write_files

_CACHE: dict[str, LoaderFiles] = {}


@pytest.fixture(scope="session")
def loader_files(tmp_path_factory) -> LoaderFiles:
    if "files" not in _CACHE:
        _CACHE["files"] = write_files(tmp_path_factory.mktemp("loader_files"))
    return _CACHE["files"]
