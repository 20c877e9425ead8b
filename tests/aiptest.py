"""aiptest.py — shared helpers for the ai-peer system tests.

Each test gets a fresh, short AI_PEERS_HOME under /tmp (ipc socket paths are
limited to 107 bytes), runs the real binaries from $AIP_BIN_DIR, and stops
its daemons in tearDown. Nothing here sleeps to synchronise: wait_until()
polls a condition with a deadline.
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get("AIP_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.environ.get("AIP_BIN_DIR", os.path.join(SOURCE_DIR, "build"))
AI_PEER = os.path.join(BIN_DIR, "ai-peer")

#  A command that takes longer than this is a hang, and a failure
COMMAND_TIMEOUT = 60
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def wait_until(condition, timeout=10.0, what="condition", interval=0.01):
    """Poll condition() until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class Result:
    """One finished ai-peer command."""

    def __init__(self, args, rc, stdout, stderr):
        self.args = args
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        try:
            self.doc = json.loads(stdout.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self.doc = None

    def __repr__(self):
        return "<ai-peer %r rc=%s stdout=%r stderr=%r>" % (
            self.args, self.rc, self.stdout[:2000], self.stderr[:2000])


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def proc_ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def proc_is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2] == "Z"
    except (OSError, ValueError, IndexError):
        return True


def daemon_pids(home, name=None):
    """Live daemons (brokerd, storaged, ...) serving home: {pid: name}."""
    found = {}
    homeb = home.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        argv = proc_cmdline(pid)
        if not argv or not argv[0]:
            continue
        exe = os.path.basename(argv[0]).decode(errors="replace")
        if exe not in ("brokerd", "storaged", "spawnd", "relayd", "webd"):
            continue
        if name and exe != name:
            continue
        try:
            i = argv.index(b"--home")
        except ValueError:
            continue
        if i + 1 < len(argv) and argv[i + 1] == homeb and not proc_is_zombie(pid):
            found[pid] = exe
    return found


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not proc_is_zombie(pid)


