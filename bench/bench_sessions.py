#!/usr/bin/python3
"""bench_sessions.py — what AI sessions save, with the real CLIs offline.

usage: bench/bench_sessions.py bytes   BUILD_DIR [--tools claude,codex] [--rounds 3]
       bench/bench_sessions.py latency BUILD_DIR [--tools claude,codex,gemini,opencode] [-n 5]

bytes: a 3-round `discuss` of 2 tools in a 20-message room. Counts the bytes
  ai-peer writes to each tool's stdin (a wrapper first on PATH tees it: the
  prompt, and for a stdio protocol server its JSON-RPC too) and the bytes of
  the model requests the tools then send (tests/fakemodel.py receives them).
latency: per invite, the model's first text delta (the fake writes it) →
  the tool's stdout line carrying it (a relay between spawnd and the tool
  logs it: the tool's own latency) → the first progress event with text
  seen by a subscriber to the broker's events (ai-peer's share).
Prints JSON; bench/RESULTS-invite.md records the runs.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests"))
import fakemodel  # noqa: E402
import realcli  # noqa: E402

ROOM_MESSAGES = [
    "We need a cache in front of the pricing service: p99 is 800 ms and it is called "
    "on every page view. Requirements follow in the next messages.",
    "Keys are (sku, region, currency); about 2 million distinct keys, 50k hot ones.",
    "Prices change a few times a day, but a stale price for up to 60 s is acceptable.",
    "Memory budget: 512 MB per instance, 12 instances behind a load balancer.",
    "We cannot add Redis this quarter; an in-process cache is the only option.",
]


def seed_text(i):
    base = ROOM_MESSAGES[i % len(ROOM_MESSAGES)]
    return "(%02d) %s Consider also point %d: %s" % (
        i + 1, base, i + 1, "eviction, invalidation and warm-up each matter here. " * 3)


def cli(build, env, *args, timeout=600):
    p = subprocess.run([os.path.join(build, "ai-peer")] + list(args), env=env,
                       capture_output=True, timeout=timeout, cwd=env["HOME"])
    doc = json.loads(p.stdout)
    if not doc.get("ok"):
        raise SystemExit("ai-peer %s failed: %s" % (" ".join(args[:2]), doc.get("error")))
    return doc["data"]


def make_env(build, fake, tmp, wrap_tools=()):
    toolhome = os.path.join(tmp, "toolhome")
    os.makedirs(toolhome, exist_ok=True)
    env = realcli.env("all", fake, toolhome)
    env["AI_PEERS_HOME"] = os.path.join(tmp, "h")
    if wrap_tools:
        wrap = os.path.join(tmp, "wrap")
        os.makedirs(wrap, exist_ok=True)
        for t in wrap_tools:
            path = os.path.join(wrap, t)
            with open(path, "w") as f:
                f.write('#!/bin/sh\n# tee what ai-peer sends the tool\n'
                        'tee -a "%s" | "%s" "$@"\n' % (os.path.join(tmp, t + ".stdin"),
                                                       realcli.binary(t)))
            os.chmod(path, 0o755)
        env["PATH"] = wrap + os.pathsep + env["PATH"]
    return env


def stop(build, env):
    subprocess.run([os.path.join(build, "ai-peer"), "daemon", "stop"], env=env,
                   capture_output=True, timeout=60)


def bench_bytes(build, tools, rounds, messages=20):
    tmp = tempfile.mkdtemp(prefix="aipbs", dir="/tmp")
    try:
        with fakemodel.FakeModel() as fake:
            for i in range(rounds * len(tools)):
                fake.add({"text": "Answer %d: an in-process LRU bounded by bytes, TTL 60 s, "
                                  "with request coalescing on a miss. " % (i + 1) * 4})
            env = make_env(build, fake, tmp, tools)
            room = cli(build, env, "room", "create", "bench-bytes")["id"]
            for i in range(messages):
                cli(build, env, "chat", room, seed_text(i))
            t0 = time.time()
            data = cli(build, env, "discuss", "--tools", ",".join(tools), "--rounds",
                       str(rounds), "--room", room, "--timeout", "300", timeout=1800)
            wall = time.time() - t0
            stop(build, env)
            out = {"build": build, "tools": tools, "rounds": rounds, "room_messages": messages,
                   "invites": data.get("total_invites"), "wall_s": round(wall, 2),
                   "stdin_bytes": {}, "model_request_bytes": {}, "model_requests": {}}
            for t in tools:
                p = os.path.join(tmp, t + ".stdin")
                out["stdin_bytes"][t] = os.path.getsize(p) if os.path.exists(p) else 0
            for api, t in (("anthropic", "claude"), ("responses", "codex"),
                           ("gemini", "gemini"), ("chat", "opencode")):
                if t in tools:
                    reqs = fake.model_requests(api)
                    out["model_request_bytes"][t] = sum(r["bytes"] for r in reqs)
                    out["model_requests"][t] = len(reqs)
            out["stdin_bytes_total"] = sum(out["stdin_bytes"].values())
            out["model_request_bytes_total"] = sum(out["model_request_bytes"].values())
            out["usage"] = data.get("usage")
            return out
    finally:
        if os.environ.get("AIP_KEEP_TMP"):
            print("kept " + tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


LAT_SCRIPT = {"text": "Streaming answer for the latency bench. " * 8, "chunks": 10,
              "first_delay_ms": 300, "chunk_delay_ms": 100}


#  A line of the tool's output that carries a text delta, per tool
DELTA_MARK = {"claude": '"text_delta"', "gemini": '"delta":true',
              "codex": "item/agentMessage/delta", "opencode": "agent_message_chunk"}

RELAY = """#!/usr/bin/python3
# bench relay: runs the real tool, passes stdin and stdout through, and logs
# when each line carrying a text delta left the tool
import os, subprocess, sys, threading, time
p = subprocess.Popen([%(real)r] + sys.argv[1:], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE)
def pump():
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        p.stdin.write(b)
        p.stdin.flush()
    p.stdin.close()
