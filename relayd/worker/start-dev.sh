#!/usr/bin/env bash
# Start the relay locally under `wrangler dev` (workerd), in the foreground.
#
#   start-dev.sh PORT [PERSIST_DIR] [extra wrangler dev args, e.g. --var MAX_PEERS:5]
#
# Listens on http://127.0.0.1:PORT (ws://127.0.0.1:PORT/rooms/{room}/ws).
# State (rooms, tokens, messages) lives in PERSIST_DIR (default: $RELAY_PERSIST_DIR,
# else a fresh temporary directory); pass the same directory again to restart the
# relay with its rooms intact.
# Ready when GET http://127.0.0.1:PORT/health answers 200 (wrangler also prints
# "Ready on http://127.0.0.1:PORT"); that takes 2.5-4 s here, up to ~9 s when busy.
# Runs offline: no Cloudflare account, no metrics, no network.
# The script execs wrangler, so its pid is wrangler's; SIGTERM/SIGINT to it stops
# workerd too. With SIGKILL, kill the process group (start it with setsid) instead.
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 PORT [PERSIST_DIR] [wrangler dev args...]" >&2
  exit 2
fi
PORT=$1; shift
PERSIST=${RELAY_PERSIST_DIR:-}
if [ $# -ge 1 ] && [[ "$1" != -* ]]; then PERSIST=$1; shift; fi
if [ -z "$PERSIST" ]; then PERSIST=$(mktemp -d "${TMPDIR:-/tmp}/ai-peer-relay.XXXXXX"); fi
mkdir -p "$PERSIST"

if [ ! -x node_modules/.bin/wrangler ]; then
  npm ci --no-audit --no-fund >&2
fi

# Offline local mode.
unset CLOUDFLARE_API_TOKEN CLOUDFLARE_ACCOUNT_ID CF_API_TOKEN
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false   # do not fetch the Request.cf placeholder
export WRANGLER_HIDE_BANNER=true
export CI=${CI:-true}                      # no interactive hotkeys, no prompts

# The devtools inspector listens too, on 9229 unless told otherwise: two relays
# started at once (the test suite runs in parallel) would collide there.
inspector=()
if [[ " $* " != *" --inspector-port"* ]]; then
  inspector=(--inspector-port "$(node -e '
    const s = require("net").createServer ();
    s.listen (0, "127.0.0.1", () => { console.log (s.address ().port); s.close (); });')")
fi

echo "ai-peer relay: state in $PERSIST" >&2
exec node_modules/.bin/wrangler dev --port "$PORT" --ip 127.0.0.1 --persist-to "$PERSIST" \
  --local --show-interactive-dev-session=false "${inspector[@]}" "$@"
