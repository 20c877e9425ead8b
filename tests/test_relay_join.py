#!/usr/bin/python3
"""System test: joining password rooms through our relay under `wrangler dev`.

(a) a join refused for a wrong password leaves nothing behind (room,
members, relay cursor, outbox, key), so the right password then pulls the
whole history; (b) `room join ROOM --relay URL --token T --password PW`
(the original's documented form) works for an aip1 room, whose public key
parameters the creator left in the relay's room info; against a relay that
does not keep them (the original's), the error says to use the connection
string. Never sleeps to synchronise.
"""
import http.server
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_relay import Relay, User, free_port, wait_for, worker_ready  # noqa: E402

PASSWORD = "open sesame"


def room_rows(home, room):
    """What peers.db holds about a room, table by table."""
    path = os.path.join(home, "peers.db")
    if not os.path.exists(path):
        return {}
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        found = {}
        for table, column in (("rooms", "id"), ("room_peers", "room_id"),
                              ("messages", "room_id"), ("relay_cursors", "room_id"),
                              ("outbox", "room_id"), ("lan_members", "room_id")):
            n, = con.execute("SELECT count(*) FROM %s WHERE %s = ?" % (table, column),
                             (room,)).fetchone()
            if n:
                found[table] = n
        return found
    finally:
        con.close()


#  What the original's relay answers on GET /rooms/{room}/info (DESIGN §7)
ORIGINAL_INFO_KEYS = ("room_id", "message_count", "peer_count", "has_token")


class OriginalInfoProxy(http.server.ThreadingHTTPServer):
    """Our relay seen through the original's /info: every request goes to
    the real relay, and /info answers with the original's keys only (it
    keeps no key parameters)."""

    daemon_threads = True

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), OriginalInfoHandler)
        self.upstream = upstream
        self.infos = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()


class OriginalInfoHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        req = urllib.request.Request(self.server.upstream + self.path, data=body,
                                     headers=headers, method=self.command)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        path = urllib.parse.urlparse(self.path).path
        if path.endswith("/info") and status == 200:
            self.server.infos += 1
            doc = json.loads(data)
            data = json.dumps({k: doc[k] for k in ORIGINAL_INFO_KEYS if k in doc}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = forward
    do_POST = forward


class JoinTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        reason = worker_ready()
        if reason:
            raise unittest.SkipTest(reason)
        cls.tmp = tempfile.mkdtemp(prefix="aipj-", dir="/tmp")
        cls.relay = Relay(free_port(), os.path.join(cls.tmp, "relay-state"),
                          os.path.join(cls.tmp, "relay.log"))
        try:
            cls.relay.start()
        except BaseException:
            cls.relay.proc and cls.relay.proc.poll() is None and \
                os.killpg(cls.relay.proc.pid, signal.SIGKILL)
            raise
        cls.users = []

    @classmethod
    def tearDownClass(cls):
        for user in getattr(cls, "users", []):
            user.run("daemon", "stop")
        if getattr(cls, "relay", None):
            cls.relay.stop()
        if getattr(cls, "tmp", None) and not os.environ.get("AIP_KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def user(self, name):
        u = User(os.path.join(self.tmp, "%s-%d" % (name, len(self.users))), name, self.relay.url)
        self.users.append(u)
        return u

    def sealed_room(self, owner, *cipher_args, lines=30):
        room = owner.ok("room", "create", "sealed", "--relay", "default",
                        "--password", PASSWORD, *cipher_args)
        for i in range(lines):
            owner.ok("chat", room["id"], "secret line %02d" % i)
        wait_for("the lines on the relay",
                 lambda: self.relay_count(room["id"], room["token"]) >= lines)
        return room

    def relay_count(self, room, token):
        req = urllib.request.Request("%s/rooms/%s/messages?limit=200" % (self.relay.url, room),
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return sum(1 for m in json.load(r)["messages"] if m.get("type") == "message")

    def secret_lines(self, user, room):
        return sorted(c for c in user.contents(room) if c.startswith("secret line"))

    def assert_wrong_password_leaves_nothing(self, user, room, *join_args):
        rc, doc, err = user.run("room", "join", *join_args, "--password", "not it")
        self.assertEqual(rc, 1, doc)
        self.assertIn("wrong password", doc["error"].lower())
        self.assertNotIn(room, [r["id"] for r in user.ok("room", "list")["rooms"]])
        self.assertEqual(room_rows(user.home, room), {})
        with open(os.path.join(user.home, "daemon.log"), errors="replace") as f:
            log = f.read()
        self.assertNotIn("not it", log)

    # -- (a) a refused join leaves nothing behind ---------------------------

    def test_wrong_password_then_right_one_gets_the_whole_history(self):
        alice, bob = self.user("alice"), self.user("bob")
        for cipher in ("aip1", "fernet"):
            with self.subTest(cipher=cipher):
                room = self.sealed_room(alice, "--cipher", cipher)
                rid, cs = room["id"], room["connection_string"]
                self.assert_wrong_password_leaves_nothing(bob, rid, cs)
                bob.ok("room", "join", cs, "--password", PASSWORD)
                want = ["secret line %02d" % i for i in range(30)]
                self.assertEqual(self.secret_lines(bob, rid), want)
                #  And the room keeps syncing both ways
                alice.ok("chat", rid, "after the join")
                wait_for("bob to read alice", lambda: "after the join" in bob.contents(rid))
                bob.ok("chat", rid, "bob was here")
                wait_for("alice to read bob", lambda: "bob was here" in alice.contents(rid))


    # -- (b) room join ROOM --relay URL --token T --password PW ---------------

    def relay_info(self, room, base=None):
        with urllib.request.urlopen("%s/rooms/%s/info" % (base or self.relay.url, room),
                                    timeout=10) as r:
            return json.load(r)

    def test_original_join_form_opens_an_aip1_room(self):
        alice, bob, eve = self.user("alice"), self.user("bob"), self.user("eve")
        room = self.sealed_room(alice, "--cipher", "aip1", lines=12)
        rid, token = room["id"], room["token"]
        #  The relay keeps the public key parameters, never the key
        info = self.relay_info(rid)
        self.assertEqual(info.get("cipher"), "aip1", info)
        self.assertIn("&kdf=" + info["kdf"], urllib.parse.unquote(room["connection_string"]))
        con = sqlite3.connect(os.path.join(alice.home, "peers.db"))
        local_key, = con.execute("SELECT password FROM rooms WHERE id = ?", (rid,)).fetchone()
        con.close()
        secret = local_key.split(":")[2]
        self.assertNotIn(secret, json.dumps(info))

        form = (rid, "--relay", self.relay.url, "--token", token)
        self.assert_wrong_password_leaves_nothing(eve, rid, *form)
        joined = bob.ok("room", "join", *form, "--password", PASSWORD)
        self.assertEqual(joined["joined"], rid)
        self.assertEqual(self.secret_lines(bob, rid), ["secret line %02d" % i for i in range(12)])
        bob.ok("chat", rid, "bob joined the original way")
        wait_for("alice to read bob",
                 lambda: "bob joined the original way" in alice.contents(rid))

    def test_a_relay_without_key_parameters_says_to_use_the_connection_string(self):
        alice, bob = self.user("alice"), self.user("bob")
        proxy = OriginalInfoProxy(self.relay.url)
        self.addCleanup(proxy.close)
        room = self.sealed_room(alice, "--cipher", "aip1", lines=3)
        rid, token = room["id"], room["token"]
        self.assertNotIn("kdf", self.relay_info(rid, proxy.url))
        rc, doc, err = bob.run("room", "join", rid, "--relay", proxy.url, "--token", token,
                               "--password", PASSWORD)
        self.assertEqual(rc, 1, doc)
        self.assertGreaterEqual(proxy.infos, 1)
        error = doc["error"]
        if os.environ.get("AIP_SHOW"):
            print(error)
        self.assertIn("aip1", error)
        self.assertIn("connection string", error)
        self.assertIn("ai-peer room join 'peer://", error)
        self.assertIn("&cipher=aip1&kdf=", error)
        self.assertNotIn("Wrong password", error)
        self.assertEqual(room_rows(bob.home, rid), {})
        #  What it says to do works
        bob.ok("room", "join", room["connection_string"], "--password", PASSWORD)
        self.assertEqual(len(self.secret_lines(bob, rid)), 3)
        #  And the original's form still opens a Fernet room there, as the original does
        fernet = self.sealed_room(alice, "--cipher", "fernet", lines=3)
        bob.ok("room", "join", fernet["id"], "--relay", proxy.url, "--token", fernet["token"],
               "--password", PASSWORD)
        self.assertEqual(len(self.secret_lines(bob, fernet["id"])), 3)


    # -- (c) a cursor that is not a time does not freeze catch-up --------------

    def test_a_stored_garbage_cursor_does_not_freeze_catch_up(self):
        alice, bob = self.user("alice"), self.user("bob")
        room = alice.ok("room", "create", "plain", "--relay", "default")
        rid = room["id"]
        alice.ok("chat", rid, "before")
        bob.ok("room", "join", room["connection_string"])
        self.assertIn("before", bob.contents(rid))
        bob.ok("daemon", "stop")
        #  What an unchecked sync.cursor left in a peers.db ('zzzz' sorts after every time)
        con = sqlite3.connect(os.path.join(bob.home, "peers.db"))
        with con:
            con.execute("INSERT INTO relay_cursors (room_id, since) VALUES (?, 'zzzz')"
                        " ON CONFLICT(room_id) DO UPDATE SET since = 'zzzz'", (rid,))
        con.close()
        alice.ok("chat", rid, "while bob was away")
        wait_for("bob to catch up past a garbage cursor",
                 lambda: "while bob was away" in bob.contents(rid))
        self.assertEqual(bob.contents(rid).count("while bob was away"), 1)
        #  And the garbage is gone once relayd saves a real cursor
        def saved():
            con = sqlite3.connect("file:%s?mode=ro" % os.path.join(bob.home, "peers.db"), uri=True)
            try:
                return con.execute("SELECT since FROM relay_cursors WHERE room_id = ?",
                                   (rid,)).fetchone()[0] != "zzzz"
            finally:
                con.close()
        wait_for("relayd to replace the garbage cursor", saved)


if __name__ == "__main__":
    unittest.main(verbosity=2)