threading.Thread(target=pump, daemon=True).start()
log = open(%(log)r, "a")
for line in p.stdout:
    if %(mark)r.encode() in line:
        log.write("%%f\\n" %% time.time())
        log.flush()
    os.write(1, line)
sys.exit(p.wait())
"""


def bench_latency(build, tools, n):
    """Per invite: the fake writes the first delta (t0); the tool prints
    the line carrying it (t1, logged by a relay between spawnd and the
    tool); a subscriber to the room's events sees the first progress
    event with text (t2). The tool's own latency is t1 - t0, ai-peer's
    share t2 - t1, the whole t2 - t0."""
    import zmq
    import msgpack
    result = {"build": build, "n": n, "tools": {}}
    for tool in tools:
        tmp = tempfile.mkdtemp(prefix="aipbl", dir="/tmp")
        try:
            with fakemodel.FakeModel() as fake:
                env = make_env(build, fake, tmp)
                wrap = os.path.join(tmp, "relay")
                os.makedirs(wrap)
                log = os.path.join(tmp, tool + ".deltas")
                with open(os.path.join(wrap, tool), "w") as f:
                    f.write(RELAY % {"real": realcli.binary(tool), "log": log,
                                     "mark": DELTA_MARK[tool]})
                os.chmod(os.path.join(wrap, tool), 0o755)
                env["PATH"] = wrap + os.pathsep + env["PATH"]
                room = cli(build, env, "room", "create", "bench-latency")["id"]
                cli(build, env, "chat", room, "Say something long.")
                ctx = zmq.Context()
                sub = ctx.socket(zmq.SUB)
                sub.setsockopt(zmq.LINGER, 0)
                sub.connect("ipc://%s/run/events.ipc" % env["AI_PEERS_HOME"])
                sub.setsockopt(zmq.SUBSCRIBE, ("room." + room).encode())
                firsts = {}
                stop_ev = threading.Event()

                def listen():
                    while not stop_ev.is_set():
                        if sub.poll(20):
                            _t, body = sub.recv_multipart()
                            now = time.time()
                            e = msgpack.unpackb(body, raw=False)
                            d = e.get("data") or {}
                            if e.get("type") == "progress" and d.get("text"):
                                firsts.setdefault(d.get("msg_id"), now)
                th = threading.Thread(target=listen, daemon=True)
                th.start()
                own, beyond, whole = [], [], []
                for i in range(n):
                    fake.add(dict(LAT_SCRIPT))
                    before = set(firsts)
                    cli(build, env, "invite", "--tool", tool, "--room", room,
                        "--timeout", "120")
                    t0 = fake.model_requests()[-1]["first_delta_at"]
                    new = [m for m in firsts if m not in before]
                    with open(log) as f:
                        t1s = [float(x) for x in f.read().split() if float(x) >= t0]
                    if new and t0 and t1s:
                        t1, t2 = t1s[0], firsts[new[0]]
                        own.append((t1 - t0) * 1000)
                        beyond.append((t2 - t1) * 1000)
                        whole.append((t2 - t0) * 1000)
                stop_ev.set()
                th.join(2)
                sub.close(0)
                ctx.term()
                stop(build, env)
            entry = {"tool_own_ms": [round(x, 1) for x in own],
                     "beyond_tool_ms": [round(x, 1) for x in beyond],
                     "model_to_visible_ms": [round(x, 1) for x in whole]}
            if beyond:
                entry["tool_own_median_ms"] = round(statistics.median(own), 1)
                entry["beyond_tool_median_ms"] = round(statistics.median(beyond), 1)
                entry["model_to_visible_median_ms"] = round(statistics.median(whole), 1)
            result["tools"][tool] = entry
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["bytes", "latency"])
    ap.add_argument("build")
    ap.add_argument("--tools")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=5)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if a.what == "bytes":
        tools = (a.tools or "claude,codex").split(",")
        print(json.dumps(bench_bytes(build, tools, a.rounds), indent=1))
    else:
        tools = (a.tools or "claude,codex,gemini,opencode").split(",")
        print(json.dumps(bench_latency(build, tools, a.n), indent=1))


if __name__ == "__main__":
    main()