class AipTestCase(unittest.TestCase):
    """A test with its own AI_PEERS_HOME and daemons."""

    maxDiff = 4000

    def setUp(self):
        self.assertTrue(os.access(AI_PEER, os.X_OK), "no ai-peer in AIP_BIN_DIR=%s" % BIN_DIR)
        self.tmp = tempfile.mkdtemp(prefix="aipt", dir="/tmp")
        self.home = os.path.join(self.tmp, "h")
        self.env = dict(os.environ)
        self.env["AI_PEERS_HOME"] = self.home
        self.env.pop("AI_PEER_RELAY", None)
        #  Daemon sanitizer reports go to daemon.log; keep going to see them all
        self.env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.env.setdefault("LSAN_OPTIONS", "suppressions=" + os.path.join(SOURCE_DIR, "tests",
                                                                           "lsan.supp"))
        self.addCleanup(self._cleanup)

    #  -- running the CLI ------------------------------------------------

    def run_cli(self, *args, input=None, env=None, timeout=COMMAND_TIMEOUT, home=None):
        """Run ai-peer with args (str or bytes); return a Result."""
        e = dict(self.env)
        if home is not None:
            e["AI_PEERS_HOME"] = home
        if env:
            e.update(env)
        argv = [AI_PEER] + list(args)
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=e, timeout=timeout)
        r = Result(args, p.returncode, p.stdout, p.stderr)
        self.check_stderr(r)
        return r

    def check_stderr(self, r):
        text = r.stderr.decode(errors="replace")
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, text, "sanitizer report from ai-peer %r:\n%s" % (r.args, text))

    def assert_envelope(self, r):
        self.assertIsNotNone(r.doc, "stdout is not one JSON document: %r" % r)
        self.assertIsInstance(r.doc, dict, r)
        self.assertIn(r.doc.get("ok"), (True, False), r)
        if r.doc["ok"]:
            self.assertEqual(r.rc, 0, r)
            self.assertIn("data", r.doc, r)
            self.assertNotIn("error", r.doc, r)
        else:
            self.assertEqual(r.rc, 1, r)
            self.assertIsInstance(r.doc.get("error"), str, r)
            self.assertTrue(r.doc["error"].strip(), r)
            self.assertNotIn("data", r.doc, r)

    def ok(self, *args, **kw):
        """Run a command that must succeed; return its data."""
        r = self.run_cli(*args, **kw)
        self.assert_envelope(r)
        self.assertTrue(r.doc["ok"], r)
        return r.doc["data"]

    def fail(self, *args, **kw):
        """Run a command that must fail cleanly; return its error message.

        unittest's own assertions (assertIn, assertTrue, ...) report through
        self.fail(msg) too: those calls raise, as TestCase.fail does, instead
        of running ai-peer with the message (which made them all pass)."""
        if sys._getframe(1).f_globals.get("__name__", "").startswith("unittest"):
            raise self.failureException(args[0] if args else None)
        r = self.run_cli(*args, **kw)
        self.assert_envelope(r)
        self.assertFalse(r.doc["ok"], r)
        return r.doc["error"]

    def new_room(self, name="test"):
        return self.ok("room", "create", name)["id"]

    def read(self, room, n=1000000, *extra):
        return self.ok("chat", room, "-n", str(n), *extra)["messages"]

    #  -- files and processes -------------------------------------------

    def path(self, *parts):
        return os.path.join(self.home, *parts)

    def read_file(self, *parts):
        with open(self.path(*parts), "rb") as f:
            return f.read()

    def daemons(self, name=None):
        return daemon_pids(self.home, name)

    def broker_pid(self):
        pids = [p for p, n in self.daemons().items() if n == "brokerd"]
        #  A child brokerd forked but not yet exec'd (storaged, spawnd...)
        #  still shows brokerd's command line: keep the parent
        pids = [p for p in pids if proc_ppid(p) not in pids]
        return pids[0] if len(pids) == 1 else None

    def assert_one_daemon_set(self):
        """One brokerd and one storaged (spawnd and relayd start beside
        them; a child forked but not yet exec'd shows as brokerd)."""
        seen = {}
        def settled():
            seen.clear()
            seen.update(self.daemons())
            names = sorted(seen.values())
            return (names.count("brokerd") == 1 and names.count("storaged") == 1
                    and set(names) <= {"brokerd", "storaged", "spawnd", "relayd"})
        wait_until(settled, 10, "one daemon set: %r" % self.daemons())
        #  The set that settled: sampling again could catch a child forked
        #  since (a worker restarting) that still shows as brokerd
        return {pid: name for pid, name in seen.items() if name in ("brokerd", "storaged")}

    def storaged_pid(self):
        pids = [p for p, n in self.daemons().items() if n == "storaged"]
        return pids[0] if len(pids) == 1 else None

    def db(self):
        """A read-only connection to peers.db (WAL lets us read beside storaged)."""
        con = sqlite3.connect("file:%s?mode=ro" % self.path("peers.db"), uri=True, timeout=10)
        self.addCleanup(con.close)
        return con

    def daemon_log(self):
        try:
            with open(self.path("daemon.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop_daemons(self, home=None):
        home = home or self.home
        if os.path.isdir(home):
            try:
                self.run_cli("daemon", "stop", home=home, timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for pid in daemon_pids(home):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        wait_until(lambda: not daemon_pids(home), 10, "the daemons of %s to exit" % home)

    def _cleanup(self):
        try:
            self.stop_daemons()
        finally:
            log = self.daemon_log()
            #  AIP_KEEP_TMP=1 keeps the home (daemon.log, peers.db) for a look
            if not os.environ.get("AIP_KEEP_TMP"):
                shutil.rmtree(self.tmp, ignore_errors=True)
        for mark in SANITIZER_MARKS:
            if mark in log:
                raise AssertionError("sanitizer report in daemon.log:\n%s" % log[-20000:])


class ProtoClient:
    """A raw DEALER to the broker speaking the wire protocol."""

    def __init__(self, home, timeout_ms=5000):
        import zmq
        self.zmq = zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect("ipc://%s/run/broker.ipc" % home)
        self.timeout_ms = timeout_ms
        self.next_id = 1

    def close(self):
        self.sock.close(0)
        self.ctx.term()

    def send_raw(self, *frames):
        self.sock.send_multipart(list(frames))

    def recv(self, timeout_ms=None):
        """The next reply, decoded; None on timeout."""
        import msgpack
        if not self.sock.poll(timeout_ms if timeout_ms is not None else self.timeout_ms):
            return None
        frames = self.sock.recv_multipart()
        assert len(frames) == 1, "a reply is one frame, got %d" % len(frames)
        return msgpack.unpackb(frames[0], raw=False)

    def request(self, op, args=None, rid=None, v=1):
        import msgpack
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        body = {"v": v, "id": rid, "op": op, "a": args if args is not None else {}}
        self.send_raw(msgpack.packb(body, use_bin_type=True))
        return rid

    def call(self, op, args=None, timeout_ms=None):
        rid = self.request(op, args)
        while True:
            rep = self.recv(timeout_ms)
            if rep is None or rep.get("id") == rid:
                return rep


def main():
    unittest.main(verbosity=2)


def socket_hostname_id():
    """This machine's host name as ai-peer puts it in peer ids."""
    import re
    import socket
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())
