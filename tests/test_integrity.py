"""test_integrity.py — an acknowledged message is the message that was sent.

(a) message ids: pipelined sends that let storaged make the ids never meet,
and an insert that meets an existing id with other content, peer or room is
refused while a retry of the same message stays idempotent; (b) what the
owner's socket takes as a time or a relay cursor is checked (a 'zzzz' cursor
would stop catch-up for good); (c) `daemon status` with a daemon.json that is
garbage or too large, while the daemons serve; (d) a display name two peers
share is shown with each one's peer id wherever a person reads it (export md,
chat -i), while JSON keeps the stored fields as they are.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aiptest import AipTestCase, ProtoClient, main  # noqa: E402


def peer(name):
    return {"id": "test-%s" % name, "name": name, "type": "ai", "tool": name, "machine": "t"}


#  DESIGN §5: msg- + 11 hex digits of ms + at least 16 random hex digits
OWN_MSG_ID = re.compile(r"^msg-[0-9a-f]{11}[0-9a-f]{16,}$")


class TestMessageIds(AipTestCase):

    PIPELINED = 30000       #  sends in flight from one client, 256 at a time
    WINDOW = 256

    def setUp(self):
        super().setUp()
        self.ok("daemon", "start")
        self.client = ProtoClient(self.home, timeout_ms=30000)
        self.addCleanup(self.client.close)

    def send(self, room, content, peer_name="a", **extra):
        args = {"room_id": room, "content": content, "peer": peer(peer_name)}
        args.update(extra)
        return self.client.call("msg.send", args, 30000)

    def test_pipelined_sends_get_distinct_ids(self):
        room = self.new_room("pipelined")
        pending = {}
        acked = {}
        sent = 0
        while sent < self.PIPELINED or pending:
            while sent < self.PIPELINED and len(pending) < self.WINDOW:
                content = "p%06d" % sent
                rid = self.client.request("msg.send", {"room_id": room, "content": content,
                                                       "peer": peer("burst")})
                pending[rid] = content
                sent += 1
            rep = self.client.recv(30000)
            self.assertIsNotNone(rep, "no reply with %d sends pending" % len(pending))
            content = pending.pop(rep["id"])
            self.assertTrue(rep.get("ok"), rep)
            self.assertEqual(rep["data"]["content"], content, "acknowledged with another message")
            self.assertRegex(rep["data"]["id"], OWN_MSG_ID)
            acked[rep["data"]["id"]] = content
        self.assertEqual(len(acked), self.PIPELINED, "two sends were acknowledged with one id")
        rows = dict(self.db().execute(
            "SELECT id, content FROM messages WHERE room_id = ? AND type = 'message'",
            (room,)).fetchall())
        self.assertEqual(rows, acked)

    def test_forged_colliding_id_is_refused(self):
        room = self.new_room("forged")
        other = self.new_room("other")
        mid = "msg-forged0001"
        first = self.send(room, "the original", id=mid)
        self.assertTrue(first["ok"], first)
        self.assertEqual(first["data"]["id"], mid)

        #  Another message under the same id: refused, not answered ok with the stored one
        for what, rep in (
                ("content", self.send(room, "an impostor", id=mid)),
                ("peer", self.send(room, "the original", peer_name="b", id=mid)),
                ("room", self.send(other, "the original", id=mid))):
            self.assertIs(rep["ok"], False, "%s differs but the send was acknowledged: %r"
                          % (what, rep))
            self.assertEqual(rep["error"]["code"], "invalid", rep)
            self.assertIn(mid, rep["error"]["message"])
            self.assertIn("new id", rep["error"]["message"])

        #  A retry of the identical message is idempotent (created_at and
        #  metadata may differ: the relay restamps and drops them)
        retry = self.send(room, "the original", id=mid, created_at="2030-01-01T00:00:00.000Z",
                          metadata='{"retry": 1}')
        self.assertTrue(retry["ok"], retry)
        self.assertEqual(retry["data"]["id"], mid)
        self.assertEqual(retry["data"]["content"], "the original")
        self.assertEqual(retry["data"]["created_at"], first["data"]["created_at"])

        rows = self.db().execute("SELECT room_id, peer_id, content FROM messages WHERE id = ?",
                                 (mid,)).fetchall()
        self.assertEqual(rows, [(room, "test-a", "the original")])

    def test_cli_ids_have_64_random_bits(self):
        room = self.new_room()
        ids = {self.ok("chat", room, "m%d" % i)["sent"]["id"] for i in range(3)}
        self.assertEqual(len(ids), 3)
        for mid in ids:
            self.assertRegex(mid, OWN_MSG_ID)



class TestOwnerSocket(AipTestCase):

    def setUp(self):
        super().setUp()
        self.ok("daemon", "start")
        self.client = ProtoClient(self.home)
        self.addCleanup(self.client.close)

    def test_created_at_must_be_an_iso_utc_time(self):
        room = self.new_room()
        for bad in ("zzzz", "", "2026-11-23 21:29:49Z", "2026-11-23T21:29:49+02:00",
                    "2026-02-30T25:00:00Z", "tomorrow", "9" * 32):
            rep = self.client.call("msg.send", {"room_id": room, "content": "x", "peer": peer("a"),
                                                "created_at": bad})
            self.assertIs(rep["ok"], False, "created_at %r was taken" % bad)
            self.assertEqual(rep["error"]["code"], "invalid", rep)
            self.assertIn("ISO-8601", rep["error"]["message"])
        for good in ("2026-11-23T21:29:49.953123+00:00", "2026-11-23T21:29:49.953Z",
                     "2026-11-23T21:29:49+00:00"):
            rep = self.client.call("msg.send", {"room_id": room, "content": good, "peer": peer("a"),
                                                "created_at": good})
            self.assertTrue(rep["ok"], rep)
            self.assertEqual(rep["data"]["created_at"], good)
        stored = [m["content"] for m in self.read(room) if m["type"] == "message"]
        self.assertEqual(len(stored), 3)

    def test_a_relay_cursor_must_be_a_time_or_a_seq(self):
        #  A public room's row, as relay.join leaves it (no relay needed here)
        rep = self.client.call("room.create", {"id": "room-0000000cursor", "name": "c",
                                               "mode": "public", "relay_url": "http://127.0.0.1:9",
                                               "token": "t" * 64})
        self.assertTrue(rep["ok"], rep)
        room = "room-0000000cursor"
        for bad in ("zzzz", "9999-12-31T23:59:59.999Z", "12ab", "", "-1"):
            rep = self.client.call("sync.cursor", {"room_id": room, "cursor": bad})
            self.assertIs(rep["ok"], False, "cursor %r was taken" % bad)
            self.assertIn("cursor", rep["error"]["message"])
        for good in ("2026-01-01T00:00:00.000Z", "00000000000000000042"):
            rep = self.client.call("sync.cursor", {"room_id": room, "cursor": good})
            self.assertTrue(rep["ok"], rep)
        cursor, = self.db().execute("SELECT since FROM relay_cursors WHERE room_id = ?",
                                    (room,)).fetchone()
        self.assertEqual(cursor, "2026-01-01T00:00:00.000Z")


class TestDaemonJson(AipTestCase):

    def test_status_with_a_broken_daemon_json_while_serving(self):
        self.ok("daemon", "start")
        broker = self.broker_pid()
        for content, why in ((b"\x00garbage{{{", "corrupted"),
                             (b'{"host": 5, "port": "x"}', "corrupted"),
                             (b" " * (64 * 1024 + 1), "larger than 64 KiB"),
                             (b'{"port": 7899, "host": "127.0.0.1", "pad": "' + b"x" * 200000 + b'"}',
                              "larger than 64 KiB")):
            with open(self.path("daemon.json"), "wb") as f:
                f.write(content)
            status = self.ok("daemon", "status")
            self.assertIs(status["running"], True, status)
            self.assertEqual(status["pid"], broker)
            self.assertEqual(status["port"], 7899)
            self.assertEqual(status["host"], "127.0.0.1")
            self.assertIn("daemons", status)
            self.assertIn(why, status["warning"])
            self.assertIn("daemon.json", status["warning"])
        #  The next start writes it again
        self.ok("daemon", "stop")
        self.ok("daemon", "start")
        self.assertNotIn("warning", self.ok("daemon", "status"))



class TestSharedNames(AipTestCase):

    def setUp(self):
        super().setUp()
        self.room = self.new_room("names")
        host = self.ok("identity")["id"].split("-human-")[0]
        self.codex, self.gemini = host + "-codex", host + "-gemini"
        self.ok("chat", self.room, "--tool", "codex", "--as", "bob", "I am bob")
        self.ok("chat", self.room, "--tool", "gemini", "--as", "bob", "no, I am bob")
        self.ok("chat", self.room, "--tool", "opencode", "--as", "carol", "carol here")

    def test_export_md_names_both_bobs(self):
        md = self.ok("export", self.room, "--format", "md")["markdown"]
        self.assertIn("**bob (%s, codex)** [" % self.codex, md)
        self.assertIn("**bob (%s, gemini)** [" % self.gemini, md)
        self.assertIn("**carol (opencode)** [", md)
        self.assertNotIn("carol (%s" % self.codex, md)
        participants = [l for l in md.splitlines() if l.startswith("- **Participants**")][0]
        self.assertIn("bob (%s, codex)" % self.codex, participants)
        self.assertIn("bob (%s, gemini)" % self.gemini, participants)
        self.assertIn("carol (opencode)", participants)
        #  JSON keeps what is stored
        data = self.ok("export", self.room, "--format", "json")
        names = {m["peer_id"]: m["peer_name"] for m in data["messages"]}
        self.assertEqual(names[self.codex], "bob")
        self.assertEqual(names[self.gemini], "bob")
        self.assertEqual({m["peer_name"] for m in self.read(self.room)
                          if m["peer_id"] in (self.codex, self.gemini)}, {"bob"})

    def test_chat_i_names_both_bobs(self):
        r = self.run_cli("chat", self.room, "-i", input=b"")
        self.assert_envelope(r)
        shown = r.stderr.decode()
        self.assertIn("[bob (%s, codex)]: I am bob" % self.codex, shown)
        self.assertIn("[bob (%s, gemini)]: no, I am bob" % self.gemini, shown)
        self.assertIn("[carol (opencode)]: carol here", shown)


if __name__ == "__main__":
    main()
