#!/usr/bin/env bash
# Where a purchase goes, in numbers that do not move with the machine's noise:
#  1. instructions per answer (valgrind --tool=callgrind, every thread of the server)
#     for the sold-out answer and for the confirmed, durable purchase, both driven by the
#     same wrk script (bench/purchase.lua: every request a new user), split by stage;
#  2. natively: context switches per ledger batch and per answer (/proc/<pid>/task/*/status)
#     and syscalls per answer (strace -c -f over a short run).
# It measures, it asserts nothing. Usage: bench/profile.sh [seconds] (default 5 per phase;
# under callgrind the server runs ~50x slower, so the phases see a few thousand requests).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-5}
command -v wrk >/dev/null && command -v valgrind >/dev/null && command -v strace >/dev/null || {
  echo "bench/profile.sh: needs wrk, valgrind and strace (scripts/deps.sh test; apt-get install valgrind strace)" >&2
  exit 2
}
[ -x build/seckill ] || make build >/dev/null
tmp=$(mktemp -d)
SK_PID=''
trap 'kill $SK_PID 2>/dev/null; wait 2>/dev/null; [ -n "${PROFILE_KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"' EXIT

# Starts the server (optionally under a wrapper), creates the sales "gone" (sold out)
# and "buy" (a billion units). Sets SK_PID and base.
start_server() {
  local port=$1
  shift
  taskset -c 1 "$@" build/seckill serve --listen "127.0.0.1:$port" --threads 1 --data "$tmp/data-$port" \
    --log-level warn >"$tmp/server-$port.log" 2>&1 &
  SK_PID=$!
  for _ in $(seq 1 400); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
    sleep 0.05
  done
  base="http://127.0.0.1:$port"
  local now
  now=$(date +%s%3N)
  curl -fsS -o /dev/null -X POST "$base/api/v1/sales" -H 'Content-Type: application/json' \
    -d "{\"id\":\"gone\",\"stock\":1,\"starts_at\":$((now - 1000)),\"ends_at\":$((now + 86400000))}"
  curl -fsS -o /dev/null -X POST "$base/api/v1/sales/gone/purchase" -d '{"user_id":"first"}'
  curl -fsS -o /dev/null -X POST "$base/api/v1/sales" -H 'Content-Type: application/json' \
    -d "{\"id\":\"buy\",\"stock\":1000000000,\"starts_at\":$((now - 1000)),\"ends_at\":$((now + 86400000))}"
}

