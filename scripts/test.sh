#!/usr/bin/env bash
# Runs every test: installs what is missing, builds and runs the C++ tests (ctest), then
# again under ASan+UBSan and TSan, then the Python tests (pytest) against the installed package,
# the documentation site and the self-contained wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCELLFEED_BUILD_TESTS=ON >/dev/null
cmake --build build/test -j"$(nproc)"
ctest --test-dir build/test --output-on-failure -j"$(nproc)"
# The same C++ tests under ASan+UBSan and under TSan (~3 min on 2 cores).
bash scripts/sanitize.sh all

python3 -m pytest tests/python -q -p no:cacheprovider --durations=30

# The documentation site, built with warnings as errors (an undocumented public name or a
# broken reference fails it), then its main pages rendered and checked in headless
# Chromium (~1-3 min). Its summary lines: "build succeeded." and "docs browser check: ... OK".
bash scripts/docs.sh

# The self-contained wheel (docs/development.md, "Building a self-contained wheel"): built in the build
# folder install.sh used, so it only packages and repairs (~20 s), then installed into a
# clean venv and smoke-tested there (~30 s). Its last line: "wheel smoke: OK (TAG, ...)".
bash scripts/build_wheel.sh
bash scripts/wheel_smoke.sh
