#!/usr/bin/env bash
# The drain into MariaDB against the drain into PostgreSQL, in one run (nothing here
# asserts speed): orders per second written by `seckill drain` from the same backlog, at
# the same batch size, into each database of the local cluster (scripts/cluster up --db
# postgres, then --db mysql). Both databases commit durably (PostgreSQL fsync and
# synchronous_commit on, InnoDB innodb_flush_log_at_trx_commit=1, their defaults).
#
# For each database: the cluster is started, its drain stopped, a sale is created and
# its order stream filled in Redis by the purchase script itself (buy.lua, ENTRY
# purchases per call: the stream entries a node's batches make); then the drain is
# started and waited for until its metrics count every order written. The times come
# from the rows themselves (drained_at, the database's clock when the statement that
# wrote them began): the rate from the drain's start (connecting, migrations and
# discovery included) to its last statement, and the steady rate from its first
# statement to its last.
#
# Usage: bench/drain.sh [quick]       quick: a small backlog, a smoke run of the script
# Environment (defaults in brackets, quick in parentheses):
#   ORDERS [400000] (20000)   orders in the backlog
#   BATCH [2000]              the drain's --batch (orders per transaction)
#   ENTRY [16]                orders per stream entry (the drain reads BATCH/16 entries a
#                             time, so 16 makes a transaction hold BATCH orders)
#   SERVER_CPU [0] BENCH_CPU [1]   taskset CPU lists (servers / the backlog filler); PIN=0: unpinned
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

if [ "${1:-}" = quick ]; then
  orders=${ORDERS:-20000}
elif [ -z "${1:-}" ]; then
  orders=${ORDERS:-400000}
else
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
batch=${BATCH:-2000} entry=${ENTRY:-16}
for tool in redis-server redis-cli nginx psql mariadb python3 taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench/drain.sh: $tool not found (scripts/deps.sh test)" >&2; exit 2; }
done
[ -x build/seckill ] || make build >/dev/null
srv=() gen=()
if [ "${PIN:-1}" != 0 ]; then
  srv=(taskset -c "${SERVER_CPU:-0}") gen=(taskset -c "${BENCH_CPU:-1}")
fi

tmp=$(mktemp -d)
chmod 755 "$tmp" # the local cluster's databases run as an unprivileged user under it
export SECKILL_BIN=$PWD/build/seckill SECKILL_DRAIN_BATCH=$batch
cleanup() {
  [ -n "${SECKILL_CLUSTER_DIR:-}" ] && [ -f "$SECKILL_CLUSTER_DIR/cluster.env" ] &&
    scripts/cluster down >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Runs a query on this cluster's database; prints the rows, tab-separated.
db_query() {
  if [ "$DB" = postgres ]; then
    psql -X -tA -F "$(printf '\t')" -h 127.0.0.1 -p "$PG_PORT" -U seckill -d seckill -c "$1"
  else
    mariadb --no-defaults -S "$MYSQL_SOCKET" -u root -N -B seckill -e "$1"
  fi
}

# The drain's metric, or -1 while it does not answer.
drain_metric() {
  curl -fsS -m 2 "$DRAIN_METRICS" 2>/dev/null | awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print -1 }'
}

