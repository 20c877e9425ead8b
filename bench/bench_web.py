"""bench_web.py — the web view's targets (issue: ai-peer web):

  1. a message sent by the CLI -> in the page's DOM (headless Chromium): median
  2. webd's idle RSS: started, and with a page open
  3. 20 open pages on one room: webd CPU per message (utime+stime of webd
     from /proc): 20 Chromium pages over 100 CLI messages, and 0 / 1 / 20
     WebSocket clients that read every frame (the same frames a page gets)
     over 500 messages

usage: AIP_BIN_DIR=build python3 bench/bench_web.py [--n 50] [--messages 500]
Real daemons in a temporary AI_PEERS_HOME; prints one JSON document.
"""
import argparse
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests"))
import aiptest  # noqa: E402
import webclient  # noqa: E402

BIN = os.environ.get("AIP_BIN_DIR", os.path.join(SRC, "build"))
CLI = os.path.join(BIN, "ai-peer")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def webd_pid(home):
    pids = aiptest.daemon_pids(home, "webd")
    return next(iter(pids))


def cli(env, *args):
    p = subprocess.run([CLI] + list(args), env=env, capture_output=True, check=True)
    return json.loads(p.stdout)["data"]


def fan_out(home, env, room, pages, messages):
    """webd CPU seconds for messages sent to room with pages reading it."""
    data = cli(env, "web")
    cookie = webclient.login(data["port"], data["url"].split("#t=")[1])
    socks = []
    for _ in range(pages):
        ws = webclient.WebSocket(data["port"], cookie=cookie)
        ws.wait_for(lambda d: d["type"] == "hello")
        ws.send({"op": "open", "room": room})
        ws.wait_for(lambda d: d["type"] == "history")
        ws.sock.setblocking(False)
        socks.append(ws)
    counts = [0] * pages
    done = threading.Event()

    def reader():
        sel = selectors.DefaultSelector()
        for i, ws in enumerate(socks):
            sel.register(ws.sock, selectors.EVENT_READ, i)
        while not done.is_set():
            for key, _ in sel.select(0.2):
                ws = socks[key.data]
                try:
                    ws.buf += ws.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                while True:     # whole frames in the buffer
                    if len(ws.buf) < 2:
                        break
                    n = ws.buf[1] & 0x7F
                    head = 2 + (2 if n == 126 else 8 if n == 127 else 0)
                    if len(ws.buf) < head:
                        break
                    if n == 126:
                        n = int.from_bytes(ws.buf[2:4], "big")
                    elif n == 127:
                        n = int.from_bytes(ws.buf[2:10], "big")
                    if len(ws.buf) < head + n:
                        break
                    payload, ws.buf = ws.buf[head:head + n], ws.buf[head + n:]
                    if b'"type":"message"' in payload[:40]:
                        counts[key.data] += 1
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    client = aiptest.ProtoClient(home)
    me = {"id": "bench-peer", "name": "bench", "type": "human"}
    pid = webd_pid(home)
    before = cpu_s(pid)
    start = time.monotonic()
    text = "a typical chat line of about two hundred bytes, with **some** Markdown and a `code` span " * 2
    for i in range(messages):
        rep = client.call("msg.send", {"room_id": room, "content": "%d %s" % (i, text), "peer": me})
        assert rep and rep["ok"], rep
    deadline = time.monotonic() + 60
    while min(counts, default=messages) < messages and time.monotonic() < deadline:
        time.sleep(0.01)        # polling the readers' counts, with a deadline
    elapsed = time.monotonic() - start
    used = cpu_s(pid) - before
    done.set()
    t.join()
    client.close()
    for ws in socks:
        ws.close()
    assert min(counts, default=messages) >= messages, counts
    return used, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--browser-pages", type=int, default=20)
    ap.add_argument("--browser-messages", type=int, default=100)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="aipbw", dir="/tmp")
    env = dict(os.environ, AI_PEERS_HOME=home)
    out = {}
    try:
        room = cli(env, "room", "create", "bench-web")["id"]
        data = cli(env, "web", "--port", "0")
        pid = webd_pid(home)
        time.sleep(1)           # settle before reading idle memory (a measurement, not a sync)
        out["webd_rss_kb_idle"] = rss_kb(pid)
        # 1. CLI -> DOM
        e = dict(env, WEB_URL=data["url"], ROOM=room, AIP_CLI=CLI, N=str(args.n),
                 AIP_SOURCE_DIR=SRC, PAGES=str(args.browser_pages), M=str(args.browser_messages),
                 WEBD_PID=str(pid))
        p = subprocess.run(["node", os.path.join(SRC, "bench", "bench_web_dom.mjs")], env=e,
                           capture_output=True, timeout=600)
        if p.returncode:
            sys.exit(p.stderr.decode())
        dom = json.loads(p.stdout.decode().strip().splitlines()[-1])
        if "pages" in dom:
            out["chromium_pages"] = dom.pop("pages")
        for key, values in dom.items():
            out[key] = {"median": statistics.median(values), "min": min(values),
                        "max": max(values), "n": len(values)}
        out["webd_rss_kb_after_page"] = rss_kb(pid)
        # 3. CPU per message, 0 / 1 / 20 pages
        for pages in (0, 1, 20):
            used, elapsed = fan_out(home, env, room, pages, args.messages)
            out["pages_%d" % pages] = {"webd_cpu_ms_per_message": round(used * 1000 / args.messages, 3),
                                       "messages": args.messages, "wall_s": round(elapsed, 2)}
        out["webd_rss_kb_end"] = rss_kb(pid)
    finally:
        subprocess.run([CLI, "daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
