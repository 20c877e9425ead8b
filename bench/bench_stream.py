#!/usr/bin/python3
"""bench_stream.py — a tool's first text → visible in `chat -i` (issue 12's target:
≤ 100 ms median beyond the tool's own latency).

`ai-peer chat ROOM -i` runs on a pty, as a person's terminal; each run types
`@alpha …`; alpha (tests/fake/usage_tool.py, a tools.json tool) prints its first
text, notes time.monotonic() at once, then waits. The bench reads the pty and
notes when that text appears there. The difference is what ai-peer adds:
spawnd reading the output, the progress event (coalesced to ≤ 20/s), the
broker's PUB, chat -i drawing it. Then the tool is released and the answer
posted before the next run.

Usage: bench/bench_stream.py [build-dir] [runs]     (Debian's python3)
"""
import json
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
PEER = os.path.join(BUILD, "ai-peer")
TOOL = os.path.join(ROOT, "tests", "fake", "usage_tool.py")


def main():
    work = tempfile.mkdtemp(prefix="aipstream", dir="/tmp")
    home = os.path.join(work, "h")
    os.makedirs(home)
    env = dict(os.environ, AI_PEERS_HOME=home, FAKE_AI_DIR=work, NO_COLOR="1")
    with open(os.path.join(home, "tools.json"), "w") as f:
        json.dump({"tools": {"alpha": {"argv": [sys.executable, TOOL, "alpha"]}}}, f)
    room = json.loads(subprocess.run([PEER, "room", "create", "bench"], env=env,
                                     stdout=subprocess.PIPE, check=True).stdout)["data"]["id"]
    master, slave = pty.openpty()
    chat = subprocess.Popen([PEER, "chat", room, "-i"], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    screen = bytearray()

    def read_until(marker, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = screen.find(marker)
            if at >= 0:
                del screen[:at + len(marker)]
                return time.monotonic()
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                screen.extend(os.read(master, 65536))
        raise SystemExit("timed out waiting for %r" % marker)

    read_until(b"[You]: ")
    added = []
    try:
        for run in range(RUNS):
            for name in ("alpha.release", "alpha.first_at"):
                if os.path.exists(os.path.join(work, name)):
                    os.unlink(os.path.join(work, name))
            first = "token-%d-first" % run
            with open(os.path.join(work, "alpha.first"), "w") as f:
                f.write(first)
            with open(os.path.join(work, "alpha.answer"), "w") as f:
                f.write(first + " and the end of answer %d" % run)
            os.write(master, ("@alpha question %d\r" % run).encode())
            seen = read_until(first.encode())
            stamp = os.path.join(work, "alpha.first_at")
            deadline = time.monotonic() + 10
            while not os.path.exists(stamp) and time.monotonic() < deadline:
                time.sleep(0.001)
            with open(stamp) as f:
                left = float(f.read())
            added.append((seen - left) * 1000)
            open(os.path.join(work, "alpha.release"), "w").close()
            read_until(("end of answer %d" % run).encode())
    finally:
        chat.kill()
        chat.wait()
        subprocess.run([PEER, "daemon", "stop"], env=env, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    added.sort()
    print("runs %d: tool's first text -> on the chat -i terminal, ms: median %.1f, "
          "p90 %.1f, min %.1f, max %.1f" % (len(added), statistics.median(added),
                                           added[int(len(added) * 0.9) - 1], added[0],
                                           added[-1]))


if __name__ == "__main__":
    main()
