"""Rewrites the launchers auditwheel puts in a repaired wheel's .data/scripts/.

auditwheel moves the wheel's native programs (`cellfeed`, `cellfeed-probe`) into
site-packages/cellfeed.scripts/, where their RPATH can reach cellfeed.libs/, and leaves in
scripts/ a small Python launcher that execs them. Its launcher finds them under
sysconfig's platlib, which is wrong for `pip install --target` or `--user`, and the
`cellfeed` program, no longer beside the venv's python3, would then forward
`cellfeed corpus` to whatever python3 is on PATH. These launchers find the package through
the import system (without importing it) and pass the interpreter on as CELLFEED_PYTHON.

usage: python wheel_launchers.py WHEEL   (rewritten in place, RECORD updated)
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import tempfile
import zipfile

LAUNCHER = '''#!python
# Launcher of the native program {name} (written by cellfeed's scripts/wheel_launchers.py).
import os
import sys
from importlib.util import find_spec

if __name__ == "__main__":
    spec = find_spec("cellfeed")  # locates the package without importing it
    site = os.path.dirname(os.path.dirname(spec.origin))
    exe = os.path.join(site, "cellfeed.scripts", "{name}")
    os.environ.setdefault("CELLFEED_PYTHON", sys.executable)  # `cellfeed corpus` runs this Python
    os.execv(exe, sys.argv)
'''

SCRIPT = re.compile(r"^[^/]+\.data/scripts/([^/]+)$")


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as z:
        infos = z.infolist()
        data = {i.filename: z.read(i) for i in infos}
    names = set(data)
    changed = {}
    for name in names:
        m = SCRIPT.match(name)
        if m and f"cellfeed.scripts/{m.group(1)}" in names:
            changed[name] = LAUNCHER.format(name=m.group(1)).encode()
    if not changed:
        print(f"{wheel}: no launchers of cellfeed.scripts/ programs found", file=sys.stderr)
        return 1
    record = next(n for n in names if n.endswith(".dist-info/RECORD"))
    lines = []
    for line in data[record].decode().splitlines():
        path = line.rsplit(",", 2)[0]
        lines.append(record_line(path, changed[path]) if path in changed else line)
    data.update(changed)
    data[record] = ("\n".join(lines) + "\n").encode()
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(wheel)), suffix=".whl")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in infos:  # same order, modes and dates; RECORD stays last
            out.writestr(info, data[info.filename], compress_type=zipfile.ZIP_DEFLATED)
    os.replace(tmp, wheel)
    print(f"launchers rewritten: {', '.join(sorted(changed))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
