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

# The sanitizer build runs beside the first tests, which mostly wait on real servers and
# a browser; its output is shown after them.
echo "== build (clang, ASan+UBSan, fuzzers), beside the first tests"
CC=clang cmake -S . -B build-asan -DSK_WERROR=ON -DSK_SANITIZE=ON -DSK_FUZZ=ON \
  -DSK_FUZZ_SECONDS="${SK_FUZZ_SECONDS:-20}" >/dev/null
asan_log=$(mktemp)
cmake --build build-asan -j "$jobs" >"$asan_log" 2>&1 &
asan_pid=$!

echo "== tests (unit, long floods, browser)"
rc=0
(cd build && ctest -j "$jobs" --timeout 600 -L 'unit|long|browser|perf') || rc=$?
arc=0
wait "$asan_pid" || arc=$?
tail -n 20 "$asan_log"
if [ "$arc" -ne 0 ]; then
  cat "$asan_log"
  echo "the ASan+UBSan build failed" >&2
fi
rm -f "$asan_log"
[ "$rc" -eq 0 ] && [ "$arc" -eq 0 ] || exit 1

echo "== tests under ASan+UBSan (unit, integration, fuzz)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest -j "$jobs" --timeout 900 -LE 'browser|perf|long')

# The engine, user set, embedded ledger and loop unit tests (threads of their own), the
# rate-limit table shared by threads, and the integration tests of a server with several
# workers and a ledger thread (embedded and Redis, the order lifecycle, the operator's
# controls, the front door's shared tables and deny-list hand-over), of the SQLite
# journal's checkpoint thread, and of seckill-bench's client threads (with the controls'
# crowd; the auditor's own floods run under ASan).
tsan_bins=(seckill seckill-bench test_engine test_engine_userset test_loop test_backend_journal_sqlite
  test_backend_embedded test_util_ratelimit)
tsan_tests='unit/test_(engine|engine_userset|loop|backend_journal_sqlite|backend_embedded|util_ratelimit)$|integration/test_(engine_[a-z]+|sse|http|bench_controls|cluster_node|lifecycle|controls|front_door)$'
echo "== build (clang, ThreadSanitizer)"
CC=clang cmake -S . -B build-tsan -DSK_WERROR=ON -DSK_TSAN=ON >/dev/null
cmake --build build-tsan -j "$jobs" --target "${tsan_bins[@]}"
echo "== threaded tests under TSan"
# The first report stops the process, so a race fails the test that met it.
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
(cd build-tsan && ctest -j "$jobs" --timeout 900 -R "$tsan_tests")
