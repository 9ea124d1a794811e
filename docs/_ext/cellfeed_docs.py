"""Sphinx extension for cellfeed's documentation site (docs/conf.py loads it).

Three things are computed from the code at build time, so the site cannot drift from it:
- the command-line reference: `<!-- cellfeed:cli-help -->` in a page becomes the output of
  `cellfeed --help` and of `cellfeed COMMAND --help` for every command it lists;
- the API reference's remainder: `<!-- cellfeed:api-rest -->` becomes autodoc entries for
  every public name (doccheck.public_objects) that the page does not document already, so
  a name added to `cellfeed.__all__` appears without editing the page;
- the guides: `<!-- cellfeed:guides -->` becomes a toctree of docs/*.md in GUIDE_ORDER,
  then any other upper-case page (a new guide joins the site by existing).
Every problem that doccheck finds in the public docstrings is a warning; the build runs
with -W, so an undocumented public name or parameter fails it.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

from sphinx.util import logging

import cli_help
import doccheck

logger = logging.getLogger(__name__)
DOCS = Path(__file__).resolve().parent.parent

# The guides, in reading order; a page not named here follows them, alphabetically.
GUIDE_ORDER = ["FORMATS", "CORPUS", "MODEL_INPUTS", "PERTURBATION", "PYTORCH", "SAMPLING",
               "STORAGE", "ERRORS", "RELIABILITY", "CLI", "DEPENDENCIES"]
# Upper-case pages that have a place of their own in index.md's other toctrees.
NOT_GUIDES = {"BENCHMARKS"}


def api_rest(page_text: str) -> str:
    """autodoc entries for the public names the API page does not document itself."""
    documented = set(re.findall(r"\.\. auto(?:function|class|data|module)::\s+(\S+)", page_text))
    objects = doccheck.public_objects()
    classes = {q for q, obj, *_ in objects if isinstance(obj, type)}
    lines = []
    for qual, obj, *_ in objects:
        if isinstance(obj, types.ModuleType) or qual in documented:
            continue
        if any(qual.startswith(c + ".") for c in classes):
            continue  # a method or property: it comes with its class's entry
        kind = "autoclass" if isinstance(obj, type) else "autofunction"
        lines += ["```{eval-rst}", f".. {kind}:: {qual}", "```", ""]
    if not lines:
        return "Every public name is documented in a section above.\n"
    return "\n".join(lines)


def guides_toctree() -> str:
    pages = {p.stem for p in DOCS.glob("*.md") if p.stem.isupper() or re.fullmatch(r"[A-Z_]+", p.stem)}
    pages -= NOT_GUIDES
    ordered = [g for g in GUIDE_ORDER if g in pages] + sorted(pages - set(GUIDE_ORDER))
    return "\n".join(["```{toctree}", ":maxdepth: 1", ":caption: Guides", "", *ordered, "```"])


def fill_placeholders(app, docname, source):
    text = source[0]
    if "<!-- cellfeed:cli-help -->" in text:
        text = text.replace("<!-- cellfeed:cli-help -->", cli_help.reference_markdown())
    if "<!-- cellfeed:api-rest -->" in text:
        text = text.replace("<!-- cellfeed:api-rest -->", api_rest(text))
    if "<!-- cellfeed:guides -->" in text:
        text = text.replace("<!-- cellfeed:guides -->", guides_toctree())
    source[0] = text


def check_docstrings(app):
    for problem in doccheck.check():
        logger.warning(f"doccheck: {problem}", type="cellfeed", subtype="doccheck")


def setup(app):
    app.connect("source-read", fill_placeholders)
    app.connect("builder-inited", check_docstrings)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
