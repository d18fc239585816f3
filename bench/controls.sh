#!/usr/bin/env bash
# Quantities and the operator's controls in the embedded engine, in-process
# (seckill-engine-bench), as ratios in one run:
#  1. durable decisions per second with a mix of quantities (1:60,2:30,4:10, all or
#     nothing, units counted) vs one unit each, the same engine and load (target >= 0.9x);
#  2. an operator's control during that flood (add_stock, one every 20 ms), with no more
#     purchases in flight than one batch holds (--window 4096 = the largest batch): its
#     submit-to-answer latency p99 against the p99 of a purchase submitted at the same
#     instant with each control (target <= 1x: a control waits for the batch being
#     committed and is durable with the next, like a purchase). Also printed: the
#     flood's purchases' p99 (they arrive as a batch is taken, so they rarely wait for
#     one being committed) and the commit p99.
# Usage: bench/controls.sh [seconds]
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

run one-unit
run mixed --quantity 1:60,2:30,4:10
run controls --quantity 1:60,2:30,4:10 --controls-every 20 --window 4096
one=$(awk '/^decisions\/s/ {print $2}' "$tmp/one-unit.out")
mixed=$(awk '/^decisions\/s/ {print $2}' "$tmp/mixed.out")
ctl=$(awk '/^control latency/ {print $7}' "$tmp/controls.out")
buy=$(awk '/^purchase latency/ {print $7}' "$tmp/controls.out")
with=$(awk '/^with-control purchase latency/ {print $8}' "$tmp/controls.out")
commit=$(awk '/^commit latency/ {print $10}' "$tmp/controls.out")

echo "== ratios"
echo "durable decisions/s, one unit each:      $one"
echo "durable decisions/s, mixed quantities:   $mixed"
echo "mixed / one unit:                        $(bench_ratio "$mixed" "$one")x   (target >= 0.9)"
echo "control p99 during the flood:            $ctl ms"
echo "same-instant purchase p99:               $with ms"
echo "control p99 / same-instant purchase p99: $(bench_ratio "$ctl" "$with")x   (target <= 1: a control waits like a purchase)"
echo "the flood's purchase p99:                $buy ms   (commit p99 $commit ms)"
