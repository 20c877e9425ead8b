"""test_web.py — the web view (webd, ai-peer web) with real daemons.

test_browser drives headless Chromium (playwright-core, tests/node/
web_browser.mjs): login with the printed URL, rooms, posting, live messages,
an AI answer from a fake tool, an @mention, hostile messages, export, the
cookie and Origin checks. The other tests speak raw HTTP and WebSocket
(tests/webclient.py) for what a browser will not send. Every wait polls a
condition with a deadline.
"""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402
import webclient  # noqa: E402
from aiptest import SOURCE_DIR, wait_until  # noqa: E402

FAKE = os.path.join(SOURCE_DIR, "tests", "fake")
BROWSER_SCRIPT = os.path.join(SOURCE_DIR, "tests", "node", "web_browser.mjs")
CHROMIUM = os.environ.get("AIP_CHROMIUM", "/usr/bin/chromium")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class WebTest(aiptest.AipTestCase):

    def setUp(self):
        super().setUp()
        self.fake_dir = os.path.join(self.tmp, "fake")
        os.makedirs(self.fake_dir)
        self.env["PATH"] = FAKE + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.env["FAKE_AI_DIR"] = self.fake_dir
        for key in list(self.env):
            if key.startswith("FAKE_") and key != "FAKE_AI_DIR":
                del self.env[key]

    def web(self, *args):
        r = self.run_cli("web", *args)
        self.assertEqual(r.rc, 0, r)
        return r.doc["data"]

    def token(self, data):
        return data["url"].split("#t=", 1)[1]

    def webd_pid(self):
        pids = self.daemons("webd")
        return next(iter(pids)) if pids else None

    def page(self, port, cookie, room=None):
        """A logged-in WebSocket that has read its hello (and opened room)."""
        ws = webclient.WebSocket(port, cookie=cookie)
        self.addCleanup(ws.close)
        ws.wait_for(lambda d: d["type"] == "hello")
        if room:
            ws.send({"op": "open", "room": room})
            ws.wait_for(lambda d: d["type"] == "history" and d["room"] == room)
        return ws

    def logged_in(self):
        data = self.web("--port", "0")
        cookie = webclient.login(data["port"], self.token(data))
        self.assertTrue(cookie)
        return data["port"], cookie

    # -- ai-peer web ------------------------------------------------------

    def test_web_command_turns_on_remembers_and_stops(self):
        data = self.web("--port", "0")
        self.assertTrue(data["url"].startswith("http://127.0.0.1:%d/#t=" % data["port"]))
        self.assertRegex(self.token(data), r"^[0-9a-f]{64}$")
        mode = os.stat(self.path("run", "web.token")).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        pid = self.webd_pid()
        self.assertEqual(pid, data["pid"])
        # 127.0.0.1 only
        with open("/proc/net/tcp") as f:
            listening = [l.split() for l in f.readlines()[1:] if l.split()[3] == "0A"]
        ours = [l for l in listening if int(l[1].split(":")[1], 16) == data["port"]]
        self.assertEqual([l[1].split(":")[0] for l in ours], ["0100007F"])
        # Remembered like LAN mode: a restarted daemon set starts webd again
        self.stop_daemons()
        self.assertEqual(self.run_cli("room", "list").rc, 0)
        wait_until(self.webd_pid, 10, "webd to start again with the daemons")
        # A second 'ai-peer web' mints a new URL for the running webd; the old one is dead
        again = self.web()
        self.assertNotEqual(self.token(again), self.token(data))
        self.assertIsNone(webclient.login(again["port"], self.token(data)))
        self.assertTrue(webclient.login(again["port"], self.token(again)))
        # --stop: gone, and not started again
        stopped = self.web("--stop")
        self.assertEqual(stopped["status"], "stopped")
        wait_until(lambda: not self.webd_pid(), 10, "webd to stop")
        self.assertFalse(os.path.exists(self.path("web", "mode")))
        self.stop_daemons()
        self.assertEqual(self.run_cli("room", "list").rc, 0)
        self.assertIsNone(self.webd_pid())
        self.assertEqual(self.web("--stop")["status"], "not running")

    def test_web_on_a_taken_port_says_so(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        try:
            r = self.run_cli("web", "--port", str(port))
            self.assertEqual(r.rc, 1, r)
            self.assertIn("cannot listen on 127.0.0.1:%d" % port, r.doc["error"])
            self.assertIn("--port", r.doc["error"])
            # not left restarting in the background
            self.assertFalse(os.path.exists(self.path("web", "mode")))
            wait_until(lambda: not self.webd_pid(), 10, "webd to stop")
        finally:
            taken.close()
        r = self.run_cli("web", "--port", "70000")
        self.assertEqual(r.rc, 1)

    def test_webd_bad_flags_exit_non_zero_with_a_reason(self):
        webd = os.path.join(aiptest.BIN_DIR, "webd")
        cases = [
            (["--port", "70000"], "webd: --port takes 0 to 65535"),
            (["--port", "-1"], "webd: --port takes 0 to 65535"),
            (["--port", "80x"], "webd: --port takes 0 to 65535"),
            (["--port"], "webd: --port needs a value: P"),
            (["--home"], "webd: --home needs a value: DIR"),
            (["--nope"], "webd: unknown option '--nope'"),
        ]
        for args, reason in cases:
            p = subprocess.run([webd] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=self.env, timeout=30)
            self.assertEqual(p.returncode, 1, args)
            err = p.stderr.decode()
            self.assertIn(reason, err, args)
            self.assertIn("usage: webd [--home DIR] [--endpoint EP] [--port P]", err, args)
        # Nothing started: no run/web.json was written by a refused webd
        self.assertFalse(os.path.exists(self.path("run", "web.json")))

    # -- login, cookie, Origin, Host ---------------------------------------

    def test_login_cookie_origin_and_host_checks(self):
        data = self.web("--port", "0")
        port, token = data["port"], self.token(data)
        # The login shell is public; nothing else is
        status, headers, body = webclient.get(port, "/")
        self.assertEqual(status, 200)
        csp = headers["content-security-policy"]
        for part in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"):
            self.assertIn(part, csp)
        self.assertNotIn("unsafe-inline", csp)
        for path in ("/app.js", "/app.css", "/api/session", "/nothing", "/ws"):
            status, headers, body = webclient.get(port, path)
            self.assertEqual((status, body), (401, b"401 Unauthorized\n"), path)
            self.assertNotIn("access-control-allow-origin", headers)
        # A wrong token, a too long body: refused, and the right token still works
        self.assertIsNone(webclient.login(port, "0" * 64))
        status, _, body = webclient.get(port, "/login", method="POST", body="x" * 10000)
        self.assertEqual(status, 413)
        # no body at all: answered at once, not left waiting
        self.assertEqual(webclient.get(port, "/login", method="POST")[0], 401)
        self.assertEqual(webclient.get(port, "/app.js", method="POST", body="x")[0], 401)
        cookie = webclient.login(port, token)
        self.assertRegex(cookie, r"^[0-9a-f]{64}$")
        # ... once only
        self.assertIsNone(webclient.login(port, token))
        status, _, body = webclient.get(port, "/app.js", cookie=cookie)
        self.assertEqual(status, 200)
        self.assertIn(b"ai-peer web view", body)
        self.assertEqual(webclient.get(port, "/app.js", cookie="f" * 64)[0], 401)
        # Another Host (DNS rebinding) is refused even with the cookie
        self.assertEqual(webclient.get(port, "/app.js", cookie=cookie,
                                       headers={"Host": "evil.example:%d" % port})[0], 403)
        # The WebSocket: cookie and our Origin, both
        with self.assertRaisesRegex(ValueError, "401"):
            webclient.WebSocket(port)
        with self.assertRaisesRegex(ValueError, "403"):
            webclient.WebSocket(port, cookie=cookie, origin="http://evil.example")
        with self.assertRaisesRegex(ValueError, "403"):
            webclient.WebSocket(port, cookie=cookie, origin="http://127.0.0.1:%d" % (port + 1))
        with self.assertRaisesRegex(ValueError, "403"):
            webclient.WebSocket(port, cookie=cookie, origin=False)
        ws = self.page(port, cookie)
        ws.close()
        log = self.daemon_log()
        self.assertNotIn(token, log)
        self.assertNotIn(cookie, log)

    # -- bad input ---------------------------------------------------------

    def test_bad_frames_are_bounded_and_others_keep_being_served(self):
        room = self.new_room("bad-input")
        port, cookie = self.logged_in()
        watcher = self.page(port, cookie, room)
        # Over 1 MiB in one message: closed with 1009
        big = self.page(port, cookie)
        big.send_frame(b'{"op":"send","text":"' + b"a" * (1100 * 1024) + b'"}')
        self.assertEqual(big.closed(), 1009)
        # ... also when it comes in fragments
        frag = self.page(port, cookie)
        for i in range(12):
            frag.send_frame(b"a" * (100 * 1024), opcode=0 if i else 1, fin=False)
        self.assertEqual(frag.closed(), 1009)
        # Not UTF-8, not JSON, binary, unknown ops: a clear error, and the page stays
        odd = self.page(port, cookie)
        odd.send_frame(b'{"op":"rooms","x":"\xff\xfe"}')
        self.assertIn("UTF-8", odd.wait_for(lambda d: d["type"] == "error")["message"])
        odd.send_frame(b"not json")
        self.assertIn("JSON object", odd.wait_for(lambda d: d["type"] == "error")["message"])
        odd.send_frame(b"\x00\x01", opcode=2)
        self.assertIn("binary", odd.wait_for(lambda d: d["type"] == "error")["message"])
        odd.send({"op": "drop-tables"})
        self.assertIn("unknown op", odd.wait_for(lambda d: d["type"] == "error")["message"])
        odd.send({"op": "open", "room": "../../etc"})
        self.assertIn("room id", odd.wait_for(lambda d: d["type"] == "error")["message"])
        odd.send({"op": "send", "room": room, "text": "x" * (256 * 1024 + 1)})
        self.assertIn("limit", odd.wait_for(lambda d: d["type"] == "error")["message"])
        odd.send({"op": "rooms"})
        odd.wait_for(lambda d: d["type"] == "rooms")
        # A flood: refused with a clear error, then closed; the others go on
        flood = self.page(port, cookie)
        # (in one write: webd closes while a slower sender would still write,
        # and the reset would lose what it said)
        flood.sock.sendall(b"".join(flood.frame(b'{"op":"rooms"}') for _ in range(700)))
        self.assertIn("too many requests", flood.wait_for(
            lambda d: d["type"] == "error", timeout=20)["message"])
        self.assertEqual(flood.closed(timeout=20), 1008)
        self.assertIn("requests over the limit: closing it", self.daemon_log())
        self.assertEqual(self.run_cli("chat", room, "still served").rc, 0)
        msg = watcher.wait_for(lambda d: d["type"] == "message"
                               and "still served" in d["message"]["html"])
        self.assertEqual(msg["message"]["room_id"], room)
        odd.send({"op": "rooms"})
        odd.wait_for(lambda d: d["type"] == "rooms")
        self.assertTrue(self.webd_pid())

    def test_a_page_that_stops_reading_is_closed(self):
        room = self.new_room("slow-reader")
        port, cookie = self.logged_in()
        pid = self.webd_pid()
        watcher = self.page(port, cookie, room)
        stuck = self.page(port, cookie, room)
        before = rss_kb(pid)
        # ~200 KiB a message, straight to the broker; the stuck page never
        # reads a byte more
        client = aiptest.ProtoClient(self.home)
        self.addCleanup(client.close)
        me = {"id": "web-test-peer", "name": "loader", "type": "human"}
        text = ("lorem ipsum " * 18000)[:200 * 1024]
        n = 0
        while "page stopped reading" not in self.daemon_log():
            n += 1
            self.assertLess(n, 200, "webd never gave up on the stuck page")
            rep = client.call("msg.send", {"room_id": room, "content": "%d %s" % (n, text),
                                           "peer": me})
            self.assertTrue(rep and rep["ok"], rep)
            watcher.wait_for(lambda d: d["type"] == "message"
                             and d["message"]["html"].startswith("<p>%d " % n), timeout=20)
        # its memory was let go (ASan holds freed memory back: not there),
        # and the others are served
        with open("/proc/%d/maps" % pid) as f:
            sanitized = "libasan" in f.read()
        if not sanitized:
            self.assertLess(rss_kb(pid) - before, 40 * 1024)
        # reset at once: what the kernel held for it is dropped as well
        self.assertIsNone(stuck.closed(timeout=20))
        self.assertEqual(self.run_cli("chat", room, "after the stuck page").rc, 0)
        watcher.wait_for(lambda d: d["type"] == "message"
                         and "after the stuck page" in d["message"]["html"])

    # -- the browser -------------------------------------------------------

    def test_browser(self):
        if not os.access(CHROMIUM, os.X_OK) or not shutil.which("node"):
            if os.environ.get("AIP_WEB_REQUIRED"):
                self.fail("the browser test needs %s and node (scripts/setup.sh installs them)"
                          % CHROMIUM)
            self.skipTest("no chromium or node")
        room = self.new_room("web-room")
        self.assertEqual(self.run_cli("chat", room, "history before the page").rc, 0)
        r = self.run_cli("room", "create", "secret-room", "--password-file", self.pwfile())
        self.assertEqual(r.rc, 0, r)
        room2 = r.doc["data"]["id"]
        data = self.web("--port", "0")
        out = os.path.join(self.tmp, "screens")
        os.makedirs(out)
        env = dict(self.env)
        env.update({"WEB_URL": data["url"], "AIP_CLI": aiptest.AI_PEER, "ROOM": room,
                    "ROOM2": room2, "OUT_DIR": out, "CHROMIUM": CHROMIUM})
        p = subprocess.run(["node", BROWSER_SCRIPT], env=env, capture_output=True,
                           timeout=300)
        stdout, stderr = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 0, "browser test failed:\n%s\n%s" % (stdout, stderr))
        result = json.loads(stdout.strip().splitlines()[-1])
        self.assertTrue(result["ok"])
        self.assertEqual(len(result["latencies_ms"]), 5)
        shot = os.path.join(out, "room.png")
        self.assertGreater(os.path.getsize(shot), 10000)
        keep = os.environ.get("AIP_WEB_SCREENSHOTS")
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(shot, os.path.join(keep, "room.png"))
        sys.stderr.write("\n  CLI -> DOM ms: %s; screenshot %s\n" % (result["latencies_ms"], shot))
        # The fake tools answered through the page's invites
        self.assertTrue(os.path.exists(os.path.join(self.fake_dir, "codex.calls.jsonl")))
        self.assertTrue(os.path.exists(os.path.join(self.fake_dir, "claude.calls.jsonl"))
                        or os.path.exists(os.path.join(self.fake_dir, "claude-code.calls.jsonl")))
        # the page's post in the encrypted room is ciphertext on disk
        with self.db() as db:
            stored = [r[0] for r in db.execute("SELECT content FROM messages WHERE room_id = ?",
                                               (room2,))]
        self.assertTrue(stored)
        self.assertFalse([c for c in stored if "secret from the page" in c])
        log = self.daemon_log()
        self.assertNotIn(self.token(data), log)
        self.assertNotIn("correct horse", log)
        self.assertNotIn("join-secret-pw", log)

    def pwfile(self):
        path = os.path.join(self.tmp, "pw")
        with open(path, "w") as f:
            f.write("correct horse battery\n")
        return path


if __name__ == "__main__":
    aiptest.main()
