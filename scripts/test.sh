#!/usr/bin/env bash
# Runs the whole suite twice: a -Werror build with gcc, then an AddressSanitizer +
# UndefinedBehaviorSanitizer build with clang (which also builds and runs the fuzzers).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1

echo "== format (.clang-format; make format fixes it)"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror

echo "== build (gcc, -Werror)"
cmake -S . -B build -DSK_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
echo "== tests"
(cd build && ctest -j "$jobs" --timeout 600)

if command -v clang >/dev/null 2>&1; then
  echo "== build (clang, ASan+UBSan, fuzzers)"
  CC=clang cmake -S . -B build-asan -DSK_WERROR=ON -DSK_SANITIZE=ON -DSK_FUZZ=ON \
    -DSK_FUZZ_SECONDS="${SK_FUZZ_SECONDS:-30}" >/dev/null
  cmake --build build-asan -j "$jobs"
  echo "== tests under ASan+UBSan"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest -j "$jobs" --timeout 900 -LE 'browser|perf')
else
  echo "clang not found: sanitizer and fuzz run skipped" >&2
  exit 1
fi
