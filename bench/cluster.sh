#!/usr/bin/env bash
# The cluster against its anchors, as ratios within one run (nothing here asserts speed):
#
#  1. the purchase script inside Redis, driven by redis-benchmark (50 clients): one
#     purchase per EVALSHA (also with 16-deep pipelining) vs one 64-purchase batch per
#     EVALSHA, with AOF appendfsync always and with no AOF;
#  2. purchases/s through a node (seckill serve --store redis://, flooded by
#     seckill-bench) vs the one-purchase-per-EVALSHA rate of the same Redis with the
#     same AOF setting. Target (README, "Measured performance"): >= 5x under appendfsync always;
#  3. the drain: orders/s into PostgreSQL, timed from its first order to its last on a
#     backlog built with the drains stopped, with one drain and with two (several
#     drains share the streams through the consumer group), against the purchase rate
#     of one node (target: >= 1x, it keeps up);
#  4. the whole local cluster (nginx, three nodes, Redis, drain, PostgreSQL; the
#     audit reads PostgreSQL) vs one embedded node, same scenario, same load generator;
#  5. a Redis Cluster (scripts/cluster up --redis-cluster: three primaries, three
#     replicas): purchases/s through one node with three live sales, one on each shard,
#     vs the same three sales on one shard; and with --replicas-ack 1 (every batch
#     waits for a replica: WAIT) vs without; one drain over the three shards;
#  6. Redis's memory after MEM_SALES sales of MEM_ORDERS orders, all drained and
#     retired (a drain with --retention 1), against one drained live sale
#     (bench/rcluster_memory.py).
#
# Usage: bench/cluster.sh [quick]     quick: tiny sizes, a smoke run of the script
# Environment (defaults in brackets, quick in parentheses):
#   CALLS [200000] (2000)      redis-benchmark calls per one-purchase measurement
#   BATCH_CALLS [20000] (100)  calls of the 64-purchase batch
#   STOCK [200000] (2000)  USERS [400000] (4000)  CONNS [64] (16)  PIPELINE [8] (1)
#   RC_STOCK [100000] (2000) RC_USERS [200000] (4000)   each of the three sales in 5.
#   MEM_SALES [100] (10)  MEM_ORDERS [100000] (1000)       part 6.
#   SERVER_CPU [0] BENCH_CPU [1]   taskset CPU lists (servers / load generators); PIN=0: unpinned
#   PARTS ["1 2 3 4 5 6"]   which parts to run (1 and 2 go together, so do 3 and 4; 6 runs
#                           on part 5's Redis Cluster); a ratio whose anchor was not run reads nan
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

if [ "${1:-}" = quick ]; then
  calls=${CALLS:-2000} batch_calls=${BATCH_CALLS:-100} stock=${STOCK:-2000} users=${USERS:-4000}
  conns=${CONNS:-16} pipeline=${PIPELINE:-1} rc_stock=${RC_STOCK:-2000} rc_users=${RC_USERS:-4000}
  mem_sales=${MEM_SALES:-10} mem_orders=${MEM_ORDERS:-1000}
elif [ -z "${1:-}" ]; then
  calls=${CALLS:-200000} batch_calls=${BATCH_CALLS:-20000} stock=${STOCK:-200000} users=${USERS:-400000}
  conns=${CONNS:-64} pipeline=${PIPELINE:-8} rc_stock=${RC_STOCK:-100000} rc_users=${RC_USERS:-200000}
  mem_sales=${MEM_SALES:-100} mem_orders=${MEM_ORDERS:-100000}
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

