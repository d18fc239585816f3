#!/usr/bin/env bash
# Runs every test: a -Werror build with gcc runs the unit tests, the long cluster floods
# (label `long`) and the browser tests; an AddressSanitizer + UndefinedBehaviorSanitizer
# build with clang runs the unit tests again, every other integration test, and the
# fuzzers; then the tests whose threads share memory run once more under
# ThreadSanitizer. Each integration test runs once, where it tells the most: the C paths
# under the sanitizers, the long floods and the browser at full speed.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1

echo "== format (.clang-format; make format fixes it)"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror

echo "== build (gcc, -Werror)"
cmake -S . -B build -DSK_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
command -v clang >/dev/null 2>&1 || { echo "clang not found: sanitizer and fuzz run skipped" >&2; exit 1; }

# The engine, user set, embedded ledger and loop unit tests (threads of their own), the
# rate-limit table shared by threads, and the integration tests of a server with several
# workers and a ledger thread (embedded and Redis, the order lifecycle, the operator's
# controls, the front door's shared tables and deny-list hand-over), of the SQLite
# journal's checkpoint thread, and of seckill-bench's client threads (with the controls'
# crowd; the auditor's own floods run under ASan).
tsan_bins=(seckill seckill-bench test_engine test_engine_userset test_loop test_backend_journal_sqlite
  test_backend_embedded test_util_ratelimit)
tsan_tests='unit/test_(engine|engine_userset|loop|backend_journal_sqlite|backend_embedded|util_ratelimit)$|integration/test_(engine_[a-z]+|sse|http|bench_controls|cluster_node|lifecycle|controls|front_door)$'

# The sanitizer builds run beside the first tests, which mostly wait on real servers and
# a browser: the ASan build first, then the ThreadSanitizer one (needed only after the
# ASan tests, so it may go on beside those). Their output is shown after the first tests.
echo "== build (clang, ASan+UBSan, fuzzers; then ThreadSanitizer), beside the first tests"
CC=clang cmake -S . -B build-asan -DSK_WERROR=ON -DSK_SANITIZE=ON -DSK_FUZZ=ON \
  -DSK_FUZZ_SECONDS="${SK_FUZZ_SECONDS:-12}" >/dev/null
CC=clang cmake -S . -B build-tsan -DSK_WERROR=ON -DSK_TSAN=ON >/dev/null
asan_log=$(mktemp)
tsan_log=$(mktemp)
asan_rc=$(mktemp)
(
  rc=0
  cmake --build build-asan -j "$jobs" >"$asan_log" 2>&1 || rc=$?
  echo "$rc" >"$asan_rc"
  [ "$rc" -eq 0 ] && cmake --build build-tsan -j "$jobs" --target "${tsan_bins[@]}" >"$tsan_log" 2>&1
) &
sanitizer_builds=$!

echo "== tests (unit, long floods, browser)"
rc=0
(cd build && ctest -j "$jobs" --timeout 600 -L 'unit|long|browser|perf') || rc=$?
# The ASan build's status is written as soon as it ends; the TSan build may go on.
while [ ! -s "$asan_rc" ] && kill -0 "$sanitizer_builds" 2>/dev/null; do sleep 1; done
arc=$(cat "$asan_rc")
arc=${arc:-1}
tail -n 20 "$asan_log"
if [ "$arc" -ne 0 ]; then
  cat "$asan_log"
  echo "the ASan+UBSan build failed" >&2
fi
rm -f "$asan_log" "$asan_rc"
if [ "$rc" -ne 0 ] || [ "$arc" -ne 0 ]; then
  wait "$sanitizer_builds" || true
  rm -f "$tsan_log"
  exit 1
fi

echo "== tests under ASan+UBSan (unit, integration, fuzz)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest -j "$jobs" --timeout 900 -LE 'browser|perf|long')

echo "== build (clang, ThreadSanitizer), begun beside the first tests"
trc=0
wait "$sanitizer_builds" || trc=$?
tail -n 5 "$tsan_log"
if [ "$trc" -ne 0 ]; then
  cat "$tsan_log"
  echo "the ThreadSanitizer build failed" >&2
fi
rm -f "$tsan_log"
[ "$trc" -eq 0 ] || exit 1
echo "== threaded tests under TSan"
# The first report stops the process, so a race fails the test that met it.
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
(cd build-tsan && ctest -j "$jobs" --timeout 900 -R "$tsan_tests")
