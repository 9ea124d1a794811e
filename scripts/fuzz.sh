#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang -fsanitize=fuzzer,address,undefined and
# runs each for a bounded time from its seed corpus, then triages what they found.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 60 s; decode h5ad h5ad_struct)
#
# Targets: decode (chunk decoders + FilterPipeline::Decode), h5ad (arbitrary bytes opened
# as an .h5ad and read), h5ad_struct (fuzz-driven writer of valid-HDF5, odd-AnnData files).
# Environment: FUZZ_JOBS (parallel fuzzing processes per target, default 1), FUZZ_BUILD
# (build dir, default build/fuzz), FUZZ_WORK (work dir, default build/fuzz-work).
#
# Fuzzing runs in libFuzzer's fork mode, so it goes on after a crash: every crash, timeout
# or out-of-memory input is saved in $FUZZ_WORK/<target>/ and then replayed to see where
# it happened. Those whose first non-runtime stack frame is inside libhdf5 (its parser
# on a corrupt file: not cellfeed's code to fix) are moved to $FUZZ_WORK/<target>/libhdf5/
# and counted; any other is cellfeed's: fix it, then copy the input into
# fuzz/regressions/<target>/ (ctest replays those: fuzz_replay_<target>).
# Exit status: 0 when no input crashed in cellfeed's code, 1 otherwise, 2 without clang.
# Needs clang and libFuzzer (Debian bookworm: apt-get install clang libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decode h5ad h5ad_struct)
build="${FUZZ_BUILD:-build/fuzz}"
work="${FUZZ_WORK:-build/fuzz-work}"
jobs="${FUZZ_JOBS:-1}"

CC="${CC:-clang}"
CXX="${CXX:-clang++}"
if ! command -v "$CXX" >/dev/null; then
  echo "fuzz.sh: $CXX not found (install clang and libclang-rt-14-dev)" >&2
  exit 2
fi
CC="$CC" CXX="$CXX" cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCELLFEED_BUILD_FUZZERS=ON -DCELLFEED_SANITIZE=address -DCELLFEED_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null

# UBSan findings are errors. libhdf5 is not instrumented: leak reports would be its own.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
export HDF5_USE_FILE_LOCKING=FALSE

# Where an input crashed: "libhdf5" or "cellfeed" (the first stack frame outside the
# sanitizer/fuzzer runtime, libc and libstdc++).
where_crashed() {
  local frames first
  # A malloc limit below the RSS limit: an oversized allocation is then reported with the
  # stack that made it (the RSS watchdog prints none).
  frames=$("$1" -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=2048 "$2" 2>&1 | grep -E '^ +#[0-9]+ ' || true)
  first=$(grep -vE 'fuzzer::|__sanitizer|__asan|__interceptor_|__ubsan|asan_|__lsan| in (malloc|calloc|realloc|free|memcpy|memmove|memset|strlen|operator new.*)( |$)|libc\.so|sysdeps/|__mem(cpy|move|set|cmp)_|libstdc\+\+|libpthread|libgcc|AlarmCallback|StaticAlarm|restore_rt|gsignal|raise |abort |_start|libc_start' <<<"$frames" | head -1 || true)
  case "$first" in
    *libhdf5*) echo libhdf5 ;;
    *) echo cellfeed ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  dir="$work/$t"
  mkdir -p "$dir/corpus" "$dir/libhdf5"
  log="$dir/fuzz.log"
  echo "== fuzz_$t: ${seconds}s, $jobs job(s); log: $log"
  set +e
  "$build/fuzz_$t" "$dir/corpus" "fuzz/corpus/$t" \
    -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$dir/" >"$log" 2>&1
  set -e
  grep -E '^#[0-9]+: cov' "$log" | tail -1 || true
  ours=0 theirs=0
  for a in "$dir"/crash-* "$dir"/timeout-* "$dir"/oom-* "$dir"/leak-*; do
    [ -e "$a" ] || continue
    if [ "$(where_crashed "$build/fuzz_$t" "$a")" = libhdf5 ]; then
      mv "$a" "$dir/libhdf5/"
      theirs=$((theirs + 1))
    else
      echo "   IN CELLFEED: $a  (replay: $build/fuzz_$t $a)"
      ours=$((ours + 1))
    fi
  done
  execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  echo "fuzz_$t: ${execs:-0} executions; $ours input(s) crashing in cellfeed;" \
       "$theirs inside libhdf5 (kept in $dir/libhdf5)"
  [ "$ours" -eq 0 ] || status=1
done
exit $status
