#!/usr/bin/env bash
# A flash sale from end to end: starts seckill (embedded store) on a free port, floods
# it with seckill-bench, audits the SQLite store against every answer, and prints the
# audit and the times. Nothing here asserts speed; the audit verdict is the exit status.
#
# Usage: bench/flash.sh [flagship|lifecycle|seed]
#   flagship  10 000 000 distinct buyers, 1 000 000 units, per-user limit 1, every buyer
#             tries once, all connections fire at the start instant.
#             Goal: AUDIT OK in under 90 s, load generator included.
#   lifecycle the same crowd and stock with a 20 s payment window: of the reservations
#             70 % pay inside the window, 5 % pay after it (refused), 10 % cancel, 15 %
#             walk away (20 % never pay); the crowd keeps buying for WINDOWS windows, so
#             the units that come back are reserved again, then every reservation left
#             runs out. Audited from the journal (every final state against what the
#             client did, the log replayed). Goal: AUDIT OK in under 120 s in all.
#   seed      10 000 requests over 100 connections for 150 units (the seed documents'
#             scenario; they published 4 276 req/s).
# Environment (defaults in brackets):
#   USERS, STOCK, REQUESTS    scenario size [per scenario]
#   WINDOW [20] WINDOWS [4]   lifecycle: the payment window in seconds, and how many windows the
#                             crowd keeps buying (0: until every unit is sold)
#   PAY [0.7] LATE [0.05] CANCEL [0.1]   lifecycle: the shares of the reservations
#   CONNS [flagship 256, seed 100]   PIPELINE [flagship 16, seed 1]   THREADS [1]
#   SERVER_THREADS [1]        seckill worker threads
#   IO [the server's default]  the server's --io: epoll, uring or auto
#   SERVER_CPU [0] BENCH_CPU [1]  taskset CPU lists; PIN=0 runs both unpinned
#   AUDIT [sqlite]            sqlite (read the store file) or http (the admin listing)
#   EXTRA                     more seckill-bench flags, e.g. "--rate 200000"
#   OUT [build/flash-<scenario>.json]  the JSON report
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
scenario=${1:-flagship}
case $scenario in
flagship)
  users=${USERS:-10000000} stock=${STOCK:-1000000} requests=${REQUESTS:-$users}
  conns=${CONNS:-256} pipeline=${PIPELINE:-16} ;;
lifecycle)
  users=${USERS:-10000000} stock=${STOCK:-1000000} requests=${REQUESTS:-}
  conns=${CONNS:-256} pipeline=${PIPELINE:-16} ;;
seed)
  users=${USERS:-10000} stock=${STOCK:-150} requests=${REQUESTS:-10000}
  conns=${CONNS:-100} pipeline=${PIPELINE:-1} ;;
*)
  sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2 ;;
esac
threads=${THREADS:-1} server_threads=${SERVER_THREADS:-1}
out=${OUT:-build/flash-$scenario.json}
[ -x build/seckill ] && [ -x build/seckill-bench ] || make build >/dev/null
server_pin=() bench_pin=()
if [ "${PIN:-1}" != 0 ]; then
  server_pin=(taskset -c "${SERVER_CPU:-0}") bench_pin=(taskset -c "${BENCH_CPU:-1}")
fi
tmp=$(mktemp -d)
SK_PID=
trap '[ -n "$SK_PID" ] && kill $SK_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

port=$(bench_free_port)
printf 'flash-%s\n' "$RANDOM$RANDOM" >"$tmp/payment.key"
io_args=()
[ -n "${IO:-}" ] && io_args=(--io "$IO")
"${server_pin[@]}" build/seckill serve --listen "127.0.0.1:$port" --threads "$server_threads" \
  --data "$tmp/data" --log-level warn --payment-secret-file "$tmp/payment.key" "${io_args[@]}" \
  >"$tmp/server.log" 2>&1 &
SK_PID=$!
bench_wait_port "$port"

