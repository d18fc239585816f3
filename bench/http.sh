#!/usr/bin/env bash
# The HTTP core against nginx `return 200`, both pinned to CPU 1 with wrk on CPU 0:
# requests/s, p99 and server CPU per million requests, without and with 16-deep
# pipelining; then the ratios. Usage: bench/http.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10}
command -v wrk >/dev/null && command -v nginx >/dev/null || scripts/deps.sh test
[ -x build/seckill ] || make build >/dev/null
tmp=$(mktemp -d)
trap 'kill $NGINX_PID $SK_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

np=$(bench_free_port); sp=$(bench_free_port)
bench_start_nginx "$tmp/nginx" "$np" 1
taskset -c 1 build/seckill serve --listen "127.0.0.1:$sp" --threads 1 --data "$tmp/data" --log-level warn >/dev/null &
SK_PID=$!
bench_wait_port "$sp"

echo "== wrk -t1 -c100 -d${secs}s, server on CPU 1, wrk on CPU 0"
bench_wrk "nginx return 200" "$NGINX_PID" 0 -t1 -c100 -d"${secs}s" --latency "http://127.0.0.1:$np/healthz"
n_rps=$RPS n_cpu=$CPU_PER_M n_p99=$P99
bench_wrk "seckill /healthz" "$SK_PID" 0 -t1 -c100 -d"${secs}s" --latency "http://127.0.0.1:$sp/healthz"
s_rps=$RPS s_cpu=$CPU_PER_M s_p99=$P99
echo "== the same with 16-deep pipelining"
bench_wrk "nginx return 200 (pipe 16)" "$NGINX_PID" 0 -t1 -c100 -d"${secs}s" --latency -s bench/pipeline.lua "http://127.0.0.1:$np/healthz" -- 16 /healthz
np_rps=$RPS
bench_wrk "seckill /healthz (pipe 16)" "$SK_PID" 0 -t1 -c100 -d"${secs}s" --latency -s bench/pipeline.lua "http://127.0.0.1:$sp/healthz" -- 16 /healthz
sp_rps=$RPS
echo "== ratios (seckill / nginx)"
echo "req/s:                  $(bench_ratio "$s_rps" "$n_rps")x   (target >= 1.0)"
echo "server CPU per request: $(bench_ratio "$s_cpu" "$n_cpu")x   (target <= 1.0)"
echo "req/s pipelined:        $(bench_ratio "$sp_rps" "$np_rps")x   (target >= 5.0)"
