#!/usr/bin/env bash
# The front door's per-request costs in-process (bench/inproc/front_bench.c): admission
# and user token verification and the proof-of-work check against OpenSSL's one-shot
# HMAC(), and the rate-limit check against the clock read alone, in one run. Targets:
# token verification <= 1 us, rate-limit check <= 0.2 us. Prints; asserts nothing.
# Usage: bench/front.sh [operations per measurement]
set -euo pipefail
cd "$(dirname "$0")/.."
ops=${1:-2000000}
[ -x build/seckill-front-bench ] || make build >/dev/null
# Times are per-thread CPU time, so the two threads of the shared-table line may share a
# core or not; the rest runs on one thread.
exec build/seckill-front-bench --ops "$ops"