metric() { curl -fsS "$base/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
wrk_run() { # sale seconds -> prints the number of answers
  taskset -c 0 wrk -t1 -c100 -d"$2s" -s bench/purchase.lua "$base" -- "$1" 2>&1 | awk '/requests in/ {print $1}'
}

echo "== 1. callgrind: instructions per answer (server on CPU 1 under valgrind, wrk -t1 -c100 on CPU 0)"
port=$(bench_free_port)
start_server "$port" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" --separate-threads=no
declare -A answers
for phase in soldout purchase; do
  sale=gone
  [ "$phase" = purchase ] && sale=buy
  wrk_run "$sale" 1 >/dev/null # warm: connections, caches, SQLite pages
  callgrind_control -z "$SK_PID" >/dev/null
  b0=$(metric seckill_ledger_batch_size_count)
  answers[$phase]=$(wrk_run "$sale" "$secs")
  callgrind_control -d "$phase" "$SK_PID" >/dev/null
  b1=$(metric seckill_ledger_batch_size_count)
  echo "$phase: ${answers[$phase]} answers, $((${b1%.*} - ${b0%.*})) ledger batches"
done
kill -TERM "$SK_PID"
wait "$SK_PID" 2>/dev/null || true
SK_PID=''
for phase in soldout purchase; do
  f=$(grep -l "^desc: Trigger: Client Request: $phase\|Trigger: .*$phase" "$tmp"/cg.out.* | head -1)
  callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$f" >"$tmp/$phase.incl" 2>/dev/null
  callgrind_annotate --auto=no --threshold=100 "$f" >"$tmp/$phase.excl" 2>/dev/null
done
python3 - "$tmp" "${answers[soldout]}" "${answers[purchase]}" <<'PY'
import re, sys
tmp, n_so, n_pu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

# Frames that are on a thread's stack when the profile is dumped show the whole run as
# their own cost; they are not stages.
FRAMES = {"clone", "start_thread", "worker_main", "ledger_main", "sk_loop_run", "main", "checkpointer"}

def load(path, inclusive):
    total, funcs = 0, {}
    for line in open(path):
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not m:
            continue
        ir, rest = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in rest:
            total = ir
            continue
        name = rest.split(" [")[0]
        name = name.rsplit(":", 1)[-1].strip()
        if name in FRAMES or name.startswith("int rc"):
            continue
        # A function listed twice (inlined into several files) counts once when inclusive.
        funcs[name] = max(funcs.get(name, 0), ir) if inclusive else funcs.get(name, 0) + ir
    return total, funcs

# Stages of an answer, as inclusive costs of the functions that do them ("a-b": a's
# cost without b's). A stage whose functions are absent from the profile shows 0.
STAGES = [
    ("loop (epoll_wait, timers)", ["epoll_wait"]),
    ("read (recv + buffers)", ["conn_read-conn_process"]),
    ("parse (request head)", ["sk_http_parse_request"]),
    ("route", ["sk_route_match"]),
    ("api: gate, body, answer", ["sk_api_handle-sk_route_match-sk_engine_submit-sk_http_respond_ex-sk_http_defer"]),
    ("hand-off to the ledger", ["sk_engine_submit"]),
    ("ledger: take + decide", ["sk_engine_take", "decide_buy"]),
    ("ledger: journal + commit", ["sk_journal_put_orders"]),
    ("ledger: publish + complete", ["sk_engine_complete", "sk_engine_flush", "sk_engine_publish_sold"]),
    ("wake-ups (eventfd, futex)", ["write-conn_flush", "read-conn_read", "futex_wait", "__futex_abstimed_wait_common"]),
    ("answer (deferred / direct)", ["purchase_done", "sk_http_respond_ex"]),
    ("write (send)", ["conn_flush"]),
]

def cost(funcs, expr):
    parts = expr.split("-")
    v = funcs.get(parts[0], 0)
    for p in parts[1:]:
        v -= funcs.get(p, 0)
    return max(v, 0)

so_t, so_f = load(f"{tmp}/soldout.incl", True)
pu_t, pu_f = load(f"{tmp}/purchase.incl", True)
print()
print("%-30s %14s %14s" % ("stage (instructions/answer)", "sold-out", "purchase"))
for name, exprs in STAGES:
    a = sum(cost(so_f, e) for e in exprs) / max(n_so, 1)
    b = sum(cost(pu_f, e) for e in exprs) / max(n_pu, 1)
    print("%-30s %14.0f %14.0f" % (name, a, b))
so, pu = so_t / max(n_so, 1), pu_t / max(n_pu, 1)
print("%-30s %14.0f %14.0f" % ("total, every thread", so, pu))
print("instructions per confirmed purchase / per sold-out answer: %.2fx   (target <= 1.5)" % (pu / so if so else float("nan")))
for phase, n in (("soldout", n_so), ("purchase", n_pu)):
    _, ex = load(f"{tmp}/{phase}.excl", False)
    top = sorted(ex.items(), key=lambda kv: -kv[1])[:12]
    print(f"\n{phase}: top functions by own instructions per answer")
    for f, ir in top:
        print("  %10.0f  %s" % (ir / max(n, 1), f))
PY

echo
echo "== 2. natively: context switches per batch and per answer, syscalls per answer"
port=$(bench_free_port)
start_server "$port"
ctx() { cat /proc/"$SK_PID"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'; }
cpu() { awk -v t="$(getconf CLK_TCK)" '{print $14 / t, $15 / t}' /proc/"$SK_PID"/stat; }
for phase in soldout purchase; do
  sale=gone
  [ "$phase" = purchase ] && sale=buy
  c0=$(ctx)
  read -r u0 s0 <<<"$(cpu)"
  b0=$(metric seckill_ledger_batch_size_count)
  n=$(wrk_run "$sale" "$secs")
  b1=$(metric seckill_ledger_batch_size_count)
  read -r u1 s1 <<<"$(cpu)"
  c1=$(ctx)
  nb=$((${b1%.*} - ${b0%.*}))
  awk -v p="$phase" -v n="$n" -v c="$((c1 - c0))" -v b="$nb" 'BEGIN {
    printf "%-9s %9d answers, %7d context switches (%.3f per answer", p, n, c, c / n
    if (b > 0) printf ", %.1f per batch of %.1f", c / b, n / b
    print ")" }'
  awk -v n="$n" -v u="$(awk -v a="$u1" -v b="$u0" 'BEGIN {print a - b}')" \
    -v s="$(awk -v a="$s1" -v b="$s0" 'BEGIN {print a - b}')" \
    'BEGIN { printf "          server CPU per answer: %.2f us user + %.2f us system = %.2f us\n", u / n * 1e6, s / n * 1e6, (u + s) / n * 1e6 }'
done
for phase in soldout purchase; do
  sale=gone
  [ "$phase" = purchase ] && sale=buy
  strace -c -f -p "$SK_PID" -o "$tmp/strace.$phase" 2>/dev/null &
  st=$!
  sleep 0.5
  n=$(wrk_run "$sale" 2)
  kill -INT "$st"
  wait "$st" 2>/dev/null || true
  echo "$phase: syscalls per answer over $n answers (under strace):"
  awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 { name = $NF; calls = $4; if (NF == 6) calls = $4; printf "  %-16s %6.3f\n", name, calls / n }' \
    "$tmp/strace.$phase" | sort -k2 -nr | head -8
done
