"""Sphinx configuration of cellfeed's documentation site.

Build: `bash scripts/docs.sh` (warnings are errors); serve: `bash scripts/docs.sh serve`.
The Markdown pages are read by MyST; the API reference is autodoc over the installed
package's numpydoc docstrings (napoleon); docs/_ext/cellfeed_docs.py adds the CLI's own
--help, the guides list and the docstring coverage check.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import cellfeed  # noqa: E402  (the installed package: what the API reference documents)

project = "cellfeed"
author = "the cellfeed authors"
copyright = "2026, the cellfeed authors"
release = version = cellfeed.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "cellfeed_docs",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]

# numpydoc-style docstrings (as scverse projects write them), rendered by napoleon.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings give the types in numpydoc form
autodoc_default_options = {"members": True}
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = False  # a method without its own docstring is a doccheck error

# A reference to a cellfeed name that does not exist is an error (with -W); names of other
# projects are not checked (the build is offline: no intersphinx inventories).
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!cellfeed\b).*")]

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
highlight_language = "text"  # a block without a language is shown as written (outputs, tables)
suppress_warnings = []

html_theme = "furo"
html_title = f"cellfeed {release}"
html_static_path = []
html_show_sourcelink = False
