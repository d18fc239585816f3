#!/usr/bin/env bash
# The sold-out answer while reservations are pending vs the plain sold-out path, through
# HTTP, in one run: the same wrk script (bench/purchase.lua: every request a new buyer)
# against two sales of one server, server on CPU 1, wrk on CPU 0:
#  - plain:   its one unit bought for good (no payment window);
#  - pending: its one unit reserved and waiting for payment (an hour's window), so
#             units may still come back and the holder's retries must still be answered
#             duplicate; every other buyer is answered sold_out by the worker.
# Prints req/s and server CPU per request of each, and the ratio (target >= 0.95x); then
# checks by hand, asserting nothing, that the holder's retry still gets its order back.
# Usage: bench/pending.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10}
command -v wrk >/dev/null || scripts/deps.sh test
[ -x build/seckill ] || make build >/dev/null
tmp=$(mktemp -d)
SK_PID=''
trap '[ -n "$SK_PID" ] && kill $SK_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

sp=$(bench_free_port)
taskset -c 1 build/seckill serve --listen "127.0.0.1:$sp" --threads 1 --data "$tmp/data" --log-level warn \
  >"$tmp/server.log" 2>&1 &
SK_PID=$!
bench_wait_port "$sp"
base="http://127.0.0.1:$sp"
json=(-H 'Content-Type: application/json')
buy_first() { # SALE: the holder's purchase (and, later, its retry); prints status and result
  curl -sS -o "$tmp/answer" -w '%{http_code}' -X POST "${json[@]}" "$base/api/v1/sales/$1/purchase" \
    -d '{"user_id":"first","request_id":"r"}'
  printf ' %s\n' "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("result"))' "$tmp/answer")"
}
now=$(date +%s%3N)
for sale in plain pending; do
  window=0
  [ "$sale" = pending ] && window=3600000
  curl -fsS -o /dev/null -X POST "${json[@]}" "$base/api/v1/sales" \
    -d "{\"id\":\"$sale\",\"stock\":1,\"starts_at\":$((now - 1000)),\"ends_at\":$((now + 86400000)),\"payment_window_ms\":$window}"
  echo "$sale: the one unit bought: $(buy_first "$sale")"
done
state() {
  curl -fsS "$base/api/v1/sales/$1" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["state"], "held", s["held"], "sold", s["sold"])'
}
echo "plain:   $(state plain)"
echo "pending: $(state pending)"

echo "== wrk -t1 -c100 -d${secs}s, every request a new buyer, server on CPU 1, wrk on CPU 0"
bench_wrk "sold out, plain" "$SK_PID" 0 -t1 -c100 -d"${secs}s" --latency -s bench/purchase.lua "$base" -- plain
p_rps=$RPS p_cpu=$CPU_PER_M
echo "  answers by status: $ANSWERS"
bench_wrk "sold out, pending" "$SK_PID" 0 -t1 -c100 -d"${secs}s" --latency -s bench/purchase.lua "$base" -- pending
h_rps=$RPS h_cpu=$CPU_PER_M
echo "  answers by status: $ANSWERS"
echo "pending: $(state pending) (still reserved: nothing came back during the run)"
echo "pending: the holder's retry: $(buy_first pending) (expected: 200 duplicate)"
echo "== ratios (pending / plain)"
echo "req/s:                  $(bench_ratio "$h_rps" "$p_rps")x   (target >= 0.95)"
echo "server CPU per request: $(bench_ratio "$h_cpu" "$p_cpu")x   (lower is better; 1.0 is the same cost)"
