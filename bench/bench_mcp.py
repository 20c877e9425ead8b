#!/usr/bin/python3
"""bench_mcp.py — speed of `ai-peer mcp` and of the hooks (results: bench/RESULTS-mcp.md).

  1. tools/call chat_send round trip on a warm server (request line written
     -> response line read), N calls one after another
  2. wait_messages woken by a message: a call waits; another client stores
     a message (msg.send over the wire protocol, acknowledged after commit);
     the time from that acknowledgement to the response line
  3. a hook run with no news: `ai-peer inbox --tool claude-code --hook stop`
     as a whole process, stdin {"stop_hook_active": false}

usage: bench/bench_mcp.py [BUILD_DIR] [N]   (defaults: build, 300)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import aiptest  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def show(name, values):
    print("%-44s median %7.3f ms   p90 %7.3f   min %7.3f   max %7.3f   (n=%d)" % (
        name, statistics.median(values), pct(values, 0.9), min(values), max(values),
        len(values)))


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..",
                                                                               "build"))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    ai_peer = os.path.join(build, "ai-peer")
    tmp = tempfile.mkdtemp(prefix="aipb", dir="/tmp")
    home = os.path.join(tmp, "h")
    env = dict(os.environ, AI_PEERS_HOME=home)
    try:
        out = subprocess.run([ai_peer, "room", "create", "bench"], env=env,
                             capture_output=True, check=True).stdout
        room = json.loads(out)["data"]["id"]
        p = subprocess.Popen([ai_peer, "mcp", "--tool", "claude-code"], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, bufsize=0)
        rid = [0]

        def call(method, params):
            rid[0] += 1
            p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": rid[0], "method": method,
                                      "params": params}).encode() + b"\n")
            return rid[0]

        def reply():
            return json.loads(p.stdout.readline())

        call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "bench", "version": "1"}})
        reply()
        p.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

        # 1. chat_send round trips (warm: 20 first calls not counted)
        times = []
        for i in range(n + 20):
            t0 = time.perf_counter()
            call("tools/call", {"name": "chat_send",
                                "arguments": {"room": room, "message": "bench %d" % i}})
            r = reply()
            dt = (time.perf_counter() - t0) * 1000
            assert r["result"]["isError"] is False, r
            if i >= 20:
                times.append(dt)
        show("tools/call chat_send round trip", times)
        # mark what is there as seen
        call("tools/call", {"name": "wait_messages", "arguments": {"timeout_s": 0, "n": 10000}})
        reply()

        # 2. wait_messages woken by a message stored by another client
        proto = aiptest.ProtoClient(home)
        wake = []
        peer = {"id": "bench-other", "name": "other", "type": "ai", "tool": "other"}
        for i in range(max(20, n // 10)):
            call("tools/call", {"name": "wait_messages",
                                "arguments": {"room": room, "timeout_s": 30}})
            # until the call waits: its first query answered nothing new
            time.sleep(0.02)
            rep = proto.call("msg.send", {"room_id": room, "content": "wake %d" % i,
                                          "peer": peer})
            stored = time.perf_counter()
            assert rep and rep["ok"], rep
            r = reply()
            woke = time.perf_counter()
            got = r["result"]["structuredContent"]["messages"]
            assert [m["content"] for m in got] == ["wake %d" % i], r
            wake.append((woke - stored) * 1000)
        proto.close()
        show("wait_messages woken, after the store acked", wake)
        p.stdin.close()
        p.wait(10)

        # 3. a hook with no news (the claude-code peer is in the room, all read)
        hook = []
        payload = b'{"hook_event_name":"Stop","stop_hook_active":false}'
        for i in range(n // 3 + 5):
            t0 = time.perf_counter()
            r = subprocess.run([ai_peer, "inbox", "--tool", "claude-code", "--hook", "stop"],
                               input=payload, env=env, capture_output=True)
            dt = (time.perf_counter() - t0) * 1000
            assert r.returncode == 0 and r.stdout == b"", r
            if i >= 5:
                hook.append(dt)
        show("hook run with no news (whole process)", hook)
    finally:
        subprocess.run([ai_peer, "daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
