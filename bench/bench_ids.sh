#!/bin/sh
#  bench/bench_ids.sh BUILD — 4 connected clients send 20,000 messages each
#  (window 64) into a fresh room: the insert rate with this build's message ids
#  (issue 11 item 3: 64 random bits instead of 20). The daemons start and stop.
B=$1
export AI_PEERS_HOME=$(mktemp -d /tmp/aipids.XXXX)
R=$($B/ai-peer room create bench | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['data']['id'])")
$B/aip_bench send --room $R --clients 4 --messages 20000 --window 64
$B/ai-peer daemon stop >/dev/null
rm -rf $AI_PEERS_HOME
