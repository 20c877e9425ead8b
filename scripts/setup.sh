#!/usr/bin/env bash
#  setup.sh — install what ai-peer needs on Debian/Ubuntu and build it.
#  Idempotent; runs apt-get only for packages that are missing.
#  Usage: scripts/setup.sh [build-dir] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true

packages=(build-essential cmake pkg-config clang
          libczmq-dev libzmq3-dev libsqlite3-dev libmsgpack-dev libsodium-dev libssl-dev
          libjansson-dev libcurl4-openssl-dev libwebsockets-dev libedit-dev
          python3 python3-zmq python3-msgpack sqlite3 procps iproute2 tmux
          tcpdump libcmark-dev chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

#  The relay worker's tooling (wrangler, workerd) comes from npm
if [ -f relayd/worker/package-lock.json ] && [ ! -d relayd/worker/node_modules ]; then
    (cd relayd/worker && npm ci --no-audit --no-fund --loglevel=error)
fi

#  The real parts the tests drive: the four AI CLIs, the MCP SDK client and
#  the browser driver (tests/node/package.json, exact versions in its lock)
if [ -f tests/node/package-lock.json ] && [ ! -d tests/node/node_modules ]; then
    #  npm install, not npm ci: the registry here serves only this
    #  platform's opencode binaries, so npm ci cannot check the other
    #  platforms' entries of the lock and refuses it; install keeps the
    #  pinned versions and the lock as they are
    (cd tests/node && npm install --no-audit --no-fund --loglevel=error)
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
