"""The `cellfeed` command's own --help texts (for the CLI reference page and its test)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path


def cellfeed_program() -> str:
    """The `cellfeed` command beside the running Python (its venv), else PATH's."""
    beside = Path(sys.executable).parent / "cellfeed"
    if beside.exists():
        return str(beside)
    found = shutil.which("cellfeed")
    if found is None:
        raise RuntimeError("the `cellfeed` command is not installed (bash scripts/install.sh)")
    return found


def help_text(args: list[str]) -> str:
    """`cellfeed ARGS --help`, which must succeed."""
    run = subprocess.run([cellfeed_program(), *args, "--help"], capture_output=True, text=True,
                         timeout=120)
    if run.returncode != 0:
        raise RuntimeError(f"cellfeed {' '.join(args)} --help exited {run.returncode}: {run.stderr}")
    return run.stdout.rstrip()


def subcommands(top_help: str) -> list[tuple[str, str]]:
    """(command, one-line description) from the `Subcommands:` part of `cellfeed --help`."""
    out, inside = [], False
    for line in top_help.splitlines():
        if line.strip() == "Subcommands:":
            inside = True
            continue
        if inside:
            m = re.match(r"^\s{2}(\S+)\s*(.*)$", line)
            if not m:
                if line.strip():
                    break
                continue
            out.append((m.group(1), m.group(2).strip()))
    return out


def reference_markdown() -> str:
    """The CLI reference: `cellfeed --help`, then each command's --help, as Markdown."""
    top = help_text([])
    parts = ["```text", "$ cellfeed --help", top, "```", ""]
    for name, summary in subcommands(top):
        parts += [f"## `cellfeed {name}`", "", summary[:1].upper() + summary[1:] + ".", "",
                  "```text", f"$ cellfeed {name} --help", help_text([name]), "```", ""]
    return "\n".join(parts)
