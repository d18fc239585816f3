# Shared pieces of the benchmark scripts: free ports, nginx anchor, CPU accounting.
# Benchmarks print numbers and ratios; they assert nothing about speed.

bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# CPU seconds (user+system) a process has used so far, from /proc.
bench_cpu_seconds() {
  local pid=$1 tck
  tck=$(getconf CLK_TCK)
  awk -v t="$tck" '{print ($14+$15)/t}' "/proc/$pid/stat"
}

# CPU seconds (user+system) each thread of a process has used so far, a line per thread:
# "NAME SECONDS" (threads of one name summed; spaces in a name read as "_").
bench_thread_cpu() {
  local pid=$1 tck t
  tck=$(getconf CLK_TCK)
  for t in /proc/"$pid"/task/*; do
    # utime and stime are the 12th and 13th fields after the name's closing parenthesis.
    echo "$({ tr ' ' _ <"$t/comm"; } 2>/dev/null) $({ sed 's/.*) //' "$t/stat"; } 2>/dev/null | awk '{print $12 + $13}')"
  done | awk -v t="$tck" 'NF == 2 { s[$1] += $2 } END { for (k in s) print k, s[k] / t }' | sort
}

# Starts nginx with `return 200 "ok"` on a port, one worker, pinned to a CPU.
# Sets NGINX_PID. Usage: bench_start_nginx DIR PORT CPU
bench_start_nginx() {
  local dir=$1 port=$2 cpu=$3
  mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port reuseport;
    location / { return 200 "ok"; }
  }
}
CONF
  taskset -c "$cpu" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" &
  NGINX_PID=$!
  bench_wait_port "$port"
}

bench_wait_port() {
  local port=$1 i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $port" >&2
  return 1
}

# Runs wrk pinned to a CPU and measures the server's CPU over the run.
# Usage: bench_wrk NAME PID CPU WRK-ARGS... (options, then the URL, then -- script args);
# prints one line of results and sets RPS, CPU_PER_M (server CPU seconds per million
# requests), P99, and ANSWERS (the "answers by status" line of bench/purchase.lua, if any).
bench_wrk() {
  local name=$1 pid=$2 cpu=$3
  shift 3
  local before after out
  before=$(bench_cpu_seconds "$pid")
  out=$(taskset -c "$cpu" wrk "$@" 2>&1)
  after=$(bench_cpu_seconds "$pid")
  RPS=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local total
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  P99=$(echo "$out" | awk '$1=="99%" {print $2}')
  ANSWERS=$(echo "$out" | sed -n 's/^answers by status: *//p')
  CPU_PER_M=$(awk -v a="$after" -v b="$before" -v n="$total" 'BEGIN { if (n>0) printf "%.2f", (a-b)/n*1e6; else print "nan" }')
  printf '%-28s %12s req/s   p99 %-9s  server CPU %6s s per million requests\n' "$name" "$RPS" "${P99:-n/a}" "$CPU_PER_M"
}

bench_ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b>0) printf "%.2f", a/b; else print "nan" }'
}
