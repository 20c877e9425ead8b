#!/usr/bin/python3
"""System test: public rooms through our relay under `wrangler dev` on loopback.

Two users (alice, bob) in separate AI_PEERS_HOMEs share a room through the
relay in relayd/worker: create, connection string, join, chat both ways, AI
peers, the relay going away and coming back (queued messages arrive exactly
once), relayd killed mid-flight, and the errors (wrong token, malformed
connection strings, impersonation). Never sleeps to synchronise: every wait
is a poll on a condition with a deadline.
"""
import http.server
import json
import os
import threading
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import unittest
import urllib.error
import urllib.request

BIN = os.environ.get("AIP_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
SRC = os.environ.get("AIP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
WORKER = os.path.join(SRC, "relayd", "worker")
AI_PEER = os.path.join(BIN, "ai-peer")
WARNING = "Relay unreachable — message saved locally only"


def wait_for(what, condition, timeout=30.0, interval=0.05):
    """Poll condition() until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)        # polling interval, not synchronisation
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_ready():
    """Install the worker's node_modules once; a reason string if impossible."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm are not installed"
    if os.path.exists(os.path.join(WORKER, "start-dev.sh")) is False:
        return "relayd/worker/start-dev.sh is missing"
    if not os.path.exists(os.path.join(WORKER, "node_modules", ".bin", "wrangler")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WORKER,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            return "npm ci failed in relayd/worker: " + r.stderr[-400:]
    return None


class Relay:
    """Our relay under wrangler dev, restartable with its state intact."""

    def __init__(self, port, persist, log):
        self.port, self.persist, self.log = port, persist, log
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def start(self):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([os.path.join(WORKER, "start-dev.sh"), str(self.port),
                                      self.persist], stdout=out, stderr=out,
                                     start_new_session=True)
        out.close()
        wait_for("the relay to answer /health", self.healthy, timeout=120, interval=0.2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # workerd may outlive wrangler for a moment: wait until the port is free
        wait_for("the relay to stop", lambda: not self.healthy(), timeout=15)


class User:
    def __init__(self, home, name, relay_url):
        self.home, self.name = home, name
        self.env = dict(os.environ, AI_PEERS_HOME=home, USER=name, AI_PEER_RELAY=relay_url)
        self.env.pop("AI_PEER_RELAY_WAIT_MS", None)

    def run(self, *args, env=None):
        e = dict(self.env, **(env or {}))
        r = subprocess.run([AI_PEER, *args], env=e, capture_output=True, text=True, timeout=60)
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            raise AssertionError(f"not JSON from ai-peer {args}: {r.stdout!r} {r.stderr!r}")
        return r.returncode, doc, r.stderr

    def ok(self, *args, env=None):
        rc, doc, err = self.run(*args, env=env)
        assert rc == 0 and doc["ok"], f"ai-peer {args} failed: {doc} {err}"
        return doc["data"]

    def messages(self, room, n=2000):
        return self.ok("history", room, "-n", str(n))["messages"]

    def contents(self, room):
        return [m["content"] for m in self.messages(room)]

    def relayd_pid(self):
        return self.child_pid("relayd")

    def child_pid(self, name):
        """The pid of the broker's child daemon called name, or None."""
        with open(os.path.join(self.home, "daemon.pid")) as f:
            broker = int(f.read().strip())
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if comm == name and ppid == broker:
                return int(pid)
        return None


class RelayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = worker_ready()
        if reason:
            raise unittest.SkipTest(reason)
        cls.tmp = tempfile.mkdtemp(prefix="aipr-", dir="/tmp")
        cls.relay = Relay(free_port(), os.path.join(cls.tmp, "relay-state"),
                          os.path.join(cls.tmp, "relay.log"))
        try:
            cls.relay.start()
        except BaseException:
            cls.relay.proc and cls.relay.proc.poll() is None and \
                os.killpg(cls.relay.proc.pid, signal.SIGKILL)
            raise
        cls.alice = User(os.path.join(cls.tmp, "a"), "alice", cls.relay.url)
        cls.bob = User(os.path.join(cls.tmp, "b"), "bob", cls.relay.url)
        room = cls.alice.ok("room", "create", "design", "--relay", "default")
        cls.room = room["id"]
        cls.cs = room["connection_string"]
        cls.created = room

    @classmethod
    def tearDownClass(cls):
        for user in (getattr(cls, "alice", None), getattr(cls, "bob", None)):
            if user:
                user.run("daemon", "stop")
        if getattr(cls, "relay", None):
            cls.relay.stop()
        if getattr(cls, "tmp", None) and not os.environ.get("AIP_KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def join_bob(self):
        rooms = [r["id"] for r in self.bob.ok("room", "list")["rooms"]]
        if self.room not in rooms:
            self.bob.ok("room", "join", self.cs)

    # -- the happy path ----------------------------------------------------

    def test_1_create_join_chat(self):
        self.assertEqual(self.created["mode"], "public")
        self.assertEqual(self.created["relay_url"], self.relay.url)
        self.assertEqual(self.cs, f"peer://127.0.0.1:{self.relay.port}/{self.room}"
                                  f"?token={self.created['token']}")
        self.assertRegex(self.created["token"], "^[0-9a-f]{64}$")
        sent = self.alice.ok("chat", self.room, "before bob joined")
        self.assertNotIn("warning", sent)
        rc, doc, err = self.bob.run("room", "join", self.cs)
        self.assertEqual(rc, 0, doc)
        self.assertEqual(doc["data"]["joined"], self.room)
        self.assertEqual(doc["data"]["relay"], self.relay.url)
        self.assertTrue(doc["data"]["remote_info"]["has_token"])
        # the history the relay held is here at once
        self.assertIn("before bob joined", self.bob.contents(self.room))
        self.bob.ok("chat", self.room, "hello alice")
        wait_for("alice to get bob's message",
                 lambda: "hello alice" in self.alice.contents(self.room))
        self.alice.ok("chat", self.room, "hello bob")
        wait_for("bob to get alice's reply", lambda: "hello bob" in self.bob.contents(self.room))
        read = self.bob.ok("chat", self.room)
        self.assertTrue(read["relay_ok"])
        # one "joined the room" per member, from the relay
        joins = [m["peer_id"] for m in self.alice.messages(self.room)
                 if m["type"] == "system" and m["content"] == "joined the room"]
        self.assertEqual(sorted(joins), sorted(set(joins)))
        self.assertEqual(len(joins), 2)

    def test_2_ai_peer_posts_with_its_own_identity(self):
        self.join_bob()
        sent = self.bob.ok("chat", self.room, "--tool", "codex", "codex here")
        self.assertNotIn("warning", sent)
        msg = wait_for("alice to get codex's message",
                       lambda: [m for m in self.alice.messages(self.room)
                                if m["content"] == "codex here"])
        self.assertEqual(msg[0]["peer_id"], sent["sent"]["peer_id"])
        self.assertTrue(msg[0]["peer_id"].endswith("-codex"))
        self.assertEqual(msg[0]["peer_type"], "ai")
        self.assertEqual(msg[0]["peer_tool"], "codex")

    # -- nothing lost, nothing duplicated -----------------------------------

    def test_3_relay_down_sends_queue_and_arrive_once(self):
        self.join_bob()
        self.relay.stop()
        fast = {"AI_PEER_RELAY_WAIT_MS": "300"}
        texts = [f"queued {i}" for i in range(5)]
        for text in texts:
            rc, doc, err = self.alice.run("chat", self.room, text, env=fast)
            self.assertEqual(rc, 0, doc)
            self.assertEqual(doc["data"]["warning"], WARNING)
            self.assertIn(WARNING, err)
        # the local copy has them at once; relay_ok says the room is not in sync
        self.assertEqual([c for c in self.alice.contents(self.room) if c in texts], texts)
        wait_for("relay_ok to turn false",
                 lambda: not self.alice.ok("chat", self.room)["relay_ok"], timeout=20)
        self.relay.start()
        wait_for("bob to get every queued message",
                 lambda: all(t in self.bob.contents(self.room) for t in texts), timeout=60)
        got = [c for c in self.bob.contents(self.room) if c in texts]
        self.assertEqual(got, texts, "each queued message exactly once, in order")
        wait_for("relay_ok to come back", lambda: self.alice.ok("chat", self.room)["relay_ok"])

    def test_4_relayd_killed_mid_flight(self):
        self.join_bob()
        texts = [f"burst {i}" for i in range(30)]
        no_wait = {"AI_PEER_RELAY_WAIT_MS": "0"}
        for i, text in enumerate(texts):
            self.alice.ok("chat", self.room, text, env=no_wait)
            if i in (5, 17):
                pid = wait_for("relayd to run", self.alice.relayd_pid)
                os.kill(pid, signal.SIGKILL)
        wait_for("bob to get the whole burst",
                 lambda: all(t in self.bob.contents(self.room) for t in texts), timeout=60)
        got = [c for c in self.bob.contents(self.room) if c in texts]
        self.assertEqual(len(got), len(texts), "nothing duplicated")
        self.assertEqual(sorted(got), sorted(texts))
        # bob's relayd killed too: it catches up from its cursor
        os.kill(wait_for("bob's relayd", self.bob.relayd_pid), signal.SIGKILL)
        self.alice.ok("chat", self.room, "while bob's relayd was dead")
        wait_for("bob to catch up after his relayd restarted",
                 lambda: "while bob's relayd was dead" in self.bob.contents(self.room))

    def under_fire(self, user):
        rc, doc, err = user.run("history", self.room, "-n", "2000")
        return sum(1 for m in doc["data"]["messages"] if m["content"].startswith("under fire")) \
            if rc == 0 else -1

    def test_4b_storaged_killed_while_messages_arrive(self):
        # Issue 11 item 1: a msg.send that storaged did not answer (worker_lost,
        # unavailable, timeout) is not a refusal: the catch-up must retry it
        self.join_bob()
        no_wait = {"AI_PEER_RELAY_WAIT_MS": "0"}
        senders, each = 4, 50
        texts = [f"under fire {s}-{i}" for s in range(senders) for i in range(each)]
        errors = []

        def send(s):
            for i in range(each):
                rc, doc, err = self.alice.run("chat", self.room, f"under fire {s}-{i}",
                                              env=no_wait)
                if rc != 0:
                    errors.append(doc)

        threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
        for t in threads:
            t.start()
        try:
            for _ in range(4):
                pid = wait_for("bob's storaged to run", lambda: self.bob.child_pid("storaged"))
                # between kills, some messages reach bob (while alice still sends)
                seen = self.under_fire(self.bob)
                wait_for("bob to get more messages", lambda: self.under_fire(self.bob) >= seen + 10
                         or not any(t.is_alive() for t in threads))
                os.kill(pid, signal.SIGKILL)
                wait_for("bob's storaged to restart",
                         lambda: self.bob.child_pid("storaged") not in (None, pid))
        finally:
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        wanted = set(texts)
        missing = lambda: wanted - set(self.bob.contents(self.room))
        try:
            wait_for("bob to get every message sent while his storaged died",
                     lambda: not missing(), timeout=60)
        except AssertionError:
            lost = sorted(missing())
            self.fail(f"bob never got {len(lost)} of {len(texts)} messages: {lost[:10]}")
        got = [c for c in self.bob.contents(self.room) if c in set(texts)]
        self.assertEqual(len(got), len(texts), "nothing duplicated")

    # -- errors ----------------------------------------------------------

    def test_5_wrong_token_is_refused_and_writes_nothing(self):
        carol = User(os.path.join(self.tmp, "c"), "carol", self.relay.url)
        try:
            bad = self.cs.split("?token=")[0] + "?token=" + "0" * 64
            rc, doc, err = carol.run("room", "join", bad)
            self.assertEqual(rc, 1)
            self.assertIn("Invalid join token", doc["error"])
            self.assertEqual(carol.ok("room", "list")["rooms"], [])
        finally:
            carol.run("daemon", "stop")

    def test_6_malformed_connection_strings(self):
        for cs in ("peer://", "peer://127.0.0.1", "peer://127.0.0.1/room-x",
                   "peer://127.0.0.1/room-x?token=", "peer://127.0.0.1/bad id?token=t",
                   "peer://127.0.0.1/../etc?token=t", "http://127.0.0.1/room-x?token=t",
                   "peer://host name/room-x?token=t"):
            rc, doc, err = self.bob.run("room", "join", cs)
            self.assertEqual(rc, 1, cs)
            self.assertFalse(doc["ok"])
            self.assertTrue("connection string" in doc["error"] or "room id" in doc["error"],
                            doc["error"])
        rc, doc, err = self.bob.run("room", "join", "room-abc")
        self.assertEqual(rc, 1)
        self.assertIn("--relay", doc["error"])
        rc, doc, err = self.bob.run("room", "join", "room-abc", "--relay", self.relay.url)
        self.assertEqual(rc, 1)
        self.assertIn("token", doc["error"])

    def test_7_unreachable_relay_rolls_back(self):
        dead = f"http://127.0.0.1:{free_port()}"
        before = self.alice.ok("room", "list")["rooms"]
        rc, doc, err = self.alice.run("room", "create", "nowhere", "--relay", dead)
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach the relay", doc["error"])
        self.assertEqual(self.alice.ok("room", "list")["rooms"], before)
        rc, doc, err = self.alice.run("room", "create", "bad", "--relay", "ftp://x")
        self.assertEqual(rc, 1)
        self.assertIn("https://", doc["error"])

    def test_8_impersonation_is_refused(self):
        self.join_bob()
        alice_id = self.alice.ok("identity")["id"]
        # on the wire: alice's id without alice's secret
        body = json.dumps({"peer_id": alice_id, "peer_name": "alice", "content": "fake",
                           "peer_signature": "0" * 64}).encode()
        req = urllib.request.Request(f"{self.relay.url}/rooms/{self.room}/messages", data=body,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + self.created["token"]})
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(ctx.exception.code, 403)
        # through the CLI: bob's codex peer holds "<host>-codex" on the relay;
        # alice's codex (same host, another secret) cannot speak as it
        self.bob.ok("chat", self.room, "--tool", "codex", "the real codex")
        rc, doc, err = self.alice.run("chat", self.room, "--tool", "codex", "fake codex")
        self.assertEqual(rc, 1, doc)
        self.assertIn("signature", doc["error"])
        self.assertNotIn("fake", self.bob.contents(self.room))

    @unittest.skipUnless(shutil.which("tmux"), "tmux is not installed")
    def test_9b_a_remote_member_cannot_take_the_terminal(self):
        # alice watches in a real terminal; bob, through the relay, sends
        # a name and text full of escape sequences
        self.join_bob()
        tmux = shutil.which("tmux")
        sock = os.path.join(self.tmp, "tmux.sock")
        env = " ".join("%s='%s'" % (k, self.alice.env[k]) for k in ("AI_PEERS_HOME", "USER",
                                                                     "AI_PEER_RELAY"))
        subprocess.run([tmux, "-S", sock, "new-session", "-d", "-s", "t", "-x", "150", "-y",
                        "40", "env %s NO_COLOR=1 %s chat %s -i; sleep 600"
                        % (env, AI_PEER, self.room)], check=True)
        self.addCleanup(lambda: subprocess.run([tmux, "-S", sock, "kill-server"],
                                               stderr=subprocess.DEVNULL))

        def tmux_out(*args):
            return subprocess.run([tmux, "-S", sock] + list(args), stdout=subprocess.PIPE,
                                  check=True).stdout.decode()
        screen = lambda: tmux_out("capture-pane", "-p", "-t", "t")
        wait_for("alice's prompt", lambda: "[You]:" in screen())
        title = tmux_out("display-message", "-p", "-t", "t", "#{pane_title}").strip()
        hostile = ("\x1b]2;PWNED\x07\x1b[2J\x1b[H\x1b[31m[alice]: paint\x1b[0m"
                   "\n[alice]: forged line")
        self.bob.ok("chat", self.room, hostile, "--tool", "evil", "--as",
                    "bo\x1b]0;PWNED-NAME\x07b")
        wait_for("bob's message on alice's screen", lambda: "forged line" in screen())
        rows = screen().split("\n")
        self.assertEqual(tmux_out("display-message", "-p", "-t", "t", "#{pane_title}").strip(),
                         title)
        self.assertTrue([r for r in rows if r.startswith("Room %s" % self.room)], rows)
        # (the name's escapes are gone or shown, whichever part took them)
        self.assertTrue([r for r in rows if r.startswith("[bo") and "\x1b" not in r
                         and r.endswith(" (evil)]: ^[^[^[^[[alice]: paint^[")], rows)
        self.assertIn("    [alice]: forged line", rows)
        self.assertNotIn("\x1b[31m", tmux_out("capture-pane", "-p", "-e", "-t", "t"))
        # alice's room holds bob's text byte-exact
        self.assertIn(hostile, self.alice.contents(self.room))

    def test_9_invite_in_a_public_room_posts_as_the_ai_peer(self):
        self.join_bob()
        fake_dir = os.path.join(self.tmp, "fake")
        os.makedirs(fake_dir, exist_ok=True)
        with open(os.path.join(fake_dir, "claude.answer"), "w") as f:
            f.write("claude's answer through the relay")
        erin = User(os.path.join(self.tmp, "e"), "erin", self.relay.url)
        erin.env["PATH"] = os.path.join(SRC, "tests", "fake") + ":" + erin.env.get("PATH", "")
        erin.env["FAKE_AI_DIR"] = fake_dir
        try:
            erin.ok("room", "join", self.cs)
            data = erin.ok("invite", "--tool", "claude", "--room", self.room)
            self.assertIn("claude's answer", data["response"])
            msg = wait_for("bob to get claude's answer",
                           lambda: [m for m in self.bob.messages(self.room)
                                    if m["content"] == "claude's answer through the relay"])
            #  "claude" is an alias of the built-in peer claude-code
            self.assertTrue(msg[0]["peer_id"].endswith("-claude-code"), msg[0])
            self.assertEqual(msg[0]["peer_type"], "ai")
        finally:
            erin.run("daemon", "stop")


class EncryptedPublicRoomTest(unittest.TestCase):
    """A password room on the relay: the relay holds ciphertext only, the
    other user reads plaintext with the password, a wrong one is refused."""

    @classmethod
    def setUpClass(cls):
        reason = worker_ready()
        if reason:
            raise unittest.SkipTest(reason)
        cls.tmp = tempfile.mkdtemp(prefix="aipe-", dir="/tmp")
        cls.relay = Relay(free_port(), os.path.join(cls.tmp, "relay-state"),
                          os.path.join(cls.tmp, "relay.log"))
        try:
            cls.relay.start()
        except BaseException:
            cls.relay.proc and cls.relay.proc.poll() is None and \
                os.killpg(cls.relay.proc.pid, signal.SIGKILL)
            raise
        cls.alice = User(os.path.join(cls.tmp, "a"), "alice", cls.relay.url)
        cls.bob = User(os.path.join(cls.tmp, "b"), "bob", cls.relay.url)
        cls.eve = User(os.path.join(cls.tmp, "e"), "eve", cls.relay.url)

    @classmethod
    def tearDownClass(cls):
        for user in (getattr(cls, "alice", None), getattr(cls, "bob", None),
                     getattr(cls, "eve", None)):
            if user:
                user.run("daemon", "stop")
        if getattr(cls, "relay", None):
            cls.relay.stop()
        if getattr(cls, "tmp", None) and not os.environ.get("AIP_KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def relay_contents(self, room, token):
        req = urllib.request.Request(f"{self.relay.url}/rooms/{room}/messages?limit=100",
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return [m["content"] for m in json.load(r)["messages"]]

    def check_room(self, cipher_args, prefix):
        room = self.alice.ok("room", "create", "sealed", "--relay", "default",
                             "--password", "open sesame", *cipher_args)
        self.assertTrue(room.get("encrypted"))
        rid, cs = room["id"], room["connection_string"]
        self.alice.ok("chat", rid, "the vault code is 5150")
        wait_for("the message on the relay",
                 lambda: any(c.startswith(prefix) for c in self.relay_contents(rid, room["token"])))
        #  The relay holds ciphertext only
        self.assertFalse(any("5150" in c for c in self.relay_contents(rid, room["token"])))
        #  Without the password, or with a wrong one: refused, nothing saved
        if cipher_args:
            rc, doc, err = self.eve.run("room", "join", cs)
        else:
            rc, doc, err = self.eve.run("room", "join", cs, "--password", "wrong")
        self.assertEqual(rc, 1, doc)
        self.assertIn("password", doc["error"].lower())
        self.assertNotIn(rid, [r["id"] for r in self.eve.ok("room", "list")["rooms"]])
        #  With it: plaintext both ways
        self.bob.ok("room", "join", cs, "--password", "open sesame")
        self.assertIn("the vault code is 5150", self.bob.contents(rid))
        self.bob.ok("chat", rid, "got it, 5150 noted")
        wait_for("alice to read bob", lambda: "got it, 5150 noted" in self.alice.contents(rid))
        self.assertFalse(any("5150" in c for c in self.relay_contents(rid, room["token"])))
        return cs

    def test_aip1_room(self):
        cs = self.check_room(["--cipher", "aip1"], "aip1:")
        self.assertIn("&cipher=aip1&kdf=argon2id13:", cs)

    def test_fernet_room_keeps_the_original_connection_string(self):
        room = self.alice.ok("room", "create", "sealed-f", "--relay", "default",
                             "--password", "open sesame", "--cipher", "fernet")
        self.assertNotIn("cipher=", room["connection_string"])
        rid = room["id"]
        self.alice.ok("chat", rid, "fernet 8080")
        wait_for("the token on the relay",
                 lambda: any(c.startswith("gAAAAA") for c in self.relay_contents(rid, room["token"])))
        rc, doc, err = self.eve.run("room", "join", room["connection_string"], "--password", "wrong")
        self.assertEqual(rc, 1, doc)
        self.bob.ok("room", "join", room["connection_string"], "--password", "open sesame")
        self.assertIn("fernet 8080", self.bob.contents(rid))


class HostileRelay(http.server.ThreadingHTTPServer):
    """A relay that answers with garbage: relayd must survive and keep what is valid."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), HostileHandler)
        self.fetches = 0
        self.posts = []
        self.batches = 0            # POST /batch tried (the original's relay has none)
        self.down = False           # POST /messages answers 503
        self.lock = threading.Lock()

    def handle_error(self, request, client_address):
        pass        # relayd hanging up on an oversized answer is the point


GOOD = {"id": "good0001", "peer_id": "far-away-peer", "peer_name": "far", "peer_tool": "cli",
        "content": "good one", "type": "message", "created_at": "2026-01-01T00:00:01.000Z"}
GARBAGE = [5, "x", None, [], {"id": "bad id!", "peer_id": "p", "content": "bad 1",
                              "created_at": "2026-01-01T00:00:02.000Z"},
           {"id": "bad2", "peer_id": "../etc", "content": "bad 2", "created_at": "t"},
           {"id": "bad3", "peer_id": "p", "content": 42, "created_at": "t"},
           {"id": "bad4", "peer_id": "p", "content": "bad 4"},
           {"id": "bad5", "peer_id": "p", "content": "x" * (300 * 1024), "created_at": "t"},
           {"id": "bad6", "peer_id": "p", "content": "bad 6", "created_at": "9" * 100}]


class HostileHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        srv = self.server
        if self.path.endswith("/info"):
            return self.reply(200, "not json {")
        if "/messages" in self.path:
            with srv.lock:
                srv.fetches += 1
                n = srv.fetches
            if n % 4 == 2:
                return self.reply(200, b"{" * 100000)               # deep nesting
            if n % 4 == 3:
                return self.reply(200, b"[" + b"0," * (9 * 1024 * 1024) + b"0]")  # 18 MiB
            if n % 4 == 0:
                return self.reply(200, json.dumps({"messages": "nope"}))
            return self.reply(200, json.dumps({"messages": GARBAGE + [GOOD]}))
        return self.reply(404, json.dumps({"error": "not found"}))  # no WebSocket here

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path.endswith("/join"):
            return self.reply(201, json.dumps({"id": "x"}))
        if self.path.endswith("/messages"):
            if self.server.down:
                return self.reply(503, "{\"error\": \"down for a moment\"}")
            with self.server.lock:
                self.server.posts.append(json.loads(body))
                first = len(self.server.posts) == 1
            if first:
                return self.reply(500, "{\"error\": \"try later\"}")
            return self.reply(201, body)
        if self.path.endswith("/batch"):
            with self.server.lock:
                self.server.batches += 1
        return self.reply(404, "{}")


class HostileRelayTest(unittest.TestCase):
    """Nothing a relay sends can crash relayd (no wrangler needed)."""

    def test_garbage_from_the_relay(self):
        relay = HostileRelay()
        threading.Thread(target=relay.serve_forever, daemon=True).start()
        tmp = tempfile.mkdtemp(prefix="aiph-", dir="/tmp")
        url = f"http://127.0.0.1:{relay.server_address[1]}"
        dave = User(os.path.join(tmp, "d"), "dave", url)
        try:
            rc, doc, err = dave.run("room", "join", f"peer://127.0.0.1:{relay.server_address[1]}"
                                                    "/room-hostile0001?token=t0k3n")
            self.assertEqual(rc, 0, doc)
            self.assertIn("not yet active", err)             # /info was not JSON
            pid = wait_for("relayd", dave.relayd_pid)
            wait_for("catch-ups of every kind, twice", lambda: relay.fetches >= 8, timeout=60)
            self.assertEqual(dave.relayd_pid(), pid, "relayd survived")
            contents = dave.contents("room-hostile0001")
            self.assertIn("good one", contents)
            self.assertEqual([c for c in contents if c.startswith("bad")], [])
            self.assertEqual(contents.count("good one"), 1)
            # a 500 is retried; the message id is the local one
            sent = dave.ok("chat", "room-hostile0001", "to a flaky relay")
            self.assertNotIn("warning", sent)
            ids = [p.get("id") for p in relay.posts]
            self.assertEqual(ids, [sent["sent"]["id"]] * 2)
            self.assertEqual(dave.relayd_pid(), pid)
            # A relay without the batch endpoint (the original's): a backlog
            # still drains, one by one, in order
            relay.down = True
            fast = {"AI_PEER_RELAY_WAIT_MS": "100"}
            queued = [dave.ok("chat", "room-hostile0001", f"backlog {i}", env=fast)["sent"]["id"]
                      for i in range(4)]
            relay.down = False
            wait_for("the backlog posted", lambda: all(
                i in [p.get("id") for p in relay.posts] for i in queued), timeout=60)
            posted = [p.get("id") for p in relay.posts if p.get("id") in queued]
            self.assertEqual(posted, queued, "each once, in order")
            self.assertGreaterEqual(relay.batches, 1, "a batch was tried first")
        finally:
            dave.run("daemon", "stop")
            relay.shutdown()
            relay.server_close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