audit=(--audit-sqlite "$tmp/data/seckill.db")
[ "${AUDIT:-sqlite}" = http ] && audit=()
if [ "$scenario" = lifecycle ]; then
  window=${WINDOW:-20}
  # The crowd's time: WINDOWS windows from the start instant, or until every unit is sold.
  crowd=()
  [ "${WINDOWS:-4}" != 0 ] && crowd=(-d "$(awk -v w="$window" -v n="${WINDOWS:-4}" 'BEGIN { print w * n }')s")
  [ -n "$requests" ] && crowd=(--requests "$requests")
  cmd=("${bench_pin[@]}" build/seckill-bench "http://127.0.0.1:$port"
    --create-sale "stock=$stock,limit=1,starts_in=2s,window=${window}s" --users "$users" "${crowd[@]}"
    --pay "${PAY:-0.7}" --late "${LATE:-0.05}" --cancel "${CANCEL:-0.1}" --payment-secret-file "$tmp/payment.key"
    -c "$conns" --pipeline "$pipeline" --threads "$threads" --burst --json "$out" "${audit[@]}")
else
  cmd=("${bench_pin[@]}" build/seckill-bench "http://127.0.0.1:$port"
    --create-sale "stock=$stock,limit=1,starts_in=2s" --users "$users" --requests "$requests"
    -c "$conns" --pipeline "$pipeline" --threads "$threads" --burst --json "$out" "${audit[@]}")
fi
# shellcheck disable=SC2206
cmd+=(${EXTRA:-})
echo "== $scenario: ${cmd[*]}"
cpu0=$(bench_cpu_seconds "$SK_PID")
t0=$(date +%s.%N)
set +e
"${cmd[@]}"
rc=$?
set -e
t1=$(date +%s.%N)
cpu1=$(bench_cpu_seconds "$SK_PID")

python3 - "$out" "$t0" "$t1" "$cpu0" "$cpu1" "$scenario" <<'PY'
import json, sys
path, t0, t1, c0, c1, scenario = sys.argv[1], *map(float, sys.argv[2:6]), sys.argv[6]
r = json.load(open(path))
wall = t1 - t0
flood = r["elapsed_s"]
a = r.get("audit") or {}
print(f"== {scenario}: {r['answers']} answers in {flood:.2f} s of flood = {r['answers_per_s']:.0f} answers/s; "
      f"{r['counts']['confirmed'] + r['counts']['reserved']} orders made in {r['confirm_window_s']:.2f} s")
print(f"   whole command {wall:.1f} s (2 s wait for the start instant, the flood, the audit); "
      f"server CPU {c1 - c0:.1f} s = {(c1 - c0) / max(r['answers'], 1) * 1e6:.2f} us per answer")
print(f"   audit: {'OK' if a.get('ok') else 'FAILED ' + str(a.get('failure') or a.get('error'))}")
phases = r.get("phases") or {}
if phases:
    print("   where the time went: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()) +
          f"; the JSON report and the exit {wall - sum(phases.values()):.2f} s")
if a.get("times"):
    print("   the audit's time: " + ", ".join(f"{k} {v:.2f} s" for k, v in a["times"].items()))
if scenario == "lifecycle":
    life = r["lifecycle"]
    plans = life["plans"]
    fin = r["polls"].get("final", {})
    made = life["reservations"]
    print(f"   {made} reservations of {r['sale']['stock']} units: {made - r['sale']['stock']} more than the stock, "
          f"units that came back and were reserved again")
    for name in ("pay", "pay_late", "cancel", "walk_away"):
        ans = ", ".join(f"{k} {v}" for k, v in plans[name]["answers"].items() if v)
        print(f"     {name:10} {plans[name]['count']:>9}  {'answered: ' + ans if ans else ''}")
    print(f"   at the end: sold {fin.get('sold')}, held {fin.get('held')}, remaining {fin.get('remaining')} "
          f"(the crowd stopped: {r['stop_reason']}); the sale read {r['polls']['reads']} times, "
          f"at most {r['polls']['max_units']} units held or sold")
    if a.get("logged"):
        print(f"   the journal's log replayed: at most {a.get('log_max_units')} units held or sold at once")
    print(f"   goal: clean audit in under 120 s -> {'met' if a.get('ok') and wall < 120 else 'NOT met'} ({wall:.1f} s)")
elif scenario == "flagship":
    print(f"   goal: clean audit in under 90 s -> {'met' if a.get('ok') and wall < 90 else 'NOT met'} ({wall:.1f} s)")
else:
    print(f"   vs the seed documents' 4 276 req/s: {r['answers_per_s'] / 4276:.1f}x")
print(f"   JSON report: {path}")
PY
exit $rc
