#!/usr/bin/env bash
# Installs the Debian packages seckill needs to build, test and run, if any is missing.
# Usage: scripts/deps.sh [build|test]   (test adds the servers and tools the tests start)
set -euo pipefail
mode=${1:-build}
pkgs=(build-essential cmake pkg-config libsqlite3-dev libjansson-dev libhiredis-dev libpq-dev libmariadb-dev zlib1g-dev libssl-dev liburing-dev)
command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
if [ "$mode" = test ]; then
  pkgs+=(clang clang-format libclang-rt-14-dev redis-server nginx-light postgresql mariadb-server wrk sqlite3 chromium fonts-wqy-microhei procps iproute2 util-linux faketime)
  # A machine may carry Node.js from elsewhere; Debian's nodejs/npm would conflict with it.
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
