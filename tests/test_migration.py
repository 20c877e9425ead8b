"""test_migration.py — a peers.db written by the original Python ai-peer.

It must open, migrate in place (PRAGMA user_version) and keep every room,
peer and message; new messages go after the old ones. A database from a
newer ai-peer is refused with a clear error and left alone.
"""
import hashlib
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402
from aiptest import AipTestCase  # noqa: E402

#  The original's schema, statement for statement as its storage module
#  ran them (the token column came later, by ALTER TABLE)
ORIGINAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    mode TEXT DEFAULT 'local' CHECK(mode IN ('local', 'lan', 'public')),
    relay_url TEXT,
    password TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS peers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL CHECK(type IN ('ai', 'human')),
    tool TEXT,
    machine TEXT,
    host TEXT,
    port INTEGER,
    last_seen TEXT,
    capabilities TEXT DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS room_peers (
    room_id TEXT REFERENCES rooms(id),
    peer_id TEXT REFERENCES peers(id),
    joined_at TEXT NOT NULL,
    PRIMARY KEY (room_id, peer_id)
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms(id),
    peer_id TEXT NOT NULL,
    content TEXT NOT NULL,
    type TEXT DEFAULT 'message' CHECK(type IN ('message', 'system', 'invite')),
    metadata TEXT DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_msg_room_time ON messages(room_id, created_at);
"""

ROOMS = [
    ("room-0a1b2c3d4e5f", "design review", "local", None, None,
     "2026-01-02T03:04:05.123456+00:00", None),
    ("room-ffffeeee0001", "public chat", "public", "https://relay.ai-peer.chat", None,
     "2026-01-03T10:00:00+00:00", "ab" * 32),
    ("room-5555aaaa9999", "lan room", "lan", None, None,
     "2026-01-04T12:30:00.5+00:00", None),
]

PEERS = [
    ("oldbox-human-alice", "alice", "human", "cli", "oldbox", None, None,
     "2026-01-02T03:04:05.200000+00:00", "{}"),
    ("oldbox-claude-code", "claude-code", "ai", "claude-code", "oldbox", None, None,
     "2026-01-02T03:05:00+00:00", "{}"),
    ("otherbox-codex", "codex", "ai", "codex", "otherbox", "192.168.1.20", 7899,
     "2026-01-03T11:00:00.000001+00:00", "{\"models\": [\"gpt\"]}"),
]

ROOM_PEERS = [
    ("room-0a1b2c3d4e5f", "oldbox-human-alice", "2026-01-02T03:04:05.200000+00:00"),
    ("room-0a1b2c3d4e5f", "oldbox-claude-code", "2026-01-02T03:05:00+00:00"),
    ("room-ffffeeee0001", "oldbox-human-alice", "2026-01-03T10:00:01+00:00"),
    ("room-ffffeeee0001", "otherbox-codex", "2026-01-03T11:00:00.000001+00:00"),
]


def original_messages():
    """(id, room_id, peer_id, content, type, metadata, created_at), in the
    order the original inserted them (not always time order)."""
    design = "room-0a1b2c3d4e5f"
    public = "room-ffffeeee0001"
    m = [
        ("msg-a00000000001", design, "oldbox-human-alice", "joined the room", "system", "{}",
         "2026-01-02T03:04:05.200000+00:00"),
        ("msg-3fe2a9c01b77", design, "oldbox-human-alice",
         "Review this:\n\n```python\nprint('héllo')\n```\n", "message", "{}",
         "2026-01-02T03:04:06+00:00"),
        ("msg-0c0c0c0c0c0c", design, "oldbox-claude-code", "joined the room", "system", "{}",
         "2026-01-02T03:05:00+00:00"),
        ("msg-9999aaaa0000", design, "oldbox-claude-code", "LGTM 👍 — but see §2",
         "message", "{\"tool\": \"claude-code\", \"duration\": 12.5}",
         "2026-01-02T03:05:30.000001+00:00"),
        ("msg-1234567890ab", design, "oldbox-human-alice", "invited claude-code", "invite",
         "{}", "2026-01-02T03:04:59.999999+00:00"),
        #  Same second, with and without microseconds: '+' sorts before '.'
        ("msg-bbbbbbbbbbbb", design, "oldbox-human-alice", "same second, later", "message",
         "{}", "2026-01-02T03:06:00.000100+00:00"),
        ("msg-aaaaaaaaaaaa", design, "oldbox-human-alice", "same second, first", "message",
         "{}", "2026-01-02T03:06:00+00:00"),
        #  Public room: the relay's own ids and times
        ("a1b2c3d4", public, "otherbox-codex", "from the relay", "message", None,
         "2026-01-03T11:00:01.123Z"),
        ("msg-d00d00d00d00", public, "oldbox-human-alice", "hello relay", "message", "{}",
         "2026-01-03T10:00:02.000050+00:00"),
    ]
    #  A message from a peer that was never registered (the original did not check)
    m.append(("msg-0ddba11c0ffe", public, "ghost-peer", "who am I?", "message", "{}",
              "2026-01-03T12:00:00+00:00"))
    return m


def write_original_db(path, messages, user_version=0):
    con = sqlite3.connect(path)
    con.executescript(ORIGINAL_SCHEMA)
    con.execute("ALTER TABLE rooms ADD COLUMN token TEXT")
    con.executemany("INSERT INTO rooms (id, name, mode, relay_url, password, created_at, token) "
                    "VALUES (?,?,?,?,?,?,?)", ROOMS)
    con.executemany("INSERT INTO peers VALUES (?,?,?,?,?,?,?,?,?)", PEERS)
    con.executemany("INSERT INTO room_peers VALUES (?,?,?)", ROOM_PEERS)
    for row in messages:
        if row[5] is None:
            con.execute("INSERT INTO messages (id, room_id, peer_id, content, type, created_at) "
                        "VALUES (?,?,?,?,?,?)", row[:5] + row[6:])
        else:
            con.execute("INSERT INTO messages VALUES (?,?,?,?,?,?,?)", row)
    if user_version:
        con.execute("PRAGMA user_version = %d" % user_version)
    con.commit()
    con.close()


def ordered(messages, room):
    rows = [m for m in messages if m[1] == room]
    return sorted(rows, key=lambda m: (m[6], m[0]))


class TestOriginalDatabase(AipTestCase):

    def setUp(self):
        super().setUp()
        os.makedirs(self.home, mode=0o700)
        self.messages = original_messages()
        write_original_db(self.path("peers.db"), self.messages)
        with sqlite3.connect(self.path("peers.db")) as con:
            self.before = {t: sorted(con.execute("SELECT * FROM %s" % t), key=repr)
                           for t in ("rooms", "peers", "room_peers", "messages")}
        con.close()

    def table(self, name):
        return sorted(self.db().execute("SELECT * FROM %s" % name), key=repr)

    def test_rooms_listed(self):
        rooms = {r["id"]: r for r in self.ok("room", "list")["rooms"]}
        self.assertEqual(set(rooms), {r[0] for r in ROOMS})
        for rid, name, mode, relay, _, created, _ in ROOMS:
            self.assertEqual(rooms[rid]["name"], name)
            self.assertEqual(rooms[rid]["mode"], mode)
            self.assertEqual(rooms[rid]["created_at"], created)
            self.assertEqual(rooms[rid].get("relay_url"), relay)
        self.assertEqual({r["id"] for r in self.ok("history")["rooms"]}, set(rooms))

    def test_history_in_order(self):
        for room in (r[0] for r in ROOMS):
            want = ordered(self.messages, room)
            got = self.ok("history", room, "-n", "1000")["messages"]
            self.assertEqual([m["id"] for m in got], [m[0] for m in want], room)
            self.assertEqual([m["content"] for m in got], [m[3] for m in want])
            self.assertEqual([m["created_at"] for m in got], [m[6] for m in want])
            self.assertEqual([m["type"] for m in got], [m[4] for m in want])
        got = self.ok("history", "room-0a1b2c3d4e5f", "-n", "2")["messages"]
        self.assertEqual([m["id"] for m in got],
                         [m[0] for m in ordered(self.messages, "room-0a1b2c3d4e5f")[-2:]])
        #  Names come from the peers table
        got = self.ok("history", "room-0a1b2c3d4e5f")["messages"]
        names = {m["peer_id"]: m["peer_name"] for m in got}
        self.assertEqual(names["oldbox-claude-code"], "claude-code")
        self.assertEqual(names["oldbox-human-alice"], "alice")

    def test_export(self):
        room = "room-0a1b2c3d4e5f"
        data = self.ok("export", room, "--format", "json")
        self.assertEqual(data["room"]["id"], room)
        self.assertEqual([m["id"] for m in data["messages"]],
                         [m[0] for m in ordered(self.messages, room)])
        self.assertEqual({p["id"] for p in data["peers"]},
                         {"oldbox-human-alice", "oldbox-claude-code"})
        md = self.ok("export", room)
        self.assertEqual(md["messages"], len(ordered(self.messages, room)))
        text = md["markdown"]
        self.assertIn("# design review", text)
        positions = [text.index(m[3]) for m in ordered(self.messages, room)
                     if m[4] == "message"]
        self.assertEqual(positions, sorted(positions))
        pub = self.ok("export", "room-ffffeeee0001", "--format", "json")
        self.assertEqual(len(pub["messages"]), 3)
        self.assertIn("ghost-peer", [m["peer_id"] for m in pub["messages"]])

    def test_new_messages_append(self):
        room = "room-0a1b2c3d4e5f"
        sent = self.ok("chat", room, "--tool", "claude-code", "a new answer")["sent"]
        got = self.ok("chat", room, "-n", "1000")["messages"]
        old = [m[0] for m in ordered(self.messages, room)]
        self.assertEqual([m["id"] for m in got[:len(old)]], old)
        #  Reading joins the room: our human's "joined the room" may follow
        self.assertEqual([m["id"] for m in got if m["type"] == "message"][-1], sent["id"])
        self.assertGreater(sent["created_at"], max(m[6] for m in self.messages))
        #  The human joins for the first time in this database? No: alice is
        #  another identity; ours joins with a system message before its first
        sent = self.ok("chat", room, "from the new identity")["sent"]
        got = self.ok("chat", room, "-n", "3")["messages"]
        self.assertEqual([m["content"] for m in got][-2:], ["joined the room",
                                                             "from the new identity"])
        #  The AI peer with the old id did not join twice
        joins = [m for m in self.read(room) if m["type"] == "system"
                 and m["peer_id"] == "%s-claude-code" % aiptest.socket_hostname_id()]
        self.assertLessEqual(len(joins), 1)

    def test_migrated_in_place_nothing_lost(self):
        self.ok("room", "list")
        con = self.db()
        version = con.execute("PRAGMA user_version").fetchone()[0]
        self.assertGreaterEqual(version, 1)
        for t, rows in self.before.items():
            after = self.table(t)
            for row in rows:
                self.assertIn(row, after, "row of %s lost or changed" % t)
        indexes = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='messages'")]
        self.assertTrue(indexes, "messages lost its index")
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        #  A second start is a no-op
        self.stop_daemons()
        self.ok("room", "list")
        con2 = sqlite3.connect(self.path("peers.db"))
        self.assertEqual(con2.execute("PRAGMA user_version").fetchone()[0], version)
        con2.close()
        self.assertEqual(self.table("messages"), self.before["messages"])

    def test_original_can_still_read_it(self):
        """After migration the original's own queries still work."""
        room = "room-0a1b2c3d4e5f"
        self.ok("chat", room, "new")
        self.stop_daemons()
        con = sqlite3.connect(self.path("peers.db"))
        self.addCleanup(con.close)
        rows = con.execute("SELECT m.*, p.name as peer_name, p.tool as peer_tool "
                           "FROM messages m LEFT JOIN peers p ON m.peer_id = p.id "
                           "WHERE m.room_id = ? ORDER BY m.created_at DESC LIMIT ?",
                           (room, 50)).fetchall()
        self.assertEqual(len(rows), len(ordered(self.messages, room)) + 2)
        con.executescript(ORIGINAL_SCHEMA)    # the original re-runs it at start-up
        con.execute("SELECT id, name, mode, relay_url, password, token, created_at FROM rooms")


class TestNewerDatabase(AipTestCase):

    def test_newer_user_version_refused(self):
        os.makedirs(self.home, mode=0o700)
        db = self.path("peers.db")
        write_original_db(db, original_messages(), user_version=99)
        with open(db, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        err = self.fail("room", "list")
        self.assertIn("version", err)
        self.assertIn("99", err + self.daemon_log())
        err = self.fail("chat", "room-0a1b2c3d4e5f", "hello")
        with open(db, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest, "peers.db modified")
        self.assertFalse(os.path.exists(db + "-wal") and os.path.getsize(db + "-wal") > 0)


if __name__ == "__main__":
    aiptest.main()
