#!/usr/bin/env bash
# The sale engine, embedded (SQLite group commit), measured as ratios in one run:
#  1. in-process: durable purchase decisions per second (seckill-engine-bench), with the
#     batch size and commit latency p50/p99;
#  2. through HTTP, wrk -t1 -c100 (CONNS) on CPU 0, servers on CPU 1:
#     - the sold-out path's req/s vs nginx `return 200` (target >= 1.0x), and its server
#       CPU per request;
#     - the purchase path's confirmed orders/s (bench/purchase.lua: every request a new
#       user) vs the sold-out path driven by the same wrk script (target >= 0.9x), with
#       the ledger's batch size and commit latency from /metrics over that run, the
#       server's CPU per confirmed order by thread, and what one sync costs on this disk
#       with the server idle (seckill-sync-probe) spread over that batch.
# Usage: bench/engine.sh [seconds]; CONNS=N sets wrk's connections (default 100: a small
# crowd, for which the durable path is bound by the sync's latency rather than by CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10}
conns=${CONNS:-100}
command -v wrk >/dev/null && command -v nginx >/dev/null || scripts/deps.sh test
[ -x build/seckill ] && [ -x build/seckill-engine-bench ] && [ -x build/seckill-sync-probe ] || make build >/dev/null
tmp=$(mktemp -d)
NGINX_PID='' SK_PID=''
trap 'kill $NGINX_PID $SK_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

echo "== in-process engine: ${secs}s of purchases by distinct users, SQLite journal in a temp dir"
engine_out=$(build/seckill-engine-bench --seconds "$secs" --dir "$tmp/engine")
echo "$engine_out"
engine_rate=$(echo "$engine_out" | awk '/^decisions\/s/ {print $2}')
rm -rf "$tmp/engine"

np=$(bench_free_port); sp=$(bench_free_port)
bench_start_nginx "$tmp/nginx" "$np" 1
taskset -c 1 build/seckill serve --listen "127.0.0.1:$sp" --threads 1 --data "$tmp/data" --log-level warn >/dev/null &
SK_PID=$!
bench_wait_port "$sp"
base="http://127.0.0.1:$sp"
now=$(($(date +%s%3N)))
curl -fsS -o /dev/null -X POST "$base/api/v1/sales" -H 'Content-Type: application/json' \
  -d "{\"id\":\"gone\",\"stock\":1,\"starts_at\":$((now - 1000)),\"ends_at\":$((now + 86400000))}"
curl -fsS -o /dev/null -X POST "$base/api/v1/sales/gone/purchase" -d '{"user_id":"first"}'
curl -fsS -o /dev/null -X POST "$base/api/v1/sales" -H 'Content-Type: application/json' \
  -d "{\"id\":\"buy\",\"stock\":1000000000,\"starts_at\":$((now - 1000)),\"ends_at\":$((now + 86400000))}"

# The sold-out path with one fixed body, so wrk reuses one request as it does for nginx.
cat > "$tmp/soldout.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"user_id":"someone","request_id":"r"}'
wrk.headers["Content-Type"] = "application/json"
LUA

sold() { curl -fsS "$base/api/v1/sales/buy" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sold"])'; }
metrics() { curl -fsS "$base/metrics" | grep -E '^seckill_ledger_(batch_size|commit_seconds)_(sum|count|bucket)'; }

echo "== wrk -t1 -c$conns -d${secs}s, servers on CPU 1, wrk on CPU 0"
bench_wrk "nginx return 200" "$NGINX_PID" 0 -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$np/"
n_rps=$RPS n_cpu=$CPU_PER_M
bench_wrk "sold-out purchase" "$SK_PID" 0 -t1 -c"$conns" -d"${secs}s" --latency -s "$tmp/soldout.lua" \
  "$base/api/v1/sales/gone/purchase"
so_rps=$RPS so_cpu=$CPU_PER_M
bench_wrk "sold-out, distinct users" "$SK_PID" 0 -t1 -c"$conns" -d"${secs}s" --latency -s bench/purchase.lua \
  "$base" -- gone
sod_rps=$RPS
m_before=$(metrics); s_before=$(sold)
th_before=$(bench_thread_cpu "$SK_PID")
t0=$(date +%s.%N)
bench_wrk "purchase (all confirmed)" "$SK_PID" 0 -t1 -c"$conns" -d"${secs}s" --latency -s bench/purchase.lua \
  "$base" -- buy
t1=$(date +%s.%N)
th_after=$(bench_thread_cpu "$SK_PID")
m_after=$(metrics); s_after=$(sold)
confirmed=$((s_after - s_before))
conf_rps=$(awk -v n="$confirmed" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
echo "purchase path: $confirmed orders confirmed in the run: $conf_rps confirmed/s (wrk said $RPS req/s)"
# Where the purchase's server CPU went, by thread (the syncer's is almost all the kernel's
# work of its fdatasync calls), and what one sync costs on this disk with the server idle
# (seckill-sync-probe, in the same temp dir), spread below over the run's mean batch.
echo "purchase run, server CPU per confirmed order by thread (us):" \
  "$(join -a 2 -e 0 -o 0,1.2,2.2 <(echo "$th_before") <(echo "$th_after") | awk -v n="$confirmed" \
    'n > 0 { d = ($3 - $2) / n * 1e6; if (d >= 0.005) printf "%s %.2f  ", $1, d }')"
probe=$(build/seckill-sync-probe "$tmp" 3) || probe="disk alone: the probe failed (above)"
echo "$probe"
sync_cpu=$(echo "$probe" | sed -n 's/.*CPU \([0-9.]*\) us per sync.*/\1/p')
python3 - "$m_before" "$m_after" "$sync_cpu" <<'PY'
import sys

def parse(text):
    out = {}
    for line in text.splitlines():
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out

a, b = parse(sys.argv[1]), parse(sys.argv[2])
d = {k: b[k] - a.get(k, 0) for k in b}

def quantile(prefix, q):
    buckets = sorted(((float("inf") if k.split('le="')[1][:-2] == "+Inf" else float(k.split('le="')[1][:-2]), v)
                      for k, v in d.items() if k.startswith(prefix + "_bucket")))
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, lo, prev = q * total, 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * ((rank - prev) / (cum - prev) if cum > prev else 0)
        lo, prev = le, cum
    return lo

n = d.get("seckill_ledger_batch_size_count", 0)
if n:
    print("ledger over the purchase run: %d batches, mean batch %.1f, commit mean %.3f ms, p50 %.3f ms, p99 %.3f ms"
          % (n, d["seckill_ledger_batch_size_sum"] / n, d["seckill_ledger_commit_seconds_sum"] / n * 1e3,
             quantile("seckill_ledger_commit_seconds", 0.5) * 1e3,
             quantile("seckill_ledger_commit_seconds", 0.99) * 1e3))
    if sys.argv[3]:
        print("one sync's CPU spread over that mean batch: %.2f us per purchase"
              % (float(sys.argv[3]) / (d["seckill_ledger_batch_size_sum"] / n)))
PY

echo "== ratios"
echo "in-process durable decisions/s:     $engine_rate   (target >= 1000000)"
echo "sold-out req/s / nginx:             $(bench_ratio "$so_rps" "$n_rps")x   (target >= 1.0)"
echo "sold-out CPU per request / nginx:   $(bench_ratio "$so_cpu" "$n_cpu")x   (target <= 1.0)"
echo "confirmed/s / sold-out req/s:       $(bench_ratio "$conf_rps" "$sod_rps")x   (target >= 0.9; same wrk script)"
