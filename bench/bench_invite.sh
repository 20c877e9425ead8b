#!/bin/sh
#  bench_invite.sh — spawnd's overhead per invite, and quick's parallelism.
#
#  usage: bench/bench_invite.sh [BUILD_DIR] [INVITES]
#
#  1. invite overhead: N sequential 'ai-peer invite' of a tool that answers
#     at once (cat, configured in tools.json), minus the tool's own run time
#     (the same cat run directly), compared with a plain CLI round trip
#     ('ai-peer chat ROOM -n 1').
#  2. quick with M tools on M workers, each tool taking 1 s: wall time minus
#     the slowest tool (1 s).
#  Prints a Markdown table; bench/RESULTS-invite.md records one run.
set -eu
BUILD=${1:-build}
N=${2:-50}
BUILD=$(cd "$BUILD" && pwd)
exec /usr/bin/python3 - "$BUILD" "$N" <<'EOF'
import json, os, shutil, statistics, subprocess, sys, tempfile, time

build, n = sys.argv[1], int(sys.argv[2])
cli = os.path.join(build, "ai-peer")
home = tempfile.mkdtemp(prefix="aipb", dir="/tmp")
env = dict(os.environ, AI_PEERS_HOME=home)
INSTANT = "cat >/dev/null; echo ok"
tools = {"instant": {"argv": ["/bin/sh", "-c", INSTANT]}}
for i in range(8):
    tools["slow%d" % i] = {"argv": ["/bin/sh", "-c", "cat >/dev/null; sleep 1; echo ok"]}
with open(os.path.join(home, "tools.json"), "w") as f:
    json.dump({"tools": tools}, f)

def run(*args):
    p = subprocess.run([cli] + list(args), env=env, capture_output=True, check=True)
    return json.loads(p.stdout)

def loop_ms(command, count):
    """Mean wall ms of one run of a shell command, run count times in a
    shell loop (no Python process start in the measure)"""
    script = "i=0; while [ $i -lt %d ]; do %s >/dev/null 2>&1; i=$((i+1)); done" % (count, command)
    best = None
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", script], env=env, check=True)
        ms = (time.perf_counter() - t) * 1000 / count
        best = ms if best is None else min(best, ms)
    return best

try:
    run("daemon", "start", "--workers", "8")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready = [d for d in run("daemon", "status")["data"]["daemons"]
                 if d.get("service") == "spawn" and d["state"] == "ready"]
        if len(ready) == 8:
            break
        time.sleep(0.05)
    room = run("room", "create", "bench")["data"]["id"]
    for i in range(30):
        run("chat", room, "history line %d: some text to make a realistic prompt" % i)
    # the sends below make the history longer: read the invite room separately
    send_room = run("room", "create", "bench-send")["data"]["id"]
    with open(os.path.join(home, "prompt.txt"), "wb") as f:
        f.write(b"x" * 3000)     # about the size of the prompt the tool gets
    tool_ms = loop_ms("/bin/sh -c '%s' < %s/prompt.txt" % (INSTANT, home), n)
    chat_ms = loop_ms("%s chat %s -n 1" % (cli, room), n)
    send_ms = loop_ms("%s chat %s bench-message" % (cli, send_room), n)
    invite_ms = loop_ms("%s invite --tool instant --room %s" % (cli, room), n)
    print("Each line: mean of %d runs in a shell loop, best of 3 loops." % n)
    print()
    print("| measure | ms |")
    print("|---|---|")
    print("| the tool alone (`sh -c 'cat >/dev/null; echo ok'` < 3 KB) | %.1f |" % tool_ms)
    print("| `ai-peer chat ROOM -n 1` (a CLI round trip, for scale) | %.1f |" % chat_ms)
    print("| `ai-peer chat ROOM text` (a durable write, for scale) | %.1f |" % send_ms)
    print("| `ai-peer invite` (30+ messages of history, answer posted) | %.1f |" % invite_ms)
    print("| **invite overhead beyond the tool, CLI included** | **%.1f** |" % (invite_ms - tool_ms))
    print()
    print("| quick, M tools of 1 s on M workers | wall median s | beyond the slowest tool, ms |")
    print("|---|---|---|")
    for m in (1, 2, 4, 8):
        names = ",".join("slow%d" % i for i in range(m))
        walls = []
        for _ in range(5):
            t = time.perf_counter()
            data = run("quick", "bench question", "--tools", names)["data"]
            walls.append(time.perf_counter() - t)
            assert all(v == "ok" for v in data["responses"].values()), data["responses"]
        w = statistics.median(walls)
        print("| M = %d | %.3f | %.0f |" % (m, w, (w - 1.0) * 1000))
finally:
    subprocess.run([cli, "daemon", "stop"], env=env, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)
EOF
