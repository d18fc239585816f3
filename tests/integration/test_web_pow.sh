#!/usr/bin/env bash
# web/pow.js (the page's proof-of-work solver) in Node's Web Crypto, against the vector
# the server's C test checks (tests/browser/test_pow.mjs). Needs node only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${SECKILL_SRC:-$(cd "$here/../.." && pwd)}
command -v node >/dev/null || { echo "FAIL: node not found (scripts/deps.sh test installs it)"; exit 1; }
exec node "$src/tests/browser/test_pow.mjs"