want() { case " ${PARTS:-1 2 3 4 5 6} " in *" $1 "*) return 0 ;; esac; return 1; }
# The drain's rate (parts 3 and 5), timed in PostgreSQL.
pg_sql() { psql -X -tA -h 127.0.0.1 -p "$PG_PORT" -U seckill -d seckill -c "$1"; }
# How far the drain got in the given sales: the sum of each sale's highest seq in
# PostgreSQL (one index probe a sale; a count(*) every few milliseconds would scan the
# sales' rows and take PostgreSQL's CPU from the drain it measures), and their count.
pg_progress() { # pg_progress SALE...
  local q='SELECT 0' sid
  for sid in "$@"; do q="$q + (SELECT coalesce(max(seq), 0) FROM orders WHERE sale_id = '$sid')"; done
  pg_sql "$q"
}
pg_count() { # pg_count SALE...
  local ids='' sid
  for sid in "$@"; do ids="$ids${ids:+,}'$sid'"; done
  pg_sql "SELECT count(*) FROM orders WHERE sale_id IN ($ids)"
}
drain_run() { # drain_run K N SALE...: K drains until the N orders of the sales are in; prints orders/s
  local k=$1 n=$2 i t0 t1 p
  shift 2
  DRAIN_PIDS=''
  for ((i = 1; i <= k; i++)); do
    "${srv[@]}" build/seckill drain --store "$REDIS_URL" --db "$PG_URL" --consumer "drain-bench-$i" \
      --log-level warn > "$tmp/drain-$k-$i.log" 2>&1 &
    DRAIN_PIDS="$DRAIN_PIDS $!"
  done
  local end=$((SECONDS + 900))
  until [ "$(pg_progress "$@")" -gt 0 ] || [ $SECONDS -ge $end ]; do sleep 0.02; done
  t0=$(date +%s.%N)
  until [ "$(pg_progress "$@")" -ge "$n" ] || [ $SECONDS -ge $end ]; do sleep 0.05; done
  # Several drains may commit out of order: the last order is in when all are.
  until [ "$(pg_count "$@")" -ge "$n" ] || [ $SECONDS -ge $end ]; do sleep 0.05; done
  t1=$(date +%s.%N)
  [ $SECONDS -lt $end ] || { echo "bench/cluster.sh: the drain did not write the $n orders in 15 minutes" >&2; t1=0; }
  for p in $DRAIN_PIDS; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  DRAIN_PIDS=''
  awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b > a) ? n / (b - a) : 0 }'
}
node_always=''
tmp=$(mktemp -d)
chmod 755 "$tmp" # the local cluster's PostgreSQL runs as an unprivileged user under it
REDIS_PID='' NODE_PID='' EMB_PID='' DRAIN_PIDS=''
export SECKILL_CLUSTER_DIR=$tmp/cluster SECKILL_BIN=$PWD/build/seckill
cleanup() {
  for p in $NODE_PID $EMB_PID $REDIS_PID $DRAIN_PIDS; do kill "$p" 2>/dev/null || true; done
  [ -f "$tmp/cluster/cluster.env" ] && SECKILL_CLUSTER_DIR=$tmp/cluster scripts/cluster down >/dev/null 2>&1 || true
  [ -f "$tmp/rcluster/cluster.env" ] && SECKILL_CLUSTER_DIR=$tmp/rcluster scripts/cluster down >/dev/null 2>&1 || true
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
if want 1 || want 2; then
for aof in always no; do
  start_redis "$aof"
  SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat src/backend/lua/buy.lua)")
  CREATE_SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat src/backend/lua/create_sale.lua)")
  # buy.lua's keys (src/backend/redis.c script_keys) and its first two arguments: the
  # caller keeps no users (-1), knows the sale's settings version 0; then the operations,
  # each "b user request quantity".
  keys() { echo 7 "sk:{$1}:sale" "sk:{$1}:holders" "sk:{$1}:orders" "sk:{$1}:o" "sk:{$1}:due" "sk:{$1}:log" \
    "sk:{$1}:ctl" -1 0; }
  # 1. one purchase per call, every buyer new (u:<random>)
  new_sale one
  # shellcheck disable=SC2046
  ONE[$aof]=$(rb -n "$calls" -- EVALSHA "$SHA" $(keys one) b 'u:__rand_int__' r 1)
  new_sale piped
  # shellcheck disable=SC2046
  PIPED[$aof]=$(rb -n "$calls" -P 16 -- EVALSHA "$SHA" $(keys piped) b 'u:__rand_int__' r 1)
  new_sale batch
  args=()
  for _ in $(seq 64); do args+=(b 'u:__rand_int__' r 1); done
  # shellcheck disable=SC2046
  calls_s=$(rb -n "$batch_calls" -- EVALSHA "$SHA" $(keys batch) "${args[@]}")
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
fi # parts 1 and 2

