#!/usr/bin/env bash
# Client efficiency: wrk and seckill-bench against the same nginx `return 200`, nginx on
# CPU 0 and each client in turn pinned to CPU 1, with the same connections; prints
# requests/s and requests per client CPU second for both, and the ratio
# (goal: seckill-bench / wrk >= 1). Once plain, once with 16-deep pipelining.
# Usage: bench/client.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10} conns=${2:-100}
command -v wrk >/dev/null && command -v nginx >/dev/null || scripts/deps.sh test
[ -x build/seckill-bench ] || make build >/dev/null
tmp=$(mktemp -d)
NGINX_PID=
trap '[ -n "$NGINX_PID" ] && kill $NGINX_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
port=$(bench_free_port)
bench_start_nginx "$tmp/nginx" "$port" 0
url="http://127.0.0.1:$port"

# Runs a command (output to $tmp/out) and prints the "user sys" CPU seconds it used.
cpu_of() {
  local TIMEFORMAT='%U %S'
  { time "$@" >"$tmp/out" 2>&1; } 2>"$tmp/time"
  cat "$tmp/time"
}

# Prints the two result lines and the ratio for one mode. Args: label depth
compare() {
  local label=$1 depth=$2 wrk_args=() t n w_rps w_cpu s_rps s_cpu
  [ "$depth" -gt 1 ] && wrk_args=(-s bench/pipeline.lua)
  t=$(cpu_of taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "${wrk_args[@]}" "$url/" ${wrk_args:+-- "$depth" /})
  n=$(awk '/requests in/ {print $1}' "$tmp/out")
  w_rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/out")
  w_cpu=$(echo "$t" | awk '{print $1 + $2}')
  t=$(cpu_of taskset -c 1 build/seckill-bench "$url" --get / -c "$conns" --pipeline "$depth" \
    --duration "${secs}s" --no-audit -q --json "$tmp/sb.json")
  s_cpu=$(echo "$t" | awk '{print $1 + $2}')
  read -r s_n s_rps < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["counts"]["ok"], round(r["answers_per_s"]))' "$tmp/sb.json")
  local w_eff s_eff
  w_eff=$(awk -v n="$n" -v c="$w_cpu" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')
  s_eff=$(awk -v n="$s_n" -v c="$s_cpu" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')
  printf '%-24s %10s req/s  %6.2f CPU s  %10s req per client CPU s\n' "wrk $label" "$w_rps" "$w_cpu" "$w_eff"
  printf '%-24s %10s req/s  %6.2f CPU s  %10s req per client CPU s\n' "seckill-bench $label" "$s_rps" "$s_cpu" "$s_eff"
  echo "ratio seckill-bench / wrk ($label): req/s $(bench_ratio "$s_rps" "$w_rps")x, per CPU second $(bench_ratio "$s_eff" "$w_eff")x (goal >= 1)"
}

echo "== nginx return 200 on CPU 0; clients on CPU 1, one thread, $conns connections, ${secs}s each"
compare "plain" 1
compare "pipeline 16" 16
