"""test_badinput.py — bad input (DESIGN.md §9, issue 2 item 6).

Each case: a clear error, exit status 1, one JSON envelope, and nothing
half-written in peers.db or in the user's files.
"""
import json
import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402
from aiptest import AipTestCase, pid_alive, wait_until  # noqa: E402

LIMIT = 256 * 1024


def words_of_total_length(total, count=4):
    """count words of 'x' joined by single spaces, total bytes long (argv
    strings are capped at 128 KiB each by the kernel)."""
    body = total - (count - 1)
    sizes = [body // count] * count
    sizes[-1] += body - sum(sizes)
    return ["x" * n for n in sizes]


class BadInputCase(AipTestCase):

    def setUp(self):
        super().setUp()
        self.room = self.new_room("bad input")
        self.ok("chat", self.room, "a message before")

    def snapshot(self):
        """Every row of every table (last_seen changes on reads: left out)."""
        con = self.db()
        rows = {}
        for table in ("rooms", "peers", "room_peers", "messages"):
            cols = [c[1] for c in con.execute("PRAGMA table_info(%s)" % table)
                    if c[1] != "last_seen"]
            rows[table] = sorted(con.execute("SELECT %s FROM %s" % (",".join(cols), table)))
        return rows

    def assert_fails_cleanly(self, *args, mentions=(), **kw):
        before = self.snapshot()
        err = self.fail(*args, **kw)
        for word in mentions:
            self.assertIn(word, err)
        self.assertEqual(self.snapshot(), before, "a failed %r wrote to the database" % (args,))
        return err


class TestArguments(BadInputCase):

    def test_unknown_command_and_flag(self):
        err = self.assert_fails_cleanly("bogus", mentions=("bogus", "--help"))
        self.assertIn("room", err)
        self.assert_fails_cleanly("--bogus")
        self.assert_fails_cleanly("room", "bogus", mentions=("bogus",))
        self.assert_fails_cleanly("room", "create", "x", "--bogus", mentions=("--bogus",))
        self.assert_fails_cleanly("chat", self.room, "hi", "--frobnicate", mentions=("--frobnicate",))
        self.assert_fails_cleanly("history", "--frobnicate", mentions=("--frobnicate",))
        self.assert_fails_cleanly("daemon", "status", "--bogus", mentions=("--bogus",))
        self.assert_fails_cleanly("daemon", "restart-everything")
        self.assert_fails_cleanly("list", "extra")
        self.assert_fails_cleanly("identity", "--x")

    def test_missing_arguments(self):
        for args in (["room"], ["room", "delete"], ["chat"], ["export"], ["register"],
                     ["register", "bob"], ["register", "bob", "ai"], ["daemon"],
                     ["chat", self.room, "--as"], ["chat", self.room, "-n"],
                     ["export", self.room, "--format"], ["export", self.room, "--output"]):
            self.assert_fails_cleanly(*args)

    def test_bad_option_values(self):
        for n in ("0", "-1", "abc", "1x", "99999999999999999999", ""):
            self.assert_fails_cleanly("chat", self.room, "-n", n, mentions=("-n",))
            self.assert_fails_cleanly("history", self.room, "-n", n, mentions=("-n",))
        self.assert_fails_cleanly("chat", self.room, "--type", "robot", "hi", mentions=("robot",))
        self.assert_fails_cleanly("chat", self.room, "--tool", "a/b", "hi")
        self.assert_fails_cleanly("chat", self.room, "--tool", "", "hi")
        self.assert_fails_cleanly("chat", self.room, "--as", "", "hi")
        self.assert_fails_cleanly("chat", self.room, "--as", "n" * 300, "hi")
        self.assert_fails_cleanly("export", self.room, "--format", "pdf", mentions=("pdf",))
        self.assert_fails_cleanly("register", "bob", "robot", "codex")
        self.assert_fails_cleanly("register", "bob", "ai", "codex", "--port", "70000")
        self.assert_fails_cleanly("daemon", "start", "--port", "0")
        self.assert_fails_cleanly("room", "create", "  ")
        self.assert_fails_cleanly("room", "create", "r" * 300)

    def test_invalid_room_id(self):
        for rid in ("bad/id", "room id", "../../etc", "r" * 65, "room-é", "a;b", "$(x)"):
            for args in (["chat", rid, "hi"], ["chat", rid], ["history", rid],
                         ["export", rid], ["room", "delete", rid]):
                err = self.assert_fails_cleanly(*args)
                self.assertIn("room", err.lower())

    def test_unknown_room(self):
        ghost = "room-0123456789ab"
        for args in (["chat", ghost, "hi"], ["chat", ghost], ["chat", ghost, "--tool", "x"],
                     ["history", ghost], ["export", ghost], ["export", ghost, "--format", "json"],
                     ["room", "delete", ghost]):
            err = self.assert_fails_cleanly(*args, mentions=("room list",))
            self.assertIn(ghost, err)
        out = os.path.join(self.tmp, "ghost.md")
        self.assert_fails_cleanly("export", ghost, "--output", out)
        self.assertFalse(os.path.exists(out), "a failed export left a file")

    def test_empty_and_blank_message(self):
        for text in ("", " ", "   ", "\n", "\t \n ", "\r\n"):
            self.assert_fails_cleanly("chat", self.room, text, mentions=("empty",))
        self.assert_fails_cleanly("chat", self.room, "", "", mentions=("empty",))

    def test_message_size_limit(self):
        words = words_of_total_length(LIMIT)
        sent = self.ok("chat", self.room, *words)["sent"]
        self.assertEqual(len(sent["content"].encode()), LIMIT)
        err = self.assert_fails_cleanly("chat", self.room, *words_of_total_length(LIMIT + 1))
        self.assertIn("262144", err.replace(",", "") + " " + err)
        #  The limit counts bytes, not characters
        multibyte = ["é" * (LIMIT // 8)] * 4           # 131072 characters, 262147 bytes
        self.assert_fails_cleanly("chat", self.room, *multibyte)
        con = self.db()
        self.assertEqual(con.execute("SELECT length(CAST(content AS BLOB)) FROM messages "
                                     "WHERE id=?", (sent["id"],)).fetchone()[0], LIMIT)

    def test_invalid_utf8(self):
        for bad in (b"\xff\xfe", b"caf\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"ok \xf8\x88\x80\x80\x80"):
            self.assert_fails_cleanly("chat", self.room, bad, mentions=("UTF-8",))
            self.assert_fails_cleanly("chat", self.room, "--as", bad, "hi")
            self.assert_fails_cleanly("chat", self.room, "--tool", bad, "hi")
            self.assert_fails_cleanly("room", "create", bad)
            self.assert_fails_cleanly("chat", bad, "hi")
        #  Every response is still valid UTF-8 JSON (checked by fail())

    def test_nul_and_control_characters_survive(self):
        #  Control characters other than NUL are text, stored exactly
        text = "bell\x07 esc\x1b[31m red\x1b[0m del\x7f"
        self.assertEqual(self.ok("chat", self.room, text)["sent"]["content"], text)


class TestFiles(AipTestCase):

    def test_unwritable_home(self):
        blocker = os.path.join(self.tmp, "file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        home = os.path.join(blocker, "home")
        for args in (["room", "list"], ["room", "create", "x"], ["identity"], ["daemon", "start"]):
            r = self.run_cli(*args, home=home)
            self.assert_envelope(r)
            self.assertFalse(r.doc["ok"], r)
            self.assertIn(blocker, r.doc["error"])
        if os.geteuid() != 0:
            ro = os.path.join(self.tmp, "ro")
            os.mkdir(ro, 0o500)
            r = self.run_cli("room", "list", home=ro)
            self.assertFalse(r.doc["ok"], r)
            self.assertIn("writable", r.doc["error"])
        self.assertEqual(aiptest.daemon_pids(home), {})

    def test_home_path_too_long_for_a_socket(self):
        home = os.path.join(self.tmp, "d" * 120)
        r = self.run_cli("room", "list", home=home)
        self.assert_envelope(r)
        self.assertFalse(r.doc["ok"])
        self.assertIn("AI_PEERS_HOME", r.doc["error"])

    def test_corrupted_identity(self):
        os.makedirs(self.home, mode=0o700)
        good = {"id": "box-human-carol", "name": "carol", "type": "human", "tool": "cli",
                "machine": "box", "peer_secret": "ab" * 32}
        cases = [b"", b"{", b"not json at all", b"[1, 2, 3]", b"\xff\xfe\x00",
                 json.dumps(dict(good, id=None)).encode(),
                 json.dumps(dict(good, name=12)).encode(),
                 b"{\"id\": \"x\"" + b" " * 100]
        for content in cases:
            with open(self.path("identity.json"), "wb") as f:
                f.write(content)
            for args in (["identity"], ["room", "create", "x"]):
                r = self.run_cli(*args)
                self.assert_envelope(r)
                self.assertFalse(r.doc["ok"], (content, r))
                self.assertIn("identity.json", r.doc["error"], content)
                self.assertEqual(self.read_file("identity.json"), content,
                                 "identity.json was rewritten")
        #  A good file makes everything work again
        with open(self.path("identity.json"), "w") as f:
            json.dump(good, f)
        self.assertEqual(self.ok("identity")["id"], "box-human-carol")

    def test_identity_is_a_directory(self):
        os.makedirs(self.path("identity.json"))
        err = self.fail("identity")
        self.assertIn("identity.json", err)

    def test_corrupted_daemon_json(self):
        self.ok("daemon", "start")
        for content in (b"{", b"[]", b"garbage", b"{\"host\": 5, \"port\": \"x\"}", b"\xff"):
            with open(self.path("daemon.json"), "wb") as f:
                f.write(content)
            #  The daemons serve: status says so, and warns about the file
            status = self.ok("daemon", "status")
            self.assertIs(status["running"], True, content)
            self.assertIn("daemon.json", status["warning"])
            self.assertEqual(self.read_file("daemon.json"), content)
        #  Rooms keep working meanwhile; stop still stops
        self.ok("room", "list")
        self.assertEqual(self.ok("daemon", "stop")["status"], "stopped")
        wait_until(lambda: not self.daemons(), 10, "daemons to stop")

    def test_corrupted_database(self):
        os.makedirs(self.home, mode=0o700)
        junk = b"SQLite format 2\0" + bytes(range(256)) * 40
        with open(self.path("peers.db"), "wb") as f:
            f.write(junk)
        for args in (["room", "list"], ["room", "create", "x"]):
            err = self.fail(*args, timeout=30)
            self.assertIn("peers.db", err)
        self.assertEqual(self.read_file("peers.db"), junk)
        #  The daemons do not linger, restarting a storaged that cannot work
        wait_until(lambda: not self.daemons(), 10, "the daemons to give up")

    def test_stale_pid_file(self):
        os.makedirs(os.path.join(self.home, "run"), mode=0o700)
        dead = subprocess.Popen(["true"])
        dead.wait()
        for content in (str(dead.pid).encode(), str(os.getpid()).encode(), b"garbage", b"",
                        b"1", b"-5", b"99999999999"):
            with open(self.path("daemon.pid"), "wb") as f:
                f.write(content)
            self.assertEqual(self.ok("daemon", "status")["running"], False, content)
            self.ok("room", "list")
            self.assert_one_daemon_set()
            self.assertTrue(pid_alive(os.getpid()))
            self.stop_daemons()

    def test_stale_sockets_after_kill9(self):
        room = self.new_room()
        self.ok("chat", room, "before the crash")
        for round in range(2):
            pids = self.daemons()
            broker = self.broker_pid()
            os.kill(broker, signal.SIGKILL)
            #  storaged follows its broker
            wait_until(lambda: not self.daemons(), 10, "the daemons to die with the broker")
            self.assertTrue(os.path.exists(self.path("run", "broker.ipc")))
            sent = self.ok("chat", room, "after crash %d" % round)["sent"]
            new = self.assert_one_daemon_set()
            self.assertFalse(set(new) & set(pids))
            self.assertEqual(self.ok("daemon", "status")["pid"], self.broker_pid())
        msgs = [m["content"] for m in self.read(room) if m["type"] == "message"]
        self.assertEqual(msgs, ["before the crash", "after crash 0", "after crash 1"])

    def test_stale_sockets_without_pid_file(self):
        self.ok("daemon", "start")
        broker = self.broker_pid()
        os.kill(broker, signal.SIGKILL)
        wait_until(lambda: not self.daemons(), 10, "the daemons to die with the broker")
        os.unlink(self.path("daemon.pid"))
        self.ok("room", "list")
        self.assert_one_daemon_set()

    def test_pid_file_of_another_homes_broker(self):
        #  A pid that is a live brokerd, but for another home
        other = os.path.join(self.tmp, "o")
        self.ok("daemon", "start", home=other)
        self.addCleanup(self.stop_daemons, other)
        with open(os.path.join(other, "daemon.pid")) as f:
            other_pid = f.read().strip()
        os.makedirs(os.path.join(self.home, "run"), mode=0o700, exist_ok=True)
        with open(self.path("daemon.pid"), "w") as f:
            f.write(other_pid)
        self.new_room()
        self.assert_one_daemon_set()
        self.assertEqual(len(self.ok("room", "list")["rooms"]), 1)
        self.assertEqual(self.ok("room", "list", home=other)["rooms"], [])


if __name__ == "__main__":
    aiptest.main()