if want 3 || want 4; then
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

# 3. the drain on a backlog: the cluster's drain stopped, a sale sold out through the
#    nodes, then K drains (consumers drain-bench-1..K of the group) started: orders/s
#    from the first order in PostgreSQL to the last (start-up not included).
scripts/cluster stop drain
declare -A DRAIN
for k in 1 2; do
  "${gen[@]}" build/seckill-bench -q "$URL" --create-sale "stock=$stock,starts_in=1s,id=drainbench$k" \
    --users "$stock" -c "$conns" --pipeline "$pipeline" --no-audit > "$tmp/backlog-$k.out" 2>&1 || true
  DRAIN[$k]=$(drain_run "$k" "$stock" "drainbench$k")
  echo "== the drain: $stock orders into PostgreSQL with $k drain(s): ${DRAIN[$k]} orders/s (first order to last)"
done

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
  echo "   AOF $aof: 64-batch script / one-per-EVALSHA $(bench_ratio "${BATCH[$aof]:-}" "${ONE[$aof]:-}")x," \
       "through a node / one-per-EVALSHA $(bench_ratio "${NODE[$aof]:-}" "${ONE[$aof]:-}")x," \
       "through a node / one-per-EVALSHA pipelined $(bench_ratio "${NODE[$aof]:-}" "${PIPED[$aof]:-}")x"
done
echo "   target (AOF always, through a node) >= 5x: $(awk -v a="${NODE[always]:-}" -v b="${ONE[always]:-}" \
     'BEGIN { print (b > 0 && a / b >= 5) ? "met" : "NOT met" }')"
node_always=${NODE[always]:-}
cl=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["confirmed_per_s"]))' "$tmp/cluster.json")
em=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["confirmed_per_s"]))' "$tmp/embedded.json")
echo "   cluster / embedded (confirmed/s): $(bench_ratio "$cl" "$em")x;" \
     "drain / node purchase rate (AOF always): 1 drain $(bench_ratio "${DRAIN[1]:-}" "$node_always")x," \
     "2 drains $(bench_ratio "${DRAIN[2]:-}" "$node_always")x (target >= 1x)"
scripts/cluster down >/dev/null
fi # parts 3 and 4

