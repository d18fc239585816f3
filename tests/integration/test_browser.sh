#!/usr/bin/env bash
# The buyer's page and the dashboard, end to end in headless Chromium (tests/browser/e2e.mjs)
# against a real `seckill serve` on a free loopback port with an admin token.
# Installs playwright-core from tests/browser/package-lock.json when it is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SECKILL_SRC=${SECKILL_SRC:-$(cd "$here/../.." && pwd)}
src=$SECKILL_SRC
browser_dir=$src/tests/browser
export SECKILL_BIN=${SECKILL_BIN:-$src/build/seckill}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

for tool in node npm python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (scripts/deps.sh test installs it)"; exit 1; }
done
[ -x "$CHROMIUM" ] || { echo "FAIL: $CHROMIUM not found (scripts/deps.sh test installs chromium)"; exit 1; }
if [ ! -d "$browser_dir/node_modules/playwright-core" ]; then
  echo "installing playwright-core"
  (cd "$browser_dir" && npm ci --no-audit --no-fund)
fi

# sklib starts the server (free port, temp data dir, clean-up) the way every other test does.
exec python3 - "$browser_dir" <<'EOF'
import os, subprocess, sys
sys.path.insert(0, os.path.join(os.environ.get("SECKILL_SRC", ""), "tests", "integration"))
import sklib

browser_dir = sys.argv[1]
token = "browser-test-token"
# Streams end every 6-8 s, so that every test also runs across the page reopening them.
life_ms = 8000
# --demo: "/" shows the demo sale first; --demo-payments: the reservation's Pay button.
with sklib.Server("--stream-lifetime", str(life_ms), "--demo", "--demo-payments", admin_token=token) as srv:
    env = dict(os.environ, SECKILL_URL=f"http://{srv.host}:{srv.port}", SECKILL_ADMIN_TOKEN=token,
               SECKILL_STREAM_LIFETIME_MS=str(life_ms))
    try:
        rc = subprocess.run(["node", "e2e.mjs"], cwd=browser_dir, env=env, timeout=540).returncode
    except subprocess.TimeoutExpired:
        print("FAIL: e2e.mjs did not finish in 540 s")
        rc = 1
    if rc != 0:
        print("--- server output (tail) ---\n" + srv.output()[-5000:])
sys.exit(rc)
EOF
