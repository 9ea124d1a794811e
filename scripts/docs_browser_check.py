"""Open the built documentation site's main pages in headless Chromium and check that they
render with their content: the title, code blocks, every public API entry, every CLI
command's help. Each page is loaded from disk by the browser (its DOM after scripts ran,
`--dump-dom`) and photographed (`--screenshot`) into SCREENSHOT_DIR.

    python scripts/docs_browser_check.py build/docs/html build/docs/screenshots

Chromium comes from Debian (`apt-get install chromium`; scripts/install.sh installs it).
Exit status 1, listing what is missing, if a page lacks what it must show.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "_ext"))
import cli_help  # noqa: E402
import doccheck  # noqa: E402

# page -> its h1 (a prefix)
PAGES = {
    "index.html": "cellfeed",
    "quickstart.html": "Quick start",
    "api.html": "API reference",
    "cli_reference.html": "Command-line reference",
    "tutorials/pretrain.html": "The main job",
    "CORPUS.html": "Declared training corpora",
    "BENCHMARKS.html": "Benchmarks",
}


class Page(HTMLParser):
    """What a rendered page shows: title, h1, code blocks, ids, tables and text."""

    def __init__(self):
        super().__init__()
        self.title = ""
        self.h1 = ""
        self.code_blocks: list[str] = []
        self.ids: set[str] = set()
        self.tables = 0
        self._in: list[str] = []
        self._pre: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "pre":
            self._pre = []
        if tag == "table":
            self.tables += 1
        self._in.append(tag)

    def handle_endtag(self, tag):
        if tag == "pre" and self._pre is not None:
            self.code_blocks.append("".join(self._pre))
            self._pre = None
        while self._in:
            if self._in.pop() == tag:
                break

    def handle_data(self, data):
        if self._pre is not None:
            self._pre.append(data)
        if "title" in self._in:
            self.title += data
        if "h1" in self._in:
            self.h1 += data


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("docs browser check: no chromium (apt-get install chromium; scripts/install.sh does)")


def browse(url: str, screenshot: Path) -> Page:
    common = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--no-first-run", "--disable-extensions", "--window-size=1280,1600"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    if dom.returncode != 0 or not dom.stdout.strip():
        raise RuntimeError(f"chromium could not render {url}: {dom.stderr[-2000:]}")
    shot = subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True,
                          text=True, timeout=120)
    if shot.returncode != 0 or not screenshot.exists():
        raise RuntimeError(f"chromium could not photograph {url}: {shot.stderr[-2000:]}")
    page = Page()
    page.feed(dom.stdout)
    return page


def blank(png: Path) -> bool:
    """True if the screenshot is one colour (a page that did not paint)."""
    try:
        from PIL import Image
    except ImportError:
        return png.stat().st_size < 10_000
    with Image.open(png) as im:
        colours = im.convert("RGB").getcolors(maxcolors=64)
    return colours is not None and len(colours) < 4


def main(argv: list[str]) -> int:
    html, shots = Path(argv[0]).resolve(), Path(argv[1])
    shots.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    pages = {}
    for name, heading in PAGES.items():
        png = shots / (name.replace("/", "_").removesuffix(".html") + ".png")
        page = pages[name] = browse((html / name).as_uri(), png)
        if "cellfeed" not in page.title:
            failures.append(f"{name}: title {page.title!r} does not name cellfeed")
        if not page.h1.strip().startswith(heading):
            failures.append(f"{name}: heading {page.h1.strip()!r}, expected {heading!r}")
        if blank(png):
            failures.append(f"{name}: the screenshot {png} is blank")

    for name in ("index.html", "quickstart.html", "tutorials/pretrain.html"):
        if len(pages[name].code_blocks) < 2:
            failures.append(f"{name}: {len(pages[name].code_blocks)} code blocks, expected at least 2")
    if not any("def main" in b for b in pages["tutorials/pretrain.html"].code_blocks):
        failures.append("tutorials/pretrain.html: the example's code is not shown")

    api = pages["api.html"]
    entries = []  # the anchors autodoc gives each public object
    for qual, obj, _, _ in doccheck.public_objects():
        if isinstance(obj, types.ModuleType):
            if qual != "cellfeed":  # the package itself is this page
                entries.append(f"module-{qual}")
        else:
            entries.append(qual)
    missing = [e for e in entries if e not in api.ids]
    if missing:
        failures.append(f"api.html: no entry for {', '.join(missing)}")

    cli = pages["cli_reference.html"]
    for command, _ in cli_help.subcommands(cli_help.help_text([])):
        shown = [b for b in cli.code_blocks if b.startswith(f"$ cellfeed {command} --help\n")]
        if not shown or len(shown[0].splitlines()) < 3:
            failures.append(f"cli_reference.html: no help shown for `cellfeed {command}`")

    if pages["BENCHMARKS.html"].tables < 2:
        failures.append("BENCHMARKS.html: the current figures' tables are missing")

    for f in failures:
        print(f"docs browser check: {f}")
    n_api = len(entries)
    print(f"docs browser check: {len(PAGES)} pages rendered in Chromium, {n_api} API entries, "
          f"screenshots in {shots}: {'FAILED' if failures else 'OK'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
