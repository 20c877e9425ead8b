"""End-to-end encrypted rooms (--password): what a user and an attacker with
the disk would see. The relay side is tested with the relay."""
import json
import os
import sqlite3
import subprocess
import unittest

from aiptest import AipTestCase, SOURCE_DIR

VECTORS = json.load(open(os.path.join(SOURCE_DIR, "tests", "fixtures", "v1-interop.json")))
SECRET_TEXT = "the launch code is 4242-zulu"
PASSWORD = "correct horse battery staple"


class EncryptedRooms(AipTestCase):

    def grep_home(self, needle):
        """Files under AI_PEERS_HOME that contain needle (bytes), like grep -ra."""
        hits = []
        for root, _, files in os.walk(self.home):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        if needle in f.read():
                            hits.append(path)
                except OSError:
                    pass
        return hits

    def test_round_trip_and_nothing_in_plaintext_on_disk(self):
        room = self.ok("room", "create", "secret", "--password", PASSWORD)
        self.assertTrue(room.get("encrypted"))
        rid = room["id"]
        sent = self.ok("chat", rid, SECRET_TEXT)["sent"]
        self.assertEqual(sent["content"], SECRET_TEXT)
        md = "## plan\n\n- step *one* — ✓\n```\ncode\n```"
        self.ok("chat", rid, md, "--tool", "codex")
        msgs = self.read(rid)
        contents = [m["content"] for m in msgs if m["type"] == "message"]
        self.assertEqual(contents, [SECRET_TEXT, md])
        hist = self.ok("history", rid)["messages"]
        self.assertEqual([m["content"] for m in hist if m["type"] == "message"], contents)
        exported = self.ok("export", rid, "--format", "md")["markdown"]
        self.assertIn(SECRET_TEXT, exported)
        self.assertIn(md, exported)
        doc = self.ok("export", rid, "--format", "json")
        self.assertEqual([m["content"] for m in doc["messages"] if m["type"] == "message"], contents)
        #  Nothing readable on disk: no password, no message text
        self.stop_daemons()
        self.assertEqual(self.grep_home(SECRET_TEXT.encode()), [])
        self.assertEqual(self.grep_home(b"step *one*"), [])
        self.assertEqual(self.grep_home(PASSWORD.encode()), [])
        with sqlite3.connect(self.path("peers.db")) as db:
            stored = [r[0] for r in db.execute(
                "SELECT content FROM messages WHERE room_id=? AND type='message'", (rid,))]
        self.assertEqual(len(stored), 2)
        self.assertTrue(all(c.startswith("aip1:") for c in stored), stored)
        self.assertEqual(os.stat(self.path("peers.db")).st_mode & 0o777, 0o600)

    def test_password_sources_keep_it_out_of_argv(self):
        pwfile = os.path.join(self.tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        rid = self.ok("room", "create", "f", "--password-file", pwfile)["id"]
        self.ok("chat", rid, SECRET_TEXT)
        rid2 = self.ok("room", "create", "e", env={"AI_PEER_PASSWORD": PASSWORD})["id"]
        self.ok("chat", rid2, SECRET_TEXT)
        rooms = {r["id"]: r for r in self.ok("room", "list")["rooms"]}
        self.assertTrue(rooms[rid].get("encrypted") and rooms[rid2].get("encrypted"))
        self.assertNotIn("key", json.dumps(rooms))
        self.assertIn("not both", self.fail("room", "create", "x", "--password", "a",
                                            "--password-file", pwfile))
        self.assertIn("cannot read the password file",
                      self.fail("room", "create", "x", "--password-file", "/nonexistent/pw"))
        self.assertIn("needs a password", self.fail("room", "create", "x", "--cipher", "fernet"))
        self.assertIn("--cipher", self.fail("room", "create", "x", "--password", "p",
                                            "--cipher", "rot13"))
        self.stop_daemons()
        self.assertEqual(self.grep_home(PASSWORD.encode()), [])

    def test_fails_closed(self):
        rid = self.ok("room", "create", "secret", "--password", PASSWORD)["id"]
        self.ok("chat", rid, SECRET_TEXT)
        #  storaged refuses plaintext for an encrypted room from any client
        from aiptest import ProtoClient
        client = ProtoClient(self.home)
        rep = client.call("msg.send", {"room_id": rid, "content": "plain text",
                                       "peer": {"id": "mallory", "name": "m", "type": "human"}})
        self.assertFalse(rep["ok"])
        self.assertIn("encrypted", rep["error"]["message"])
        client.close()
        #  Content planted behind its back reads as rejected / unreadable,
        #  never as trusted text; a re-attributed ciphertext fails too
        self.stop_daemons()
        with sqlite3.connect(self.path("peers.db")) as db:
            cipher, = db.execute("SELECT content FROM messages WHERE room_id=? AND type='message'",
                                 (rid,)).fetchone()
            db.execute("INSERT INTO messages (id, room_id, peer_id, content, type, created_at)"
                       " VALUES ('msg-planted1', ?, 'mallory', 'trust me', 'message',"
                       " '2099-01-01T00:00:00+00:00')", (rid,))
            db.execute("INSERT INTO messages (id, room_id, peer_id, content, type, created_at)"
                       " VALUES ('msg-planted2', ?, 'mallory', ?, 'message',"
                       " '2099-01-01T00:00:01+00:00')", (rid, cipher))
        contents = [m["content"] for m in self.read(rid)]
        self.assertIn(SECRET_TEXT, contents)
        self.assertIn("[rejected — unencrypted message in encrypted room]", contents)
        self.assertIn("[encrypted — wrong password or corrupted]", contents)
        self.assertNotIn("trust me", contents)

    def test_a_room_whose_key_parameters_are_too_cheap_is_not_joined(self):
        #  kdf= comes from the connection string (or the relay): libsodium's
        #  minimum Argon2id cost, or anything under the cost ai-peer makes
        #  rooms with (t=2, 64 MiB), would make the password cheap to guess
        made = self.ok("room", "create", "strong", "--password", PASSWORD)
        rooms = self.ok("room", "list")["rooms"]
        token = "ab" * 32
        salt = "AAECAwQFBgcICQoLDA0ODw"
        for kdf in ("argon2id13:t=1:m=8192:s=" + salt, "argon2id13:t=1:m=67108864:s=" + salt,
                    "argon2id13:t=2:m=33554432:s=" + salt):
            cs = ("peer://127.0.0.1:9/room-0123456789ab?token=%s&cipher=aip1&kdf=%s"
                  % (token, kdf))
            err = self.fail("room", "join", cs, "--password", PASSWORD)
            self.assertIn("too weak", err, kdf)
            self.assertIn("at least t=2 and m=67108864", err, kdf)
            self.assertIn("not joined", err, kdf)
        self.assertEqual(self.ok("room", "list")["rooms"], rooms)
        #  The cost rooms are made with is accepted (whatever the relay on
        #  port 9 then says, it is not about the key)
        self.assertTrue(made.get("encrypted"))
        cs = ("peer://127.0.0.1:9/room-0123456789ab?token=%s&cipher=aip1&kdf=argon2id13:t=2:"
              "m=67108864:s=%s" % (token, salt))
        r = self.run_cli("room", "join", cs, "--password", PASSWORD)
        self.assert_envelope(r)
        self.assertNotIn("too weak", r.stdout.decode())

    def test_a_send_in_one_round_trip_is_refused_by_an_encrypted_room(self):
        """chat sends without asking for the room's key first (plain: true):
        an encrypted room refuses that with "encrypted", storing nothing, and
        the CLI then encrypts - also a text that looks like ciphertext."""
        rid = self.ok("room", "create", "secret", "--password", PASSWORD)["id"]
        plain_rid = self.new_room("plain")
        from aiptest import ProtoClient
        client = ProtoClient(self.home)
        self.addCleanup(client.close)
        for content in ("plain text", "gAAAAAlooks-like-fernet", "aip1:looks-like-aip1"):
            rep = client.call("msg.send", {"room_id": rid, "content": content, "plain": True,
                                           "peer": {"id": "alice", "name": "a",
                                                    "type": "human"}})
            self.assertFalse(rep["ok"], rep)
            self.assertEqual(rep["error"]["code"], "encrypted", rep)
            self.assertIn("encrypt the message", rep["error"]["message"])
        rep = client.call("msg.send", {"room_id": plain_rid, "content": "hello", "plain": True,
                                       "peer": {"id": "alice", "name": "a", "type": "human"}})
        self.assertTrue(rep["ok"], rep)
        self.assertNotIn("queued", rep["data"])         # a local room: nothing for relayd
        #  The CLI: a plain room in one request, an encrypted one encrypted
        sent = self.ok("chat", plain_rid, "gAAAAAhello")["sent"]
        self.assertEqual(sent["content"], "gAAAAAhello")
        self.assertNotIn("queued", sent)
        self.assertNotIn("lan", sent)
        sent = self.ok("chat", rid, "gAAAAAhello")["sent"]
        self.assertEqual(sent["content"], "gAAAAAhello")
        self.assertEqual([m["content"] for m in self.read(rid) if m["type"] == "message"],
                         ["gAAAAAhello"])
        self.stop_daemons()
        with sqlite3.connect(self.path("peers.db")) as db:
            stored = [r[0] for r in db.execute(
                "SELECT content FROM messages WHERE room_id=? AND type='message'", (rid,))]
        self.assertEqual(len(stored), 1)
        self.assertTrue(stored[0].startswith("aip1:"), stored)

    def test_original_database_with_plaintext_password_and_fernet_messages(self):
        v = VECTORS["fernet"][0]
        os.makedirs(self.home)
        with sqlite3.connect(self.path("peers.db")) as db:
            db.executescript("""
                CREATE TABLE rooms (id TEXT PRIMARY KEY, name TEXT NOT NULL,
                    mode TEXT DEFAULT 'local', relay_url TEXT, password TEXT,
                    created_at TEXT NOT NULL, token TEXT);
                CREATE TABLE peers (id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                    tool TEXT, machine TEXT, host TEXT, port INTEGER, last_seen TEXT,
                    capabilities TEXT DEFAULT '{}');
                CREATE TABLE room_peers (room_id TEXT, peer_id TEXT, joined_at TEXT NOT NULL,
                    PRIMARY KEY (room_id, peer_id));
                CREATE TABLE messages (id TEXT PRIMARY KEY, room_id TEXT NOT NULL,
                    peer_id TEXT NOT NULL, content TEXT NOT NULL, type TEXT DEFAULT 'message',
                    metadata TEXT DEFAULT '{}', created_at TEXT NOT NULL);
                CREATE INDEX idx_msg_room_time ON messages(room_id, created_at);
            """)
            db.execute("INSERT INTO rooms VALUES (?, 'old secret', 'public', NULL, ?,"
                       " '2025-01-01T00:00:00+00:00', NULL)", (v["room_id"], v["password"]))
            db.execute("INSERT INTO peers (id, name, type, tool) VALUES ('py-human-bob', 'bob',"
                       " 'human', 'cli')")
            db.execute("INSERT INTO messages VALUES ('msg-0123456789ab', ?, 'py-human-bob', ?,"
                       " 'message', '{}', '2025-01-01T00:00:01+00:00')", (v["room_id"], v["token"]))
        msgs = self.ok("history", v["room_id"])["messages"]
        self.assertEqual(msgs[0]["content"], v["plaintext"])
        #  New messages in that room use the original's format, readable by it
        self.ok("chat", v["room_id"], "reply from C")
        self.stop_daemons()
        with sqlite3.connect(self.path("peers.db")) as db:
            stored, = db.execute("SELECT password FROM rooms").fetchone()
            last, = db.execute("SELECT content FROM messages WHERE content LIKE 'gAAAAA%'"
                               " ORDER BY created_at DESC").fetchone()
        self.assertEqual(stored, "key:fernet:" + v["derived_key_b64url"])
        self.assertTrue(last.startswith("gAAAAA"))
        self.assertEqual(self.grep_home(v["password"].encode()), [])


class EncryptedInvites(AipTestCase):
    """spawnd decrypts the history for the prompt and encrypts the answer."""

    def setUp(self):
        super().setUp()
        fake = os.path.join(SOURCE_DIR, "tests", "fake")
        self.env["PATH"] = fake + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.env["FAKE_AI_DIR"] = self.tmp
        with open(os.path.join(self.tmp, "codex.answer"), "w") as f:
            f.write("ANSWER: rotate the key 7731")

    def prompts(self, tool):
        with open(os.path.join(self.tmp, tool + ".calls.jsonl")) as f:
            return [json.loads(line)["stdin"] for line in f]

    def test_invite_in_an_encrypted_room(self):
        rid = self.ok("room", "create", "secret", "--password", PASSWORD)["id"]
        self.ok("chat", rid, SECRET_TEXT)
        data = self.ok("invite", "--tool", "codex", "--room", rid, "--context", "your view?")
        self.assertEqual(data["response"], "ANSWER: rotate the key 7731")
        #  The tool saw the plaintext history; the room holds ciphertext
        self.assertIn(SECRET_TEXT, self.prompts("codex")[0])
        contents = [m["content"] for m in self.read(rid)]
        self.assertIn("ANSWER: rotate the key 7731", contents)
        self.stop_daemons()
        with sqlite3.connect(self.path("peers.db")) as db:
            stored = [r[0] for r in db.execute(
                "SELECT content FROM messages WHERE room_id=? AND type='message'", (rid,))]
        self.assertTrue(all(c.startswith("aip1:") for c in stored), stored)
        for root, _, files in os.walk(self.home):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                self.assertNotIn(b"rotate the key 7731", data, name)
                self.assertNotIn(SECRET_TEXT.encode(), data, name)

    def test_quick_with_a_password(self):
        data = self.ok("quick", "what about 9913?", "--tools", "codex",
                       env={"AI_PEER_PASSWORD": PASSWORD})
        self.assertEqual(data["responses"]["codex"], "ANSWER: rotate the key 7731")
        self.assertIn("what about 9913?", [m["content"] for m in data["conversation"]])
        rooms = {r["id"]: r for r in self.ok("room", "list")["rooms"]}
        self.assertTrue(rooms[data["room"]].get("encrypted"))
        self.stop_daemons()
        with sqlite3.connect(self.path("peers.db")) as db:
            leaked = db.execute("SELECT count(*) FROM messages WHERE content LIKE '%9913%'"
                                " OR content LIKE '%7731%'").fetchone()[0]
        self.assertEqual(leaked, 0)


if __name__ == "__main__":
    unittest.main()
