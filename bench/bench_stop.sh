#!/usr/bin/env bash
#  bench/bench_stop.sh — how long `daemon start` then an immediate `daemon stop`
#  takes (issue 11 item 12: relayd used to hold its SIGTERM while it waited for
#  a storaged that was stopping too, and was killed after the broker's 3 s grace).
#  Usage: bench/bench_stop.sh [build-dir] [runs]      (python3 only)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
exec python3 - "$build/ai-peer" "${2:-10}" <<'EOF2'
import os, shutil, statistics, subprocess, sys, tempfile, time
peer, runs = sys.argv[1], int(sys.argv[2])
import re
stops, kills = [], {}
for _ in range(runs + 1):               # the first is a warm-up
    home = tempfile.mkdtemp(prefix="aipstop", dir="/tmp")
    env = dict(os.environ, AI_PEERS_HOME=home)
    subprocess.run([peer, "daemon", "start"], env=env, stdout=subprocess.DEVNULL, check=True)
    t = time.monotonic()
    subprocess.run([peer, "daemon", "stop"], env=env, stdout=subprocess.DEVNULL, check=True)
    stops.append(time.monotonic() - t)
    with open(os.path.join(home, "daemon.log"), errors="replace") as f:
        for name in re.findall(r"broker: (\w+) \(pid \d+\) ignored SIGTERM", f.read()):
            kills[name] = kills.get(name, 0) + 1
    shutil.rmtree(home, ignore_errors=True)
stops = sorted(stops[1:])
print(f"daemon stop right after start, {runs} runs: median {statistics.median(stops)*1e3:.0f} ms,"
      f" min {stops[0]*1e3:.0f} ms, max {stops[-1]*1e3:.0f} ms;"
      f" daemons killed after ignoring SIGTERM: {kills or 'none'}")
EOF2
