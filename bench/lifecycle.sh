#!/usr/bin/env bash
# The order lifecycle in the embedded engine, in-process (seckill-engine-bench), as
# ratios in one run:
#  1. durable decisions per second with a payment window (every purchase a reservation)
#     vs without (every purchase final), the same engine and load (target >= 0.9x);
#  2. expirations per second: every reservation of run 1 expired in one ledger batch
#     (the ledger's clock moved past every deadline at once), journaled in its one
#     transaction (target >= 1 000 000/s).
# Usage: bench/lifecycle.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-5}
[ -x build/seckill-engine-bench ] || make build >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # NAME ARGS...: runs the engine bench pinned to CPU 1, prints and keeps its output
  local name=$1
  shift
  echo "== $name"
  taskset -c 1 build/seckill-engine-bench --seconds "$secs" --dir "$tmp/$name" "$@" | tee "$tmp/$name.out"
  rm -rf "${tmp:?}/$name"
}

run final
run window --payment-window 3600000 --expire
final=$(awk '/^decisions\/s/ {print $2}' "$tmp/final.out")
window=$(awk '/^decisions\/s/ {print $2}' "$tmp/window.out")
expired=$(awk '/^expirations\/s/ {print $2}' "$tmp/window.out")

echo "== ratios"
echo "durable decisions/s, final purchases:   $final"
echo "durable decisions/s, with a window:     $window"
echo "window / final:                         $(bench_ratio "$window" "$final")x   (target >= 0.9)"
echo "expirations/s (one batch, journaled):   $expired   (target >= 1000000)"
