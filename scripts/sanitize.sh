#!/usr/bin/env bash
# The C++ tests under ASan+UBSan and under TSan (CMake presets "asan" and "tsan").
# Usage: scripts/sanitize.sh [asan|tsan|all]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
for preset in asan tsan; do
  if [ "$which" != all ] && [ "$which" != "$preset" ]; then continue; fi
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j"$(nproc)"
  ctest --preset "$preset" -j"$(nproc)"
done
