#!/usr/bin/env bash
# The documentation site: docs/ -> build/docs/html.
#   bash scripts/docs.sh          build with warnings as errors (a broken reference or an
#                                 undocumented public name fails it), then open the main
#                                 pages in headless Chromium and check what they show
#                                 (screenshots in build/docs/screenshots/)
#   bash scripts/docs.sh serve    build, then serve the site on http://127.0.0.1:${PORT:-8000}
# Sphinx runs from .venv-docs (scripts/install.sh makes it; it sees the installed cellfeed),
# or from $DOCS_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${DOCS_PYTHON:-.venv-docs/bin/python}"
OUT=build/docs

rm -rf "$OUT/html" "$OUT/doctrees"
mkdir -p "$OUT"
# Shown: the version line, every warning, and Sphinx's own summary line ("build succeeded."
# or "build finished with problems, N warnings"); the whole output in $OUT/sphinx.log.
set +e
"$PY" -m sphinx -W --keep-going -b html -d "$OUT/doctrees" docs "$OUT/html" 2>&1 \
  | tee "$OUT/sphinx.log" | grep -E "^Running Sphinx|WARNING:|ERROR:|CRITICAL:|^build |^The HTML pages"
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
  echo; echo "docs: the build failed (sphinx exited $status; full output in $OUT/sphinx.log)" >&2
  exit "$status"
fi

case "${1:-check}" in
  check)
    "$PY" scripts/docs_browser_check.py "$OUT/html" "$OUT/screenshots"
    ;;
  serve)
    echo "serving $OUT/html on http://127.0.0.1:${PORT:-8000} (Ctrl-C stops)"
    exec "$PY" -m http.server --bind 127.0.0.1 --directory "$OUT/html" "${PORT:-8000}"
    ;;
  build) ;;
  *) echo "usage: bash scripts/docs.sh [check|serve|build]" >&2; exit 2 ;;
esac