# Fills the stream of sale $1 with $orders orders, $entry per purchase-script call,
# pipelined.
fill_backlog() {
  "${gen[@]}" python3 - "$REDIS_PORT" "$1" "$orders" "$entry" src/backend/lua/buy.lua <<'PY'
import socket, sys
port, sale, orders, entry, script = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = socket.create_connection(("127.0.0.1", port))
buf = b""

def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def replies(n):
    # Counts n replies; the script's reply is an array of arrays, read as lines.
    global buf
    depth = []
    got = 0
    while got < n:
        while b"\r\n" not in buf:
            buf += s.recv(1 << 20)
        line, buf = buf.split(b"\r\n", 1)
        t = line[:1]
        if t == b"-":
            raise SystemExit("redis: " + line.decode())
        if t == b"$" and int(line[1:]) >= 0:
            need = int(line[1:]) + 2
            while len(buf) < need:
                buf += s.recv(1 << 20)
            buf = buf[need:]
        left = int(line[1:]) if t == b"*" else 0
        if t == b"*" and left > 0:
            depth.append(left)
            continue
        while depth:
            depth[-1] -= 1
            if depth[-1]:
                break
            depth.pop()
        if not depth:
            got += 1

with open(script) as f:
    s.sendall(cmd("SCRIPT", "LOAD", f.read()))
while b"\r\n" not in buf:
    buf += s.recv(4096)
line, buf = buf.split(b"\r\n", 1)
n = int(line[1:])
while len(buf) < n + 2:
    buf += s.recv(4096)
sha, buf = buf[:n].decode(), buf[n + 2:]
keys = [f"sk:{{{sale}}}:sale", f"sk:{{{sale}}}:holders", f"sk:{{{sale}}}:orders"]
u = 0
pending = []
while u < orders:
    args = []
    for _ in range(min(entry, orders - u)):
        u += 1
        args += [f"u{u}", f"r{u}"]
    pending.append(cmd("EVALSHA", sha, 3, *keys, *args))
    if len(pending) == 500 or u == orders:
        s.sendall(b"".join(pending))
        replies(len(pending))
        pending = []
s.sendall(cmd("HGET", keys[0], "sold"))
replies(1)
PY
}

declare -A RATE STEADY SECS
for db in postgres mysql; do
  export SECKILL_CLUSTER_DIR=$tmp/cluster-$db
  "${srv[@]}" scripts/cluster up --db "$db" > "$tmp/up-$db.out"
  # shellcheck disable=SC1091
  . "$SECKILL_CLUSTER_DIR/cluster.env"
  scripts/cluster stop drain
  now=$(date +%s%3N)
  curl -fsS -o /dev/null -XPOST "$URL/api/v1/sales" \
    -d "{\"id\":\"drain1\",\"stock\":$orders,\"starts_at\":$((now - 1000)),\"ends_at\":$((now + 3600000))}"
  fill_backlog drain1
  sold=$(redis-cli -p "$REDIS_PORT" HGET 'sk:{drain1}:sale' sold)
  [ "$sold" = "$orders" ] || { echo "bench/drain.sh: the backlog holds $sold orders, not $orders" >&2; exit 1; }
  t0=$(date +%s.%N)
  "${srv[@]}" scripts/cluster start drain
  n=0
  while [ "${n%.*}" -lt "$orders" ]; do
    sleep 0.2
    n=$(drain_metric seckill_drain_orders_total)
  done
  # Unix seconds of the first and last statements, the count of all rows and of the
  # last statement's (written after the last start: not inside the interval).
  if [ "$DB" = postgres ]; then
    row=$(db_query "SELECT extract(epoch FROM min(drained_at)), extract(epoch FROM max(drained_at)), count(*),
                           count(*) FILTER (WHERE drained_at = (SELECT max(drained_at) FROM orders)) FROM orders")
  else
    # drained_at is UTC (the drain's sessions run in '+00:00').
    row=$(db_query "SET time_zone = '+00:00'; SELECT UNIX_TIMESTAMP(min(drained_at)), UNIX_TIMESTAMP(max(drained_at)),
                           count(*), sum(drained_at = (SELECT max(drained_at) FROM orders)) FROM orders")
  fi
  read -r first last stored tail_rows <<< "$row"
  SECS[$db]=$(awk -v a="$t0" -v b="$last" 'BEGIN { printf "%.2f", b - a }')
  RATE[$db]=$(awk -v n="$stored" -v t="$tail_rows" -v a="$t0" -v b="$last" 'BEGIN { printf "%.0f", (n - t) / (b - a) }')
  STEADY[$db]=$(awk -v n="$stored" -v t="$tail_rows" -v a="$first" -v b="$last" \
    'BEGIN { printf "%.0f", (b > a ? (n - t) / (b - a) : 0) }')
  echo "== into $db: $stored orders stored, the last statement began ${SECS[$db]} s after the drain's start:" \
       "${RATE[$db]} orders/s from the start, ${STEADY[$db]} orders/s from its first statement" \
       "(batch $batch, $entry orders a stream entry)"
  scripts/cluster down >/dev/null
done

echo "== ratios"
echo "   MariaDB / PostgreSQL, from the drain's start: $(bench_ratio "${RATE[mysql]}" "${RATE[postgres]}")x;" \
     "steady: $(bench_ratio "${STEADY[mysql]}" "${STEADY[postgres]}")x"
