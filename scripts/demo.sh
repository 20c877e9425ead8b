#!/usr/bin/env bash
#  demo.sh — a first conversation in a local room, with the freshly built
#  ai-peer (daemons start by themselves on the first command).
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${AIP_BIN:-build}/ai-peer
room=$("$peer" room create "first-room" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
"$peer" chat "$room" "Hello from $(whoami) — should we cache the session tokens?"
"$peer" chat "$room" "Yes, with a short TTL and an explicit revoke path." --tool codex
"$peer" export "$room" --format md | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["markdown"])'
