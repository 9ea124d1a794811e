#!/usr/bin/env bash
# Smoke test of the self-contained wheel (scripts/build_wheel.sh): installs it into a fresh
# venv (no system site-packages) with only its dependencies from PyPI (numpy, scipy,
# pandas), checks with ldd that its extension and programs load libhdf5 and the codec
# libraries from the wheel's cellfeed.libs/ and need nothing else outside the manylinux
# policy (tests/wheel/check_ldd.py), then reads stores written by the system Python's
# anndata from that venv (tests/wheel/smoke.py): the extension with libhdf5 isolation on,
# so the bundled cellfeed-probe runs, a Loader epoch, `cellfeed inspect` and `cellfeed corpus`.
# That run has an empty environment (env -i) and, where a mount namespace can be made
# (root, unshare), the system's copies of the bundled libraries replaced by empty files,
# as on a machine without them (all but those the interpreter maps itself: libcrypto, libffi).
# usage: scripts/wheel_smoke.sh [WHEEL]      (default: the one in dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
wheel="${1:-$(ls dist/cellfeed-*-manylinux_*.whl)}"
wheel=$(realpath "$wheel")
tag=$(basename "$wheel" .whl | rev | cut -d- -f1 | rev)   # manylinux_2_35_x86_64
policy=${tag%_x86_64}
policy_json=$(build/wheel-tools/bin/python -c 'import auditwheel, os; print(os.path.join(os.path.dirname(auditwheel.__file__), "policy", "manylinux-policy.json"))')
WORK=$ROOT/build/wheel-smoke
rm -rf "$WORK"
mkdir -p "$WORK/home"

python3 tests/wheel/make_fixture.py "$WORK/fixtures"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "$wheel"
site=$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("platlib"))')

echo "== ldd ($policy policy)"
python3 tests/wheel/check_ldd.py "$site" "$policy_json" "$policy"

# The system files to hide: those of every bundled library (auditwheel names its copy
# NAME-HASH.so...), except what the interpreter with numpy/scipy/pandas maps itself.
in_use=$(env -i "$WORK/venv/bin/python" -c 'import numpy, scipy.sparse, pandas; print(open("/proc/self/maps").read())' | awk '{print $6}' | grep '^/' | sort -u)
hide=()
for lib in "$site"/cellfeed.libs/*; do
  base=$(basename "$lib" | sed -E 's/^([^.]*)-[0-9a-f]{8}\./\1./; s/\.so.*$/.so/')
  for f in /usr/lib/x86_64-linux-gnu/"$base"* /lib/x86_64-linux-gnu/"$base"*; do
    [ -e "$f" ] || continue
    real=$(realpath "$f")
    grep -qxF "$real" <<<"$in_use" || hide+=("$real")
  done
done
mapfile -t hide < <(printf '%s\n' "${hide[@]}" | sort -u)

cat > "$WORK/run.sh" <<RUN
set -euo pipefail
for f in "\$@"; do mount --bind /dev/null "\$f"; done
if [ \$# -gt 0 ] && python3 -c 'import ctypes; ctypes.CDLL("libhdf5_serial.so.103")' 2>/dev/null; then
  echo "wheel smoke: FAIL: the system libhdf5 still loads after hiding it" >&2; exit 1
fi
cd "$WORK/fixtures"
exec env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 \
  "$WORK/venv/bin/python" "$ROOT/tests/wheel/smoke.py" "$WORK/fixtures" "$site" "$WORK/venv/bin"
RUN
touch "$WORK/home/mount-test"
if unshare -m --propagation private mount --bind /dev/null "$WORK/home/mount-test" 2>/dev/null; then
  echo "== run (env -i; ${#hide[@]} system library files hidden in a mount namespace)"
  unshare -m --propagation private bash "$WORK/run.sh" "${hide[@]}"
  hidden="${#hide[@]} system library files hidden"
else
  echo "== run (env -i; no mount namespace here: the system libraries stay visible, ldd above shows they are not used)"
  bash "$WORK/run.sh"
  hidden="system libraries not hidden"
fi
nlibs=$(ls "$site/cellfeed.libs" | wc -l)
echo "wheel smoke: OK ($tag, $nlibs libraries bundled, $(du -k "$wheel" | cut -f1) KiB; $hidden)"
