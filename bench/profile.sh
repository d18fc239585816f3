#!/usr/bin/env bash
# Where an answer goes, in numbers that do not move with the machine's noise, for the
# sold-out answer and for the confirmed, durable purchase, both driven by the same wrk
# script (bench/purchase.lua: every request a new user), server on CPU 1, wrk on CPU 0:
#  1. callgrind: instructions per answer over every thread of the server, split by
#     stage, with the allocator's share and its calls per answer (the server on epoll:
#     valgrind cannot run the io_uring backend's threads, see below);
#  2. natively: server CPU per answer (user, system), context switches per answer and
#     per ledger batch, TCP segments per answer (nstat), and where the CPU goes by thread
#     and by what the kernel was doing (perf, software cpu-clock: the hardware counters
#     of these VMs are not available);
#  3. syscalls per answer (strace -c -f over a short run; strace slows the server, the
#     counts do not move).
# Part 2 runs in a network namespace of its own when `unshare -n` works (root), so that
# nstat counts only this run's segments; otherwise it says the counts include other
# traffic of the machine.
# It measures, it asserts nothing. Usage: bench/profile.sh [seconds] (default 5 per phase;
# under callgrind the server runs ~50x slower, so that phase sees a few thousand answers).
# Environment: IO=epoll|uring|auto (the server's --io; default: the server's default),
# PARTS="callgrind native strace" (which parts), SECKILL=path (the binary to profile,
# e.g. an older build to compare; default build/seckill), PROFILE_KEEP=1 (keep the temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-5}
parts=${PARTS:-callgrind native strace}
io_args=()
[ -n "${IO:-}" ] && io_args=(--io "$IO")

# Part 2 re-runs this script inside a fresh network namespace (loopback only).
if [ "${1:-}" = --netns-child ]; then
  secs=$2 parts=native
  ip link set lo up
fi
need=(wrk)
case $parts in *callgrind*) need+=(valgrind callgrind_control) ;; esac
case $parts in *strace*) need+=(strace) ;; esac
for t in "${need[@]}"; do
  command -v "$t" >/dev/null || {
    echo "bench/profile.sh: needs ${need[*]} (scripts/deps.sh test; apt-get install valgrind strace)" >&2
    exit 2
  }
