#!/usr/bin/env bash
# Run the relay's tests: the real worker under `wrangler dev` (workerd), offline,
# driven over HTTP and WebSocket by node's test runner. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test.sh: node and npm are required (Node >= 20.3)" >&2
  exit 1
fi
if [ ! -x node_modules/.bin/wrangler ] || [ ! -d node_modules/ws ]; then
  npm ci --no-audit --no-fund
fi

unset CLOUDFLARE_API_TOKEN CLOUDFLARE_ACCOUNT_ID CF_API_TOKEN
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

# Each test file starts its own relay on a free port with a temporary --persist-to
# directory; running the files one at a time keeps a 2-core machine responsive.
exec node --test --test-concurrency=1 --test-reporter=spec test/*.test.js
