"""The documentation against the code: every public name documented with its parameters,
the docstrings' examples run and give what they show, and every CLI command has help.

The public names come from `cellfeed.__all__` at run time (docs/_ext/doccheck.py), so a
name added there is covered without editing this file. The docs build
(scripts/docs.sh) runs the same check and fails on any problem.
"""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import cli_help  # noqa: E402
import doccheck  # noqa: E402

import cellfeed  # noqa: E402


def test_every_public_name_documents_its_parameters():
    objects = doccheck.public_objects()
    names = {q for q, *_ in objects}
    # The list really is cellfeed.__all__ (and what its submodules and classes make public).
    for name in cellfeed.__all__:
        if name != "__version__":
            obj = getattr(cellfeed, name)
            assert (f"cellfeed.{name}" in names or getattr(obj, "__name__", None) in names), name
    assert {"cellfeed.Loader.state_dict", "cellfeed.inputs.aido_cell_rda",
            "cellfeed.vocab.Vocabulary"} <= names
    assert doccheck.check() == []


def _undocumented(rows, *, block_size: int = 4):
    return rows


def _half_documented(rows, seed: int = 0) -> list:
    """Reads rows.

    Parameters
    ----------
    rows : list of int
        The rows.
    """
    return rows


class _Documented:
    """A class.

    Parameters
    ----------
    path : str
        A path.

    Examples
    --------
    >>> 1
    1
    """

    def __init__(self, path):
        self.path = path

    def read(self):
        return self.path


def test_the_check_fails_on_an_undocumented_public_name(monkeypatch):
    # A new name in cellfeed.__all__ is checked without any list to update.
    before = doccheck.check()
    monkeypatch.setattr(cellfeed, "_undocumented", _undocumented, raising=False)
    monkeypatch.setattr(cellfeed, "__all__", [*cellfeed.__all__, "_undocumented"])
    assert doccheck.check() == [*before, "cellfeed._undocumented: no docstring"]


def test_the_check_names_each_missing_part(monkeypatch):
    pkg = types.ModuleType("fakefeed")
    pkg.__doc__ = "A package."
    pkg.__all__ = ["half", "Documented"]
    pkg.half, pkg.Documented = _half_documented, _Documented
    monkeypatch.setitem(sys.modules, "fakefeed", pkg)
    assert doccheck.check("fakefeed") == [
        "fakefeed.half: parameters not documented under 'Parameters': seed",
        "fakefeed.half: returns a value but has no 'Returns' section",
        "fakefeed.half: no 'Examples' section",
        "fakefeed.Documented.read: no docstring",
    ]


def test_numpydoc_sections_are_parsed():
    doc = """Summary.

    Parameters
    ----------
    a, b : int
        Two.
    *args
        More.
    c : str, default "x"
        Words: not a parameter line.

    Returns
    -------
    int
    """
    assert doccheck.documented_parameters(doc) == {"a", "b", "args", "c"}
    assert set(doccheck.sections(doc)) == {"", "Parameters", "Returns"}


def _public_modules():
    names = ["cellfeed", "cellfeed.collection", "cellfeed.corpus", "cellfeed.loader",
             "cellfeed.qc", "cellfeed.vocab", "cellfeed.inputs", "cellfeed.perturb",
             "cellfeed.set_loader", "cellfeed.threads"]
    for optional in ("cellfeed.lightning", "cellfeed.elastic"):  # need lightning / torch
        try:
            importlib.import_module(optional)
            names.append(optional)
        except ImportError:
            pass
    return [importlib.import_module(n) for n in names]


def test_docstring_examples_run(monkeypatch, tmp_path):
    # The examples read the repository's real files by relative path, as a user at the
    # repository root would; QC results go to a cache of this test's own.
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CELLFEED_CACHE_DIR", str(tmp_path))
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    seen, examples = set(), 0
    for module in _public_modules():
        for test in finder.find(module):
            if test.name in seen or not test.examples:
                continue
            seen.add(test.name)
            examples += len(test.examples)
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
    # Every top-level function and class has examples (doccheck requires them).
    assert examples >= 60 and result.attempted == examples


def test_every_cli_command_has_help():
    top = cli_help.help_text([])
    commands = dict(cli_help.subcommands(top))
    assert {"inspect", "check", "bench", "corpus"} <= set(commands)
    for name, summary in commands.items():
        assert summary, f"`cellfeed --help` gives no description of {name}"
        text = cli_help.help_text([name])
        assert f"cellfeed {name}" in text.splitlines()[0] or "sage" in text, text
        options = [line for line in text.splitlines() if line.lstrip().startswith("-")]
        assert len(options) >= 2, f"cellfeed {name} --help lists no options:\n{text}"


def test_cli_help_fails_loudly_on_an_unknown_command():
    with pytest.raises(RuntimeError, match="no-such-command"):
        cli_help.help_text(["no-such-command"])
