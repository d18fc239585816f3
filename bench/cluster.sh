#!/usr/bin/env bash
# The cluster against its anchors, as ratios within one run (nothing here asserts speed):
#
#  1. the purchase script inside Redis, driven by redis-benchmark (50 clients): one
#     purchase per EVALSHA (also with 16-deep pipelining) vs one 64-purchase batch per
#     EVALSHA, with AOF appendfsync always and with no AOF;
#  2. purchases/s through a node (seckill serve --store redis://, flooded by
#     seckill-bench) vs the one-purchase-per-EVALSHA rate of the same Redis with the
#     same AOF setting. Target (README, "Measured performance"): >= 5x under appendfsync always;
#  3. the drain: orders/s into PostgreSQL, timed on a backlog built with the drain
#     stopped (target: it keeps up; the lag returns to 0 within seconds of a sell-out);
#  4. the whole local cluster (nginx, three nodes, Redis, drain, PostgreSQL; the
#     audit reads PostgreSQL) vs one embedded node, same scenario, same load generator.
#
# Usage: bench/cluster.sh [quick]     quick: tiny sizes, a smoke run of the script
# Environment (defaults in brackets, quick in parentheses):
#   CALLS [200000] (2000)      redis-benchmark calls per one-purchase measurement
#   BATCH_CALLS [20000] (100)  calls of the 64-purchase batch
#   STOCK [200000] (2000)  USERS [400000] (4000)  CONNS [64] (16)  PIPELINE [8] (1)
#   SERVER_CPU [0] BENCH_CPU [1]   taskset CPU lists (servers / load generators); PIN=0: unpinned
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

if [ "${1:-}" = quick ]; then
  calls=${CALLS:-2000} batch_calls=${BATCH_CALLS:-100} stock=${STOCK:-2000} users=${USERS:-4000}
  conns=${CONNS:-16} pipeline=${PIPELINE:-1}
elif [ -z "${1:-}" ]; then
  calls=${CALLS:-200000} batch_calls=${BATCH_CALLS:-20000} stock=${STOCK:-200000} users=${USERS:-400000}
  conns=${CONNS:-64} pipeline=${PIPELINE:-8}
else
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
for tool in redis-server redis-cli redis-benchmark nginx psql python3 taskset; do
  command -v "$tool" >/dev/null || { echo "bench/cluster.sh: $tool not found (scripts/deps.sh test)" >&2; exit 2; }
done
[ -x build/seckill ] && [ -x build/seckill-bench ] || make build >/dev/null
srv=() gen=()
if [ "${PIN:-1}" != 0 ]; then
  srv=(taskset -c "${SERVER_CPU:-0}") gen=(taskset -c "${BENCH_CPU:-1}")
fi

tmp=$(mktemp -d)
chmod 755 "$tmp" # the local cluster's PostgreSQL runs as an unprivileged user under it
REDIS_PID='' NODE_PID='' EMB_PID=''
export SECKILL_CLUSTER_DIR=$tmp/cluster SECKILL_BIN=$PWD/build/seckill
cleanup() {
  for p in $NODE_PID $EMB_PID $REDIS_PID; do kill "$p" 2>/dev/null || true; done
  [ -f "$SECKILL_CLUSTER_DIR/cluster.env" ] && scripts/cluster down >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# One Redis as the cluster runs it (deploy/redis.conf), AOF on or off.
start_redis() { # start_redis always|no
  local dir=$tmp/redis-$1
  mkdir -p "$dir"
  REDIS_PORT=$(bench_free_port)
  local aof=(--appendonly yes --appendfsync always)
  [ "$1" = no ] && aof=(--appendonly no)
  "${srv[@]}" redis-server deploy/redis.conf --port "$REDIS_PORT" --dir "$dir" --daemonize no \
    --logfile "$dir/redis.log" "${aof[@]}" >/dev/null 2>&1 &
  REDIS_PID=$!
  bench_wait_port "$REDIS_PORT"
  until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
}
stop_redis() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=''
}