if want 5 || want 6; then
# 5. a Redis Cluster: one node (one node's rate is the question, not the cluster's
#    three) against three shards with three live sales, one per shard, then the same
#    node against three sales on one shard; then with --replicas-ack 1. Each time three
#    seckill-bench processes flood the three sales at once; the rate is the sum of their
#    confirmed/s. Then one drain on the backlog the floods left on the three shards.
export SECKILL_CLUSTER_DIR=$tmp/rcluster
"${srv[@]}" scripts/cluster up --redis-cluster --replicas-ack 0 > "$tmp/rcluster-up.out"
. "$SECKILL_CLUSTER_DIR/cluster.env"
for part in nginx node1 node2 node3 drain; do scripts/cluster stop "$part"; done
fi
if want 5; then
# Sale ids served by given primaries (CRC16 of the id, as the node computes the slot).
sale_ids() { # sale_ids PREFIX PORT...: one id per port, in order
  python3 - "$@" <<'PY'
import subprocess, sys
prefix, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
def crc16(b):
    c = 0
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c
ranges = []
nodes = subprocess.run(["redis-cli", "-p", str(ports[0]), "cluster", "nodes"], capture_output=True, text=True)
for line in nodes.stdout.splitlines():
    f = line.split()
    if "master" in f[2]:
        for r in f[8:]:
            a, _, b = r.partition("-")
            ranges.append((int(a), int(b or a), int(f[1].split("@")[0].rsplit(":", 1)[1])))
out, i = [], 0
for p in ports:
    while True:
        sid, i = f"{prefix}{i}", i + 1
        s = crc16(sid.encode()) & 16383
        if any(a <= s <= b and q == p for a, b, q in ranges):
            out.append(sid)
            break
print(" ".join(out))
PY
}
prim=()
for p in $REDIS_PORTS; do redis-cli -p "$p" role | head -1 | grep -q master && prim+=("$p"); done
rc_flood() { # rc_flood NAME ACKS SALE...: one node, the floods at once; prints the summed confirmed/s
  local name=$1 acks=$2 port sid i=0 p pids=()
  shift 2
  port=$(bench_free_port)
  "${srv[@]}" build/seckill serve --listen "127.0.0.1:$port" --store "$REDIS_URL" --threads 1 --log-level warn \
    --replicas-ack "$acks" > "$tmp/rc-node-$name.log" 2>&1 &
  NODE_PID=$!
  bench_wait_port "$port"
  for sid in "$@"; do
    "${gen[@]}" build/seckill-bench -q "http://127.0.0.1:$port" --create-sale "stock=$rc_stock,starts_in=2s,id=$sid" \
      --users "$rc_users" -c "$conns" --pipeline "$pipeline" --no-audit --json "$tmp/rc-$name-$i.json" \
      > "$tmp/rc-$name-$i.out" 2>&1 &
    pids+=($!)
    i=$((i + 1))
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  kill "$NODE_PID"
  wait "$NODE_PID" 2>/dev/null || true
  NODE_PID=''
  python3 -c 'import json, sys; print(round(sum(json.load(open(p)).get("confirmed_per_s", 0) for p in sys.argv[1:])))' \
    "$tmp"/rc-"$name"-*.json
}
declare -A RC
read -r -a spread <<< "$(sale_ids spread "${prim[0]}" "${prim[1]}" "${prim[2]}")"
read -r -a one <<< "$(sale_ids one "${prim[0]}" "${prim[0]}" "${prim[0]}")"
read -r -a acked <<< "$(sale_ids acked "${prim[0]}" "${prim[1]}" "${prim[2]}")"
RC[spread]=$(rc_flood spread 0 "${spread[@]}")
echo "== Redis Cluster, one node, 3 live sales on 3 shards: ${RC[spread]} confirmed/s (${spread[*]})"
RC[one]=$(rc_flood one 0 "${one[@]}")
echo "   the same 3 sales on one shard: ${RC[one]} confirmed/s (${one[*]})"
RC[ack]=$(rc_flood ack 1 "${acked[@]}")
echo "   3 shards with --replicas-ack 1: ${RC[ack]} confirmed/s"
RC[drain]=$(drain_run 1 $((9 * rc_stock)) "${spread[@]}" "${one[@]}" "${acked[@]}")
echo "   one drain over the 3 shards, the 9 sales' $((9 * rc_stock)) orders: ${RC[drain]} orders/s (first order to last)"
echo "   ratios: 3 shards / 1 shard $(bench_ratio "${RC[spread]}" "${RC[one]}")x;" \
     "--replicas-ack 1 / none $(bench_ratio "${RC[ack]}" "${RC[spread]}")x;" \
     "one node through 3 shards / through one Redis (AOF always, 2.) $(bench_ratio "${RC[spread]}" "$node_always")x;" \
     "one drain over the 3 shards / one node through them $(bench_ratio "${RC[drain]}" "${RC[spread]}")x (target >= 1x)"

fi # part 5
if want 6; then
# 6. memory: a drain that retires finished sales at once, node1 to create the sales.
echo "== Redis Cluster memory: $mem_sales sales x $mem_orders orders drained and retired vs one drained live sale"
scripts/cluster start node1
"${srv[@]}" build/seckill drain --store "$REDIS_URL" --db "$PG_URL" --consumer drain-mem --retention 1 \
  --log-level warn > "$tmp/drain-mem.log" 2>&1 &
DRAIN_PIDS=$!
"${gen[@]}" python3 bench/rcluster_memory.py "$SECKILL_CLUSTER_DIR" "$mem_sales" "$mem_orders"
kill "$DRAIN_PIDS" 2>/dev/null || true
wait "$DRAIN_PIDS" 2>/dev/null || true
DRAIN_PIDS=''
fi # part 6
