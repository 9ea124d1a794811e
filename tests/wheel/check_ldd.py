"""Checks, with ldd, that the native files of an installed cellfeed wheel need nothing
outside the manylinux policy: every library they load resolves either to the wheel's
cellfeed.libs/ or is one the policy lets a wheel take from the system (glibc, libstdc++,
libgcc_s, libz, ...). libhdf5 and the codec libraries must come from cellfeed.libs/ even
though the system copies sit in the default search path.

usage: python check_ldd.py SITE_PACKAGES POLICY_JSON POLICY_NAME
(POLICY_JSON: auditwheel's manylinux-policy.json; POLICY_NAME: e.g. manylinux_2_35)
"""

import json
import re
import subprocess
import sys
from pathlib import Path

# What the wheel must bundle: libhdf5 and the libraries it and the decoders link.
MUST_BUNDLE = ["libhdf5", "libdeflate", "liblzf", "libblosc", "libzstd", "liblz4", "libsz", "libaec"]
LINE = re.compile(r"^\s*(\S+)\s+=>\s+(.*?)\s*(\(0x[0-9a-f]+\))?$")


def is_elf(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(4) == b"\x7fELF"


def ldd(p: Path) -> dict:
    out = subprocess.run(["ldd", str(p)], capture_output=True, text=True, check=True).stdout
    deps = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            deps[m.group(1)] = m.group(2)
    return deps


def main(site: Path, policy_json: Path, policy_name: str) -> int:
    policy = next(p for p in json.loads(policy_json.read_text()) if p["name"] == policy_name)
    allowed = set(policy["lib_whitelist"])
    libs = (site / "cellfeed.libs").resolve()
    files = [p for d in ("cellfeed", "cellfeed.scripts") if (site / d).is_dir()
             for p in sorted((site / d).iterdir()) if p.is_file() and is_elf(p)]
    names = {p.name for p in files}
    if not any(n.startswith("_cellfeed") for n in names) or "cellfeed-probe" not in names \
            or "cellfeed" not in names:
        bad = [f"expected the extension, cellfeed-probe and cellfeed, found {sorted(names)}"]
    else:
        bad = []
    for p in files:
        deps = ldd(p)
        bundled, system = [], []
        for name, where in deps.items():
            if where == "not found":
                bad.append(f"{p.name}: {name} not found")
            elif Path(where).resolve().parent == libs:
                bundled.append(name)
            elif name in allowed:
                system.append(f"{name} ({where})")
            else:
                bad.append(f"{p.name}: {name} resolves to {where}, outside the wheel and not in {policy_name}")
        if p.name.startswith("_cellfeed") or p.name == "cellfeed":
            need = MUST_BUNDLE
        else:
            need = ["libhdf5"]
        for lib in need:
            if not any(b.startswith(lib) for b in bundled):
                bad.append(f"{p.name}: {lib} is not loaded from {libs}")
        print(f"{p.relative_to(site)}: {len(bundled)} from cellfeed.libs, system: {', '.join(sorted(system))}")
    for b in bad:
        print(f"check_ldd: FAIL: {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