# redis-benchmark's requests/s for one command line.
rb() { # rb EXTRA-OPTIONS... -- COMMAND...
  local opts=()
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  "${gen[@]}" redis-benchmark -p "$REDIS_PORT" -c 50 -r 1000000000 -q "${opts[@]}" "$@" 2>&1 | tr '\r' '\n' |
    grep 'requests per second' | tail -1 | sed 's/.*: \([0-9.]*\) requests per second.*/\1/'
}

new_sale() { # new_sale ID: a sale that never runs out
  redis-cli -p "$REDIS_PORT" EVALSHA "$CREATE_SHA" 1 "sk:{$1}:sale" "$1" bench 1000000000 0 9999999999999 1 0 >/dev/null
}

declare -A ONE PIPED BATCH NODE
for aof in always no; do
  start_redis "$aof"
  SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat src/backend/lua/buy.lua)")
  CREATE_SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat src/backend/lua/create_sale.lua)")
  keys() { echo "sk:{$1}:sale" "sk:{$1}:holders" "sk:{$1}:orders"; }
  # 1. one purchase per call, every buyer new (u:<random>)
  new_sale one
  # shellcheck disable=SC2046
  ONE[$aof]=$(rb -n "$calls" -- EVALSHA "$SHA" 3 $(keys one) 'u:__rand_int__' r)
  new_sale piped
  # shellcheck disable=SC2046
  PIPED[$aof]=$(rb -n "$calls" -P 16 -- EVALSHA "$SHA" 3 $(keys piped) 'u:__rand_int__' r)
  new_sale batch
  args=()
  for _ in $(seq 64); do args+=('u:__rand_int__' r); done
  # shellcheck disable=SC2046
  calls_s=$(rb -n "$batch_calls" -- EVALSHA "$SHA" 3 $(keys batch) "${args[@]}")
  BATCH[$aof]=$(awk -v c="$calls_s" 'BEGIN { printf "%.0f", c * 64 }')
  sold=$(redis-cli -p "$REDIS_PORT" HGET 'sk:{batch}:sale' sold)
  echo "== Redis, AOF $aof: one purchase per EVALSHA ${ONE[$aof]}/s, pipelined x16 ${PIPED[$aof]}/s," \
       "64-purchase batch ${BATCH[$aof]} purchases/s ($sold sold in the batch test)"

  # 2. through a node: HTTP, the gate, batches formed by the ledger thread
  port=$(bench_free_port)
  "${srv[@]}" build/seckill serve --listen "127.0.0.1:$port" --store "redis://127.0.0.1:$REDIS_PORT" \
    --threads 1 --log-level warn > "$tmp/node-$aof.log" 2>&1 &
  NODE_PID=$!
  bench_wait_port "$port"
  "${gen[@]}" build/seckill-bench -q "http://127.0.0.1:$port" --create-sale "stock=$stock,starts_in=1s" \
    --users "$users" -c "$conns" --pipeline "$pipeline" --json "$tmp/node-$aof.json" > "$tmp/node-$aof.out" 2>&1 ||
    { echo "node flood (AOF $aof) failed:"; tail -20 "$tmp/node-$aof.out"; }
  NODE[$aof]=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round(r["confirmed_per_s"]))' \
    "$tmp/node-$aof.json")
  audit=$(grep -E '^AUDIT' "$tmp/node-$aof.out" || echo "AUDIT ?")
  echo "   through one node: ${NODE[$aof]} confirmed purchases/s ($audit)"
  kill "$NODE_PID"
  wait "$NODE_PID" 2>/dev/null || true
  NODE_PID=''
  stop_redis
done

