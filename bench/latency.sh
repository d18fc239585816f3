#!/usr/bin/env bash
# Latency of confirmed purchases next to sold-out answers, in one open-loop run:
#  1. the maximum purchase rate: seckill-bench closed loop (-c CONNS, every request a
#     new buyer) against a sale with a stock it cannot sell out, confirmed/s;
#  2. an open loop (seckill-bench --rate, latency from each request's intended send
#     time, free of coordinated omission) at PCT % of that rate against a fresh sale
#     whose stock lasts half the run: the first half is confirmed purchases, the second
#     sold-out answers, with p50/p99/p99.9 of each from the same run, and the ledger's
#     batches of that run by the time each took to be made durable (from /metrics);
#  3. the anchor of that tail: the same disk's syncs, the server idle (seckill-sync-probe).
# Server pinned to CPU 1, seckill-bench to CPU 0. It prints numbers, it asserts nothing
# (the audit still fails the run if it finds a lost or oversold order).
# Usage: bench/latency.sh [seconds] (default 10 for the open loop, 5 for the maximum)
# Environment: PCT [80], CONNS [256] (enough that an open loop is not held back by busy
# connections: a purchase waits for its batch's fsync), IO (the server's and the client's --io).
# SECKILL=path: the server binary to measure (default build/seckill), e.g. an older build;
# SERVER_LOG=file: keep the server's log there (default: in the temp dir, removed);
# GAPS=1: during the open loop, a SCHED_FIFO thread on each CPU that sleeps 1 ms at a time
# reports any wake-up 2 ms late or more (seckill-vcpu-gaps): a CPU paused under the load
# (the hypervisor) rather than a stall of the server's own. It adds ~1 000 wake-ups a
# second per CPU, so it is off by default.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10}
pct=${PCT:-80} conns=${CONNS:-256}
[ -x build/seckill ] && [ -x build/seckill-bench ] && [ -x build/seckill-sync-probe ] || make build >/dev/null
io_args=()
[ -n "${IO:-}" ] && io_args=(--io "$IO")
tmp=$(mktemp -d)
SK_PID=
cleanup() {
  if [ -n "$SK_PID" ]; then kill "$SK_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(bench_free_port)
taskset -c 1 "${SECKILL:-build/seckill}" serve --listen "127.0.0.1:$port" --threads 1 --data "$tmp/data" --log-level warn \
  "${io_args[@]}" >"${SERVER_LOG:-$tmp/server.log}" 2>&1 &
SK_PID=$!
bench_wait_port "$port"
url="http://127.0.0.1:$port"
bench() { taskset -c 0 build/seckill-bench "$url" -c "$conns" -q "${io_args[@]}" "$@"; }

max_secs=$(((secs + 1) / 2))
echo "== 1. maximum purchase rate: closed loop, $conns connections, ${max_secs}s, every request a new buyer"
bench --create-sale "stock=1000000000,limit=1,starts_in=1s" --users 50000000 -d "${max_secs}s" --no-audit \
  --json "$tmp/max.json" >/dev/null 2>&1
max=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(int(r["counts"]["confirmed"] / r["elapsed_s"]))' \
  "$tmp/max.json")
echo "maximum: $max confirmed/s"

rate=$((max * pct / 100))
stock=$((rate * secs / 2))
users=$((rate * secs + rate))
echo "== 2. open loop at $pct % of it: $rate requests/s for ${secs}s; stock $stock (half the run), then sold out"
commits() { curl -fsS "$url/metrics" | grep -E '^seckill_ledger_commit_seconds_bucket' || true; }
commits >"$tmp/commits.before"
gaps_pid=
if [ -n "${GAPS:-}" ]; then
  [ -x build/seckill-vcpu-gaps ] || make build >/dev/null
  build/seckill-vcpu-gaps "$((secs + 3))" 0 1 >"$tmp/gaps.out" 2>&1 &
  gaps_pid=$!
fi
bench --create-sale "stock=$stock,limit=1,starts_in=2s" --users "$users" -d "${secs}s" --rate "$rate" --burst \
  --audit-sqlite "$tmp/data/seckill.db" --json "$tmp/open.json" >"$tmp/open.out" 2>&1 || {
  cat "$tmp/open.out"
  exit 1
}
commits >"$tmp/commits.after"
python3 - "$tmp/open.json" "$rate" "$max" "$tmp/commits.before" "$tmp/commits.after" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
rate, mx = int(sys.argv[2]), int(sys.argv[3])
lat, counts = r["latency_us"], r["counts"]
print("sent %d requests at %d/s (%.0f%% of %d/s); answered %d in %.2f s"
      % (r["requests"], rate, 100.0 * rate / mx, mx, r["answers"], r["elapsed_s"]))
print("%-12s %10s %10s %10s %10s %10s" % ("outcome", "count", "p50 ms", "p99 ms", "p99.9 ms", "max ms"))
for o in ("confirmed", "sold_out"):
    l = lat.get(o) or {}
    if not counts.get(o):
        continue
    print("%-12s %10d %10.3f %10.3f %10.3f %10.3f" % (o, counts[o], l["p50"] / 1e3, l["p99"] / 1e3,
                                                     l["p99.9"] / 1e3, l["max"] / 1e3))
p99 = (lat.get("confirmed") or {}).get("p99")
if p99 is not None:
    print("confirmed p99 at %d%% of the maximum rate: %.3f ms   (target <= 5 ms)" % (round(100.0 * rate / mx), p99 / 1e3))
# The ledger's batches of the open loop by the time each took to be made durable (its
# journal write and the sync it waited for): where the confirmed tail comes from.
def hist(path):
    h = {}
    for line in open(path):
        m = re.match(r'seckill_ledger_commit_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            h[m.group(1)] = int(m.group(2))
    return h
before, after = hist(sys.argv[4]), hist(sys.argv[5])
cum = [(le, after.get(le, 0) - before.get(le, 0)) for le in after]
if cum:
    total, prev, parts = cum[-1][1], 0, []
    for le, c in cum:
        if c - prev:
            parts.append("<= %s s: %d" % (le, c - prev) if le != "+Inf" else "more: %d" % (c - prev))
        prev = c
    print("ledger batches by time to durable (%d): %s" % (total, ", ".join(parts)))
a = r.get("audit") or {}
print("audit:", "OK" if a.get("ok") else "FAILED " + str(a.get("failure") or a.get("error")))
PY
# The anchor of the confirmed tail: the same disk's syncs with the server idle, as many
# seconds as the open loop (a confirmed answer waits for its batch's sync; one sync that
# stalls for d ms holds every purchase that arrives meanwhile, and at 80 % of the maximum
# the backlog takes about 4 d more to drain).
echo "== 3. the disk alone, ${secs}s after the open loop (seckill-sync-probe)"
build/seckill-sync-probe "$tmp" "$secs" || echo "disk alone: the probe failed (above)"
if [ -n "$gaps_pid" ]; then
  wait "$gaps_pid" || true
  echo "CPUs paused during the open loop (wake-ups of a 1 ms SCHED_FIFO sleeper 2 ms late or more):"
  sed 's/^/  /' "$tmp/gaps.out"
fi
