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

# sklib starts the servers (free port, temp data dir, clean-up) the way every other test
# does. The tests run in two lanes at once (SECKILL_E2E_LANE in e2e.mjs), each its own
# Chromium against a server of its own: they mostly wait on the servers' clocks, and a
# lane's pages see only its own sales (the dashboard lists every sale of its server).
exec python3 - "$browser_dir" <<'EOF'
import contextlib, os, subprocess, sys, time
sys.path.insert(0, os.path.join(os.environ.get("SECKILL_SRC", ""), "tests", "integration"))
import sklib

browser_dir = sys.argv[1]
token = "browser-test-token"
lanes = 2
# Streams end every 6-8 s, so that every test also runs across the page reopening them.
life_ms = 8000
rc = 0
with contextlib.ExitStack() as stack:
    runs = []
    for lane in range(lanes):
        # --demo: "/" shows the demo sale first; --demo-payments: the reservation's Pay button.
        srv = stack.enter_context(sklib.Server("--stream-lifetime", str(life_ms), "--demo", "--demo-payments",
                                               admin_token=token))
        env = dict(os.environ, SECKILL_URL=f"http://{srv.host}:{srv.port}", SECKILL_ADMIN_TOKEN=token,
                   SECKILL_STREAM_LIFETIME_MS=str(life_ms), SECKILL_E2E_LANE=f"{lane}/{lanes}")
        proc = subprocess.Popen(["node", "e2e.mjs"], cwd=browser_dir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        stack.callback(proc.kill)  # a no-op once it has ended
        runs.append((lane, srv, proc))
    deadline = time.monotonic() + 540
    for lane, srv, proc in runs:
        try:
            out, _ = proc.communicate(timeout=max(1, deadline - time.monotonic()))
            failed = proc.returncode != 0
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            out += b"FAIL: e2e.mjs did not finish in 540 s\n"
            failed = True
        print(f"--- lane {lane + 1} of {lanes} ---\n" + out.decode("utf-8", "replace"), end="", flush=True)
        if failed:
            rc = 1
            print("--- server output (tail) ---\n" + srv.output()[-5000:], flush=True)
sys.exit(rc)
EOF
