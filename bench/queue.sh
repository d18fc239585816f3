#!/usr/bin/env bash
# The waiting room's costs, each as a ratio against its anchor from the same run:
#  1. queue joins per second on one core, in-process (seckill-queue-bench: engine/queue.c,
#     the ledger's work per join; and with the journal's writes), target >= 200 000/s;
#     and the worker's added cost per purchase (parse with an admission + verification);
#  2. the purchase path through HTTP with an admission required vs a sale without a
#     queue (wrk, same crowd, same server; target >= 0.95x);
#  3. 10 000 waiting browsers' live places: the server's CPU share of one core while
#     10 000 queue event streams get their position once a second, against the same
#     server idle for the same time (target < 10 %).
# Prints; asserts nothing. Usage: bench/queue.sh [seconds per measurement] [streams]
# Run it under flock /tmp/seckill-bench.lock on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-5}
streams=${2:-10000}
[ -x build/seckill-queue-bench ] && [ -x build/seckill ] || make build >/dev/null
tmp=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== 1. in-process (one core)"
taskset -c 0 build/seckill-queue-bench --joins 1000000 --ops 1000000 --dir "$tmp/jq"

echo "== 2. purchases through HTTP: admission required vs no queue (server on cpu 0, wrk on cpu 1)"
printf 'bench-queue-secret-0123456789abcdef' > "$tmp/secret"
chmod 600 "$tmp/secret"
port=$(bench_free_port)
ulimit -n 65536 2>/dev/null || true
taskset -c 0 build/seckill serve --listen "127.0.0.1:$port" --data "$tmp/data" --threads 1 \
  --secret-file "$tmp/secret" --max-streams 0 --max-streams-per-ip 0 > "$tmp/server.log" 2>&1 &
pid=$!
bench_wait_port "$port"
now=$(date +%s%3N)
for s in plain queued; do
  q=$([ "$s" = queued ] && echo ',"queue":"fifo","admit_per_second":1000000' || true)
  curl -sf -XPOST "127.0.0.1:$port/api/v1/sales" -H 'content-type: application/json' \
    -d "{\"id\":\"$s\",\"stock\":1000000000,\"per_user_limit\":1000000,\"starts_at\":$((now - 1000)),\"ends_at\":$((now + 86400000))$q}" >/dev/null
done
# Admissions are stateless tokens: minted here with the server's key, as its queue would.
python3 - "$tmp" <<'PY'
import base64, hashlib, hmac, sys, time
tmp = sys.argv[1]
key = open(f"{tmp}/secret", "rb").read()
exp = int(time.time() * 1000) + 86400000
with open(f"{tmp}/plain.txt", "w") as p, open(f"{tmp}/queued.txt", "w") as q:
    for i in range(1000):
        u = f"b{i}"
        mac = hmac.new(key, f"sk-adm\nqueued\n{u}\n{exp}".encode(), hashlib.sha256).digest()
        q.write(f"{u} {exp}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}\n")
        p.write(f"{u} -\n")
PY
declare -A rps
for s in plain queued plain queued; do
  out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" -s bench/queue.lua "http://127.0.0.1:$port" -- "$s" "$tmp/$s.txt")
  r=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  echo "  $s: $r req/s${non2xx:+ (non-2xx: $non2xx)}"
  rps[$s]=$r
done
python3 -c "import sys; print(f'  admission required / no queue: {float(sys.argv[2])/float(sys.argv[1]):.3f}x (target >= 0.95x; last runs)')" "${rps[plain]}" "${rps[queued]}"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

echo "== 3. $streams waiting browsers, positions once a second (server on cpu 0)"
port=$(bench_free_port)
taskset -c 0 build/seckill serve --listen "127.0.0.1:$port" --data "$tmp/data2" --threads 1 \
  --secret-file "$tmp/secret" --max-streams 0 --max-streams-per-ip 0 --max-conns 60000 > "$tmp/server2.log" 2>&1 &
pid=$!
bench_wait_port "$port"
now=$(date +%s%3N)
# Starts once everyone waits; 100 admissions a second: every place moves every second.
start=$((now + 20000 + streams * 2))
curl -sf -XPOST "127.0.0.1:$port/api/v1/sales" -H 'content-type: application/json' \
  -d "{\"id\":\"w\",\"stock\":1000000,\"starts_at\":$start,\"queue\":\"fifo\",\"admit_per_second\":100}" >/dev/null
idle0=$(bench_cpu_seconds "$pid"); sleep "$secs"; idle1=$(bench_cpu_seconds "$pid")
taskset -c 1 python3 bench/queue_sse.py "$port" w "$streams" $(( (start - $(date +%s%3N)) / 1000 + secs + 2 )) > "$tmp/sse.out" &
crowd=$!
while ! grep -q "streams open" "$tmp/sse.out" 2>/dev/null; do sleep 0.2; done
while [ "$(date +%s%3N)" -lt "$((start + 1000))" ]; do sleep 0.2; done
c0=$(bench_cpu_seconds "$pid"); t0=$(date +%s%3N); sleep "$secs"; c1=$(bench_cpu_seconds "$pid"); t1=$(date +%s%3N)
wait "$crowd"
python3 - "$idle0" "$idle1" "$c0" "$c1" "$t0" "$t1" "$secs" "$(grep events "$tmp/sse.out")" <<'PY'
import sys
i0, i1, c0, c1, t0, t1, secs = map(float, sys.argv[1:8])
wall = (t1 - t0) / 1000
idle, busy = (i1 - i0) / secs, (c1 - c0) / wall
print(f"  idle server: {idle*100:.2f} % of a core; with the streams: {busy*100:.2f} % of a core "
      f"(target < 10 %); {sys.argv[8]} over the whole run")
PY