# 3 and 4: the whole cluster (pinned like the servers above) and the embedded store.
echo "== the local cluster (scripts/cluster), all servers on CPU ${SERVER_CPU:-0}"
"${srv[@]}" scripts/cluster up > "$tmp/cluster-up.out"
. "$SECKILL_CLUSTER_DIR/cluster.env"
scenario=(--create-sale "stock=$stock,starts_in=1s" --users "$users" -c "$conns" --pipeline "$pipeline")
"${gen[@]}" build/seckill-bench -q "$URL" "${scenario[@]}" --audit-pg "$PG_URL" --json "$tmp/cluster.json" \
  > "$tmp/cluster.out" 2>&1 || true
grep -E '^AUDIT' "$tmp/cluster.out" || tail -5 "$tmp/cluster.out"

port=$(bench_free_port)
"${srv[@]}" build/seckill serve --listen "127.0.0.1:$port" --threads 1 --data "$tmp/embedded" --log-level warn \
  > "$tmp/embedded.log" 2>&1 &
EMB_PID=$!
bench_wait_port "$port"
"${gen[@]}" build/seckill-bench -q "http://127.0.0.1:$port" "${scenario[@]}" \
  --audit-sqlite "$tmp/embedded/seckill.db" --json "$tmp/embedded.json" > "$tmp/embedded.out" 2>&1 || true
grep -E '^AUDIT' "$tmp/embedded.out" || tail -5 "$tmp/embedded.out"
kill "$EMB_PID"
wait "$EMB_PID" 2>/dev/null || true
EMB_PID=''

# 3. the drain on a backlog: stop it, sell out a sale, start it, time until lag 0.
scripts/cluster stop drain
"${gen[@]}" build/seckill-bench -q "$URL" --create-sale "stock=$stock,starts_in=1s,id=drainbench" \
  --users "$stock" -c "$conns" --pipeline "$pipeline" --no-audit > "$tmp/backlog.out" 2>&1 || true
t0=$(date +%s.%N)
"${srv[@]}" scripts/cluster start drain
until [ "$(psql -X -tA -h 127.0.0.1 -p "$PG_PORT" -U seckill -d seckill \
        -c "SELECT count(*) FROM orders WHERE sale_id = 'drainbench'")" -ge "$stock" ]; do
  sleep 0.05
done
t1=$(date +%s.%N)
DRAIN=$(awk -v n="$stock" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
echo "== the drain: $stock orders into PostgreSQL in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s" \
     "(from start, migrations and discovery included): $DRAIN orders/s"

python3 - "$tmp/cluster.json" "$tmp/embedded.json" <<'PY'
import json, sys
c, e = (json.load(open(p)) for p in sys.argv[1:3])
for name, r in (("cluster (nginx + 3 nodes)", c), ("embedded (1 node)", e)):
    a = r.get("audit") or {}
    print(f"   {name:26s} {r['answers_per_s']:10.0f} answers/s {r['confirmed_per_s']:10.0f} confirmed/s"
          f"   audit {'OK' if a.get('ok') else 'FAILED'} ({a.get('source', '?')})")
PY

echo "== ratios"
for aof in always no; do
  echo "   AOF $aof: 64-batch script / one-per-EVALSHA $(bench_ratio "${BATCH[$aof]}" "${ONE[$aof]}")x," \
       "through a node / one-per-EVALSHA $(bench_ratio "${NODE[$aof]}" "${ONE[$aof]}")x," \
       "through a node / one-per-EVALSHA pipelined $(bench_ratio "${NODE[$aof]}" "${PIPED[$aof]}")x"
done
echo "   target (AOF always, through a node) >= 5x: $(awk -v a="${NODE[always]}" -v b="${ONE[always]}" \
     'BEGIN { print (b > 0 && a / b >= 5) ? "met" : "NOT met" }')"
node_always=${NODE[always]}
cl=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["confirmed_per_s"]))' "$tmp/cluster.json")
em=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["confirmed_per_s"]))' "$tmp/embedded.json")
echo "   cluster / embedded (confirmed/s): $(bench_ratio "$cl" "$em")x;" \
     "drain / node purchase rate (AOF always): $(bench_ratio "$DRAIN" "$node_always")x"
