#!/usr/bin/env bash
#  bench/run.sh — measures ai-peer and prints a Markdown report.
#  Usage: bench/run.sh [build-dir]      (needs hyperfine, sqlite3, python3)
#  Record what it prints, with the machine, in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
peer=$build/ai-peer
bench=$build/aip_bench
work=$(mktemp -d /tmp/aipbench.XXXXXX)
export AI_PEERS_HOME=$work/home
trap '"$peer" daemon stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
#  hyperfine mean and stddev in ms of one command
timeit() {
    local name=$1; shift
    hyperfine -N --warmup "${WARMUP:-10}" --runs "${RUNS:-100}" --export-json "$work/h.json" "$@" >/dev/null 2>&1
    python3 - "$work/h.json" "$name" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
t = sorted(r["times"])
print(f"| {sys.argv[2]} | {r['mean']*1e3:.1f} | {t[len(t)//2]*1e3:.1f} | {r['stddev']*1e3:.1f} |")
EOF
}

echo "## Machine"
echo
echo "- $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
echo "- $(uname -sr), $(lsb_release -ds 2>/dev/null || head -1 /etc/os-release)"
echo "- date $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo

room=$("$peer" room create bench | json 'd["data"]["id"]')
"$peer" chat "$room" "warm up" >/dev/null

echo "## Latency (ms)"
echo
echo "| what | mean | median | stddev |"
echo "|---|---|---|---|"
timeit "one-shot ZeroMQ request/reply (floor)" "$bench ping"
timeit "warm \`chat\` send" "$peer chat $room hello-from-the-benchmark"
timeit "warm \`chat\` read (-n 20)" "$peer chat $room -n 20"
first="$work/first"
WARMUP=2 RUNS=30 timeit "first command, daemons started by it" \
    --prepare "sh -c 'AI_PEERS_HOME=$first $peer daemon stop >/dev/null 2>&1; rm -rf $first'" \
    "env AI_PEERS_HOME=$first $peer room list"
AI_PEERS_HOME=$first "$peer" daemon stop >/dev/null 2>&1 || true
echo

echo "## Push (interactive mode, relayd)"
echo
echo "- $("$bench" push --room "$room" --count 300)"
echo

echo "## Throughput (msg.send acknowledged after commit)"
echo
for clients in 1 4; do
    echo "- $clients client(s): $("$bench" send --room "$room" --clients $clients --messages 20000 --window 64)"
done
echo

echo "## Large rooms"
echo
#  Fill rooms straight into SQLite (the daemons are stopped meanwhile)
"$peer" daemon stop >/dev/null
big=room-big000000001
tenk=room-tenk00000001
sqlite3 "$AI_PEERS_HOME/peers.db" <<EOF
INSERT INTO rooms (id, name, mode, created_at) VALUES
    ('$big', 'one million', 'local', '2026-01-01T00:00:00.000000+00:00'),
    ('$tenk', 'ten thousand', 'local', '2026-01-01T00:00:00.000000+00:00');
INSERT INTO peers (id, name, type, tool) VALUES ('bench-peer', 'bench', 'ai', 'bench');
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
INSERT INTO messages (id, room_id, peer_id, content, type, metadata, created_at)
SELECT printf('msg-%011x%05x', 1767225600000 + i, i % 1048576), '$big', 'bench-peer',
       'message number ' || i || ' with some typical text of a chat between tools',
       'message', '{}',
       strftime('%Y-%m-%dT%H:%M:%S', 1767225600 + i / 1000, 'unixepoch')
           || printf('.%06d+00:00', (i % 1000) * 1000)
FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9999)
INSERT INTO messages (id, room_id, peer_id, content, type, metadata, created_at)
SELECT printf('msg-%011x%05x', 1767235600000 + i, 0), '$tenk', 'bench-peer',
       'message number ' || i || ' — a line of **Markdown** with \`code\`', 'message', '{}',
       strftime('%Y-%m-%dT%H:%M:%S', 1767225600 + i / 1000, 'unixepoch')
           || printf('.%06d+00:00', (i % 1000) * 1000)
FROM n;
EOF
"$peer" room list >/dev/null
echo "| what | mean | median | stddev |"
echo "|---|---|---|---|"
WARMUP=3 RUNS=30 timeit "\`history -n 1000\` on 1,000,000 messages" "$peer history $big -n 1000"
WARMUP=3 RUNS=30 timeit "\`export --format md\` of 10,000 messages" "$peer export $tenk --format md"
WARMUP=1 RUNS=5 timeit "\`export --format md\` of 1,000,000 messages" "$peer export $big --format md --output $work/big.md"
echo

echo "## Memory"
echo
"$peer" daemon stop >/dev/null
"$peer" room list >/dev/null
pid=$(cat "$AI_PEERS_HOME/daemon.pid")
spid=$(pgrep -P "$pid" storaged || true)
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
b=$(rss "$pid"); s=$(rss "$spid")
echo "- idle RSS: brokerd $((b / 1024)) MiB ($b kB), storaged $((s / 1024)) MiB ($s kB), together $(((b + s) / 1024)) MiB"