done
bin=${SECKILL:-build/seckill}
[ -x "$bin" ] || make build >/dev/null
tmp=$(mktemp -d)
SK_PID=''
cleanup() {
  if [ -n "$SK_PID" ]; then kill "$SK_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -n "${PROFILE_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
  return 0
}
trap cleanup EXIT

# Starts the server (optionally under a wrapper), creates the sales "gone" (sold out)
# and "buy" (a billion units). Sets SK_PID and base.
start_server() {
  local port=$1
  shift
  taskset -c 1 "$@" "$bin" serve --listen "127.0.0.1:$port" --threads 1 --data "$tmp/data-$port" \
    --log-level warn "${io_args[@]}" >"$tmp/server-$port.log" 2>&1 &
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

stop_server() {
  kill -TERM "$SK_PID"
  wait "$SK_PID" 2>/dev/null || true
  SK_PID=''
}

metric() { curl -fsS "$base/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
batches() { local b; b=$(metric seckill_ledger_batch_size_count); echo "${b%.*}"; }
# Every run buys as users of its own (a prefix per run): a buyer of an earlier run would
# hear limit_reached, not confirmed.
wrk_run() { # sale seconds -> prints the number of answers
  taskset -c 0 wrk -t1 -c100 -d"$2s" -s bench/purchase.lua "$base" -- "$1" 0 "r$(date +%s%N)-u" 2>&1 |
    awk '/requests in/ {print $1}'
}
sale_of() { [ "$1" = purchase ] && echo buy || echo gone; }

if [[ $parts == *callgrind* ]]; then
  echo "== 1. callgrind: instructions per answer (server on CPU 1 under valgrind, wrk -t1 -c100 on CPU 0)"
  # On epoll whatever IO says: valgrind 3.19 keeps its one lock across io_uring_enter,
  # so the other threads (the ledger) never run while the worker waits there.
  port=$(bench_free_port)
  io_keep=("${io_args[@]}")
  io_args=(--io epoll)
  start_server "$port" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" --separate-threads=no
  io_args=("${io_keep[@]}")
  # wrk runs across the measured window, so that opening connections stays outside it;
  # the answers of the window are the purchase handler's calls in the profile itself.
  for phase in soldout purchase; do
    taskset -c 0 wrk -t1 -c100 -d"$((secs + 4))s" -s bench/purchase.lua "$base" -- "$(sale_of $phase)" 0 \
      "cg-$phase-u" >/dev/null 2>&1 &
    wp=$!
    sleep 2 # warm: connections, caches, SQLite pages
    callgrind_control -z "$SK_PID" >/dev/null
    sleep "$secs"
    callgrind_control -d "$phase" "$SK_PID" >/dev/null
    wait "$wp" || true
  done
  stop_server
  for phase in soldout purchase; do
    f=$(grep -l "^desc: Trigger: Client Request: $phase\|Trigger: .*$phase" "$tmp"/cg.out.* | head -1)
    cp "$f" "$tmp/$phase.cg"
    callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$f" >"$tmp/$phase.incl" 2>/dev/null
    callgrind_annotate --auto=no --threshold=100 "$f" >"$tmp/$phase.excl" 2>/dev/null
  done
  python3 - "$tmp" <<'PY'
import re, sys
tmp = sys.argv[1]

# Frames that are on a thread's stack when the profile is dumped show the whole run as
# their own cost; they are not stages.
FRAMES = {"clone", "clone3", "start_thread", "worker_main", "ledger_main", "sk_loop_run", "sk_loop_run_or_exit", "main", "checkpointer"}

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

def calls(path):
    """Calls per callee name, from the cfn=/calls= lines of a callgrind file."""
    names, out, callee = {}, {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line.strip())
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            callee = names.get(m.group(2)) if m.group(1) else None
        elif line.startswith("calls=") and callee:
            out[callee] = out.get(callee, 0) + int(line[6:].split()[0])
            callee = None
    return out

# Stages of an answer, as inclusive costs of the functions that do them ("a-b": a's
# cost without b's). A stage whose functions are absent from the profile shows 0.
# With io_uring the worker reads and writes through the loop (sk_io_read, sk_io_write;
# the sends leave in one submission per turn, in the loop's own cost).
STAGES = [
    ("loop (wait, timers, submit)", ["epoll_wait", "io_uring_submit_and_wait_timeout", "uring_turn_cqes"]),
    ("read (recv + buffers)", ["conn_read-conn_process"]),
    ("parse (request head)", ["sk_http_parse_request"]),
    ("route", ["sk_router_match", "sk_route_match"]),
    ("api: gate, body, answer", ["sk_api_handle-sk_router_match-sk_route_match-sk_engine_submit-sk_http_respond_ex-sk_http_defer"]),
    ("hand-off to the ledger", ["sk_engine_submit"]),
    ("ledger: take + decide", ["sk_engine_take", "decide_buy",
                                "process_batch-decide_buy-sk_journal_put_batch-sk_engine_complete-sk_engine_flush"]),
    ("ledger: journal + commit", ["sk_journal_put_batch"]),
    ("ledger: publish + complete", ["sk_engine_complete", "sk_engine_flush", "sk_engine_publish_sold"]),
    ("wake-ups (eventfd, futex)", ["sk_async_send", "ledger_wake", "async_on_read-worker_on_async", "futex_wait",
                                   "__futex_abstimed_wait_common"]),
    ("answer (deferred / direct)", ["purchase_done", "sk_http_respond_ex"]),
    ("write (send)", ["conn_flush"]),
]
ALLOC = ["malloc", "calloc", "realloc", "free"]

def cost(funcs, expr):
    parts = expr.split("-")
    v = funcs.get(parts[0], 0)
    for p in parts[1:]:
        v -= funcs.get(p, 0)
    return max(v, 0)

so_t, so_f = load(f"{tmp}/soldout.incl", True)
pu_t, pu_f = load(f"{tmp}/purchase.incl", True)
so_c, pu_c = calls(f"{tmp}/soldout.cg"), calls(f"{tmp}/purchase.cg")
n_so, n_pu = so_c.get("sk_api_purchase", 0), pu_c.get("sk_api_purchase", 0)
print("soldout: %d answers; purchase: %d answers in %d ledger batches (%.1f per batch)"
      % (n_so, n_pu, pu_c.get("sk_journal_put_batch", 0), n_pu / max(pu_c.get("sk_journal_put_batch", 0), 1)))
print()
print("%-30s %14s %14s" % ("stage (instructions/answer)", "sold-out", "purchase"))
for name, exprs in STAGES:
    a = sum(cost(so_f, e) for e in exprs) / max(n_so, 1)
    b = sum(cost(pu_f, e) for e in exprs) / max(n_pu, 1)
    print("%-30s %14.0f %14.0f" % (name, a, b))
so, pu = so_t / max(n_so, 1), pu_t / max(n_pu, 1)
print("%-30s %14.0f %14.0f" % ("total, every thread", so, pu))
print("%-30s %14.0f %14.0f" % ("  of which malloc/free", sum(so_f.get(f, 0) for f in ALLOC) / max(n_so, 1),
                               sum(pu_f.get(f, 0) for f in ALLOC) / max(n_pu, 1)))
print("%-30s %14.2f %14.2f" % ("  malloc/free calls", sum(so_c.get(f, 0) for f in ALLOC) / max(n_so, 1),
                               sum(pu_c.get(f, 0) for f in ALLOC) / max(n_pu, 1)))
print("instructions per confirmed purchase / per sold-out answer: %.2fx   (target <= 1.5)" % (pu / so if so else float("nan")))
for phase, n in (("soldout", n_so), ("purchase", n_pu)):
    _, ex = load(f"{tmp}/{phase}.excl", False)
    top = sorted(ex.items(), key=lambda kv: -kv[1])[:14]
    print(f"\n{phase}: top functions by own instructions per answer")
    for f, ir in top:
        print("  %10.0f  %s" % (ir / max(n, 1), f))
PY
fi

if [[ $parts == *native* ]]; then
  if [ "${1:-}" != --netns-child ] && [ -z "${PROFILE_NO_NETNS:-}" ] && unshare -n true 2>/dev/null; then
    echo
    echo "== 2. natively, in a network namespace of its own (nstat counts this run alone)"
    PROFILE_KEEP=${PROFILE_KEEP:-} IO=${IO:-} SECKILL=$bin unshare -n "$0" --netns-child "$secs"
  else
    [ "${1:-}" = --netns-child ] || {
      echo
      echo "== 2. natively (no private network namespace: the segment counts include the machine's other traffic)"
    }
    port=$(bench_free_port)
    start_server "$port"
    have_perf=''
    if command -v perf >/dev/null && perf record -q -e cpu-clock -o "$tmp/probe.data" -- true >/dev/null 2>&1; then
      have_perf=1
    fi
    ctx() { cat /proc/"$SK_PID"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'; }
    cpu() { awk -v t="$(getconf CLK_TCK)" '{print $14 / t, $15 / t}' /proc/"$SK_PID"/stat; }
    segs() { nstat -az TcpOutSegs 2>/dev/null | awk '$1 == "TcpOutSegs" {print $2}'; }
    # Threads by their names (seckill serve names them; see src/cmd/serve.c).
    for t in /proc/"$SK_PID"/task/*; do echo "${t##*/} $(cat "$t/comm")"; done >"$tmp/threads"
    wrk_run "$(sale_of purchase)" 1 >/dev/null
    wrk_run "$(sale_of soldout)" 1 >/dev/null
    expect() { # the answer each phase is about, counted by the server
      if [ "$1" = purchase ]; then metric 'seckill_purchases_total{sale="buy",result="confirmed"}'
      else metric 'seckill_purchases_total{sale="gone",result="sold_out"}'; fi
    }
    for phase in soldout purchase; do
      e0=$(expect $phase)
      c0=$(ctx)
      read -r u0 s0 <<<"$(cpu)"
      g0=$(segs)
      b0=$(batches)
      if [ -n "$have_perf" ]; then
        perf record -q -e cpu-clock -g -p "$SK_PID" -o "$tmp/perf.$phase" -- sleep "$((secs + 1))" >/dev/null 2>&1 &
        pp=$!
        sleep 0.5
      fi
      n=$(wrk_run "$(sale_of $phase)" "$secs")
      b1=$(batches)
      g1=$(segs)
      read -r u1 s1 <<<"$(cpu)"
      c1=$(ctx)
      [ -n "$have_perf" ] && wait "$pp" 2>/dev/null
      nb=$((b1 - b0))
      e1=$(expect $phase)
      echo "$phase $n $((c1 - c0)) $nb $u0 $u1 $s0 $s1 $((g1 - g0)) $((${e1%.*} - ${e0%.*}))" >>"$tmp/native"
    done
    stop_server
    if [ -n "$have_perf" ]; then
      for phase in soldout purchase; do
        perf script -i "$tmp/perf.$phase" 2>/dev/null >"$tmp/perf.$phase.txt" || true
      done
    fi
    python3 - "$tmp" "$secs" "$have_perf" <<'PY'
import collections, re, sys
tmp, secs, have_perf = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
names = dict(l.split(None, 1) for l in open(f"{tmp}/threads").read().splitlines())
rows = {}
for line in open(f"{tmp}/native"):
    p, n, c, b, u0, u1, s0, s1, g, e = line.split()
    n, c, b, g, e = int(n), int(c), int(b), int(g), int(e)
    rows[p] = dict(n=n, ctx=c / n, batch=(n / b if b else 0), ctx_batch=(c / b if b else 0), expected=e,
                   user=(float(u1) - float(u0)) / n * 1e6, sys=(float(s1) - float(s0)) / n * 1e6, segs=g / n)
print("%-34s %12s %12s" % ("per answer", "sold-out", "purchase"))
so, pu = rows["soldout"], rows["purchase"]
print("%-34s %12d %12d" % ("answers", so["n"], pu["n"]))
print("%-34s %12d %12d" % ("  of which sold_out / confirmed", so["expected"], pu["expected"]))
print("%-34s %12.2f %12.2f" % ("server CPU, user (us)", so["user"], pu["user"]))
print("%-34s %12.2f %12.2f" % ("server CPU, system (us)", so["sys"], pu["sys"]))
print("%-34s %12.3f %12.3f" % ("context switches", so["ctx"], pu["ctx"]))
print("%-34s %12s %12.1f" % ("context switches per ledger batch", "-", pu["ctx_batch"]))
print("%-34s %12s %12.1f" % ("answers per ledger batch", "-", pu["batch"]))
print("%-34s %12.2f %12.2f" % ("TCP segments (both directions)", so["segs"], pu["segs"]))
if not have_perf:
    print("(perf cpu-clock not available: no breakdown by thread)")
    sys.exit(0)

# perf samples: thread, then the kernel's activity (from the user-space syscall wrapper
# and the kernel frames) or user space.
LIBC = {"read": "read", "__libc_read": "read", "__GI___libc_write": "write", "__libc_write": "write",
        "write": "write", "epoll_wait": "epoll_wait", "fdatasync": "fdatasync", "fsync": "fdatasync",
        "__libc_pwrite": "pwrite", "__libc_pwrite64": "pwrite", "pwrite64": "pwrite", "__pwrite64": "pwrite",
        "__libc_pread": "pread", "__libc_pread64": "pread", "pread64": "pread", "accept4": "accept",
        "io_uring_enter": "io_uring_enter", "__sys_io_uring_enter2": "io_uring_enter",
        "__sys_io_uring_enter": "io_uring_enter", "fcntl64": "fcntl", "__libc_fcntl64": "fcntl",
        "__GI___fcntl64_nocancel": "fcntl", "futex_wait": "futex", "__futex_abstimed_wait_common": "futex",
        "__lll_lock_wake": "futex", "__lll_lock_wait": "futex", "___pthread_cond_signal": "futex"}

def samples(path):
    cur = None
    for line in open(path, errors="replace"):
        if not line.strip():
            if cur:
                yield cur
            cur = None
        elif not line[0].isspace():
            cur = (line.split()[1], [])
        elif cur is not None:
            m = re.match(r"\s*([0-9a-f]+)\s+(\S+)", line)
            if m:
                cur[1].append((int(m.group(1), 16) >= 0xffff800000000000, m.group(2).split("+")[0]))
    if cur:
        yield cur

def what(frames):
    kern = [f for k, f in frames if k]
    call = next((LIBC[f] for k, f in frames if not k and f in LIBC), None)
    if not kern:
        return "user"
    if any(f in ("asm_exc_page_fault", "exc_page_fault") for f in kern):
        return "page faults"
    if call is None:
        if any("io_uring" in f for f in kern):
            call = "io_uring_enter"
        elif any(f.startswith(("asm_sysvec", "sysvec", "handle_softirqs", "__irq_exit")) for f in kern):
            return "interrupts"
        else:
            call = "other syscalls"
    if call in ("read", "write"):
        if any(f.startswith("eventfd_") for f in kern):
            call = "eventfd " + call
        elif any(f.startswith(("tcp_", "sock_", "inet_", "unix_stream")) for f in kern):
            call = "socket " + call
    if any(f in ("schedule", "__schedule", "finish_task_switch.isra.0", "finish_task_switch") for f in kern):
        call += " (switching)"
    return "k: " + call

print("\nperf cpu-clock: microseconds of server CPU per answer, by thread and activity")
for phase in ("soldout", "purchase"):
    n = rows[phase]["n"]
    period = 1e6 / 4000  # perf's default cpu-clock frequency: 4000 Hz
    tab = collections.defaultdict(collections.Counter)
    try:
        for tid, frames in samples(f"{tmp}/perf.{phase}.txt"):
            tab[names.get(tid, tid).strip()][what(frames)] += 1
    except FileNotFoundError:
        continue
    # perf sampled secs + 1 s around a wrk run of secs: scale to the run.
    scale = period / n * secs / (secs + 1)
    print(f"  {phase}:")
    for th, cnt in sorted(tab.items(), key=lambda kv: -sum(kv[1].values())):
        tot = sum(cnt.values())
        if tot * scale < 0.05:
            continue
        top = ", ".join("%s %.2f" % (k, v * scale) for k, v in cnt.most_common(8) if v * scale >= 0.05)
        print("    %-14s %6.2f  (%s)" % (th, tot * scale, top))
PY
  fi
fi

if [[ $parts == *strace* ]]; then
  echo
  echo "== 3. syscalls per answer (strace -c -f over 2 s of wrk; the server is slower under strace)"
  port=$(bench_free_port)
  start_server "$port"
  wrk_run "$(sale_of purchase)" 1 >/dev/null
  for phase in soldout purchase; do
    strace -c -f -p "$SK_PID" -o "$tmp/strace.$phase" 2>/dev/null &
    st=$!
    sleep 0.5
    b0=$(batches)
    n=$(wrk_run "$(sale_of $phase)" 2)
    b1=$(batches)
    kill -INT "$st"
    wait "$st" 2>/dev/null || true
    echo "$phase: over $n answers and $((b1 - b0)) ledger batches (per answer | per batch):"
    awk -v n="$n" -v b="$((b1 - b0))" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
        name = $NF; calls = $4
        if (b > 0) printf "  %-16s %7.3f | %6.2f\n", name, calls / n, calls / b
        else printf "  %-16s %7.3f\n", name, calls / n }' "$tmp/strace.$phase" | sort -k2 -nr | head -10
  done
  stop_server
fi
