"""test_cli.py — the CLI contract a user sees (DESIGN.md §6).

Every command prints one JSON envelope and exits 0 or 1; data keys are the
original's; identity rules, join messages and message content are exact.
"""
import json
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402
from aiptest import AI_PEER, AipTestCase, wait_until  # noqa: E402

MESSAGE_KEYS = {"id", "room_id", "peer_id", "peer_name", "peer_tool", "peer_type", "content",
                "type", "metadata", "created_at"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


def host_id():
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())


class TestEnvelope(AipTestCase):

    def test_every_success_has_the_envelope(self):
        r = self.run_cli("room", "create", "env")
        self.assert_envelope(r)
        self.assertEqual(r.doc["ok"], True)
        self.assertEqual(r.doc.get("schema_version"), "1")
        self.assertEqual(r.stdout.count(b"\n{"), 0, "one document only")
        room = r.doc["data"]["id"]
        for args in (["room", "list"], ["chat", room, "hi"], ["chat", room], ["history"],
                     ["history", room], ["export", room], ["export", room, "--format", "json"],
                     ["identity"], ["list"], ["daemon", "status"]):
            r = self.run_cli(*args)
            self.assert_envelope(r)
            self.assertTrue(r.doc["ok"], r)
            self.assertEqual(r.doc.get("schema_version"), "1", r)

    def test_failure_envelope(self):
        r = self.run_cli("chat", "room-000000000000", "hi")
        self.assert_envelope(r)
        self.assertFalse(r.doc["ok"])
        self.assertEqual(r.rc, 1)

    def test_help_is_grouped(self):
        for args in ([], ["--help"], ["-h"], ["help"]):
            r = self.run_cli(*args)
            self.assertEqual(r.rc, 0, r)
            text = r.stdout.decode()
            for heading in ("Room & Chat:", "AI:", "System:"):
                self.assertIn(heading, text)
            for word in ("room", "chat", "history", "export", "invite", "daemon", "identity",
                         "list", "register"):
                self.assertRegex(text, r"(?m)^  %s\b" % word)
        r = self.run_cli("chat", "--help")
        self.assertEqual(r.rc, 0)
        self.assertIn(b"--tool", r.stdout)
        self.assertIn(b"-n", r.stdout)
        #  --help needs no daemon
        self.assertEqual(self.daemons(), {})

    def test_version(self):
        r = self.run_cli("--version")
        self.assertEqual(r.rc, 0)
        self.assertRegex(r.stdout.decode(), r"^ai-peer \d+\.\d+")


class TestRooms(AipTestCase):

    def test_create_list_delete(self):
        data = self.ok("room", "create", "my room")
        for key in ("id", "name", "mode", "created_at"):
            self.assertIn(key, data)
        self.assertRegex(data["id"], r"^room-[0-9a-f]{12}$")
        self.assertEqual(data["name"], "my room")
        self.assertEqual(data["mode"], "local")
        self.assertRegex(data["created_at"], ISO_UTC)
        other = self.ok("room", "create", "second")["id"]
        rooms = self.ok("room", "list")["rooms"]
        self.assertEqual({r["id"] for r in rooms}, {data["id"], other})
        for r in rooms:
            for key in ("id", "name", "mode", "created_at"):
                self.assertIn(key, r)
        by_id = {r["id"]: r for r in rooms}
        self.assertEqual(by_id[data["id"]]["name"], "my room")
        deleted = self.ok("room", "delete", data["id"])
        self.assertIn("deleted", deleted)
        rooms = self.ok("room", "list")["rooms"]
        self.assertEqual([r["id"] for r in rooms], [other])
        #  Its messages are gone too, and it cannot be used any more
        con = self.db()
        self.assertEqual(con.execute("SELECT count(*) FROM messages WHERE room_id=?",
                                     (data["id"],)).fetchone()[0], 0)
        err = self.fail("chat", data["id"], "hello")
        self.assertIn("room list", err)

    def test_room_without_name_is_default(self):
        data = self.ok("room", "create")
        self.assertEqual(data["name"], "default")

    def test_empty_list_on_fresh_home(self):
        self.assertEqual(self.ok("room", "list")["rooms"], [])
        self.assertEqual(self.ok("history")["rooms"], [])

    def test_unicode_room_name(self):
        name = "équipe 🚀 — 設計"
        room = self.ok("room", "create", name)
        self.assertEqual(room["name"], name)
        self.assertEqual(self.ok("room", "list")["rooms"][0]["name"], name)


class TestChat(AipTestCase):

    def test_send_and_read(self):
        room = self.new_room()
        sent = self.ok("chat", room, "hello", "world")["sent"]
        self.assertTrue(MESSAGE_KEYS <= set(sent), sent)
        self.assertEqual(sent["content"], "hello world")
        self.assertEqual(sent["room_id"], room)
        self.assertEqual(sent["type"], "message")
        self.assertRegex(sent["id"], r"^msg-[0-9a-f]{27}$")
        self.assertRegex(sent["created_at"], ISO_UTC)
        me = self.ok("identity")
        self.assertEqual(sent["peer_id"], me["id"])
        self.assertEqual(sent["peer_type"], "human")
        data = self.ok("chat", room)
        self.assertIn("messages", data)
        self.assertIn("relay_ok", data)
        msgs = data["messages"]
        for m in msgs:
            self.assertTrue(MESSAGE_KEYS <= set(m), m)
        self.assertEqual(msgs[-1]["id"], sent["id"])
        self.assertEqual(msgs[-1]["content"], "hello world")

    def test_joined_message_on_first_join_only(self):
        room = self.new_room()
        self.ok("chat", room, "one")
        self.ok("chat", room, "two")
        self.ok("chat", room)
        self.ok("chat", room, "--tool", "codex", "three")
        self.ok("chat", room, "--tool", "codex", "four")
        self.ok("chat", room, "--tool", "codex")
        msgs = self.read(room)
        joins = [(m["peer_id"], m["type"]) for m in msgs if m["content"] == "joined the room"]
        self.assertEqual(len(joins), 2, msgs)
        self.assertTrue(all(t == "system" for _, t in joins))
        self.assertEqual(len({p for p, _ in joins}), 2)
        #  The join comes before the member's first message
        codex_msgs = [m["content"] for m in msgs if m["peer_id"] == "%s-codex" % host_id()]
        self.assertEqual(codex_msgs, ["joined the room", "three", "four"])
        self.assertEqual([m["content"] for m in msgs if m["type"] == "message"],
                         ["one", "two", "three", "four"])

    def test_reading_joins_too(self):
        room = self.new_room()
        self.ok("chat", room, "--tool", "gemini")
        msgs = self.read(room)
        self.assertEqual(msgs[-1]["content"], "joined the room")
        self.assertEqual(msgs[-1]["peer_id"], "%s-gemini" % host_id())

    def test_tool_identity(self):
        room = self.new_room()
        sent = self.ok("chat", room, "--tool", "codex", "hi")["sent"]
        self.assertEqual(sent["peer_id"], "%s-codex" % host_id())
        self.assertEqual(sent["peer_type"], "ai")
        self.assertEqual(sent["peer_tool"], "codex")
        self.assertEqual(sent["peer_name"], "codex")
        sent = self.ok("chat", room, "--tool", "codex", "--as", "Reviewer", "hi")["sent"]
        self.assertEqual(sent["peer_id"], "%s-codex" % host_id())
        self.assertEqual(sent["peer_name"], "Reviewer")
        sent = self.ok("chat", room, "--as", "Alice", "hi")["sent"]
        self.assertEqual(sent["peer_id"], self.ok("identity")["id"])
        self.assertEqual(sent["peer_name"], "Alice")
        self.assertEqual(sent["peer_type"], "human")
        sent = self.ok("chat", room, "--type", "ai", "typed")["sent"]
        self.assertEqual(sent["peer_type"], "ai")
        peers = {p["id"]: p for p in self.ok("list")["peers"]}
        self.assertIn("%s-codex" % host_id(), peers)
        self.assertEqual(peers["%s-codex" % host_id()]["type"], "ai")

    def test_read_n(self):
        room = self.new_room()
        for i in range(30):
            self.ok("chat", room, "m%d" % i)
        msgs = self.ok("chat", room)["messages"]
        self.assertEqual(len(msgs), 20)
        self.assertEqual(msgs[-1]["content"], "m29")
        self.assertEqual(msgs[0]["content"], "m10")
        msgs = self.ok("chat", room, "-n", "3")["messages"]
        self.assertEqual([m["content"] for m in msgs], ["m27", "m28", "m29"])
        msgs = self.ok("chat", room, "-n", "1000")["messages"]
        self.assertEqual(len(msgs), 31)                     # + the creator's join
        self.assertEqual(msgs[0]["content"], "joined the room")
        times = [(m["created_at"], m["id"]) for m in msgs]
        self.assertEqual(times, sorted(times))

    def test_content_is_byte_exact(self):
        room = self.new_room()
        texts = [
            "# Title\n\n```c\nint main (void) { return 0; }\n```\n\n- a\n- b\n\ttab\n",
            "  leading and trailing spaces  ",
            "unicode: é ü 中文 🙂 \u200d \U0001F680 Ω",
            "quotes \" ' ` \\ backslash and $HOME and %s %n",
            "line1\r\nline2\rline3",
        ]
        for text in texts:
            sent = self.ok("chat", room, "--", text)["sent"]
            self.assertEqual(sent["content"], text)
        msgs = [m["content"] for m in self.read(room) if m["type"] == "message"]
        self.assertEqual(msgs, texts)
        con = self.db()
        stored = [row[0] for row in con.execute(
            "SELECT content FROM messages WHERE room_id=? AND type='message' "
            "ORDER BY created_at, id", (room,))]
        self.assertEqual(stored, texts)
        exported = self.ok("export", room, "--format", "json")["messages"]
        self.assertEqual([m["content"] for m in exported if m["type"] == "message"], texts)

    def test_message_starting_with_dash(self):
        room = self.new_room()
        sent = self.ok("chat", room, "--", "-n is a flag")["sent"]
        self.assertEqual(sent["content"], "-n is a flag")


class TestHistoryExport(AipTestCase):

    def setUp(self):
        super().setUp()
        self.room = self.new_room("export me")
        self.ok("chat", self.room, "first *md*")
        self.ok("chat", self.room, "--tool", "claude", "second\nline")

    def test_history(self):
        rooms = self.ok("history")["rooms"]
        self.assertEqual([r["id"] for r in rooms], [self.room])
        data = self.ok("history", self.room)
        self.assertIn("relay_ok", data)
        contents = [m["content"] for m in data["messages"]]
        self.assertEqual(contents, ["joined the room", "first *md*", "joined the room",
                                    "second\nline"])
        self.assertEqual(len(self.ok("history", self.room, "-n", "2")["messages"]), 2)
        #  history reads without joining: no new message
        self.assertEqual(len(self.ok("history", self.room)["messages"]), 4)

    def test_export_markdown(self):
        data = self.ok("export", self.room)
        self.assertIn("markdown", data)
        self.assertEqual(data["messages"], 4)
        md = data["markdown"]
        self.assertTrue(md.startswith("# export me\n"), md)
        self.assertIn(self.room, md)
        self.assertIn("first *md*", md)
        self.assertIn("second\nline", md)
        self.assertLess(md.index("first *md*"), md.index("second\nline"))
        self.assertEqual(self.ok("export", self.room, "--format", "md"), data)

    def test_export_json(self):
        data = self.ok("export", self.room, "--format", "json")
        for key in ("room", "peers", "messages"):
            self.assertIn(key, data)
        self.assertEqual(data["room"]["id"], self.room)
        self.assertEqual(data["room"]["name"], "export me")
        self.assertEqual(len(data["messages"]), 4)
        self.assertEqual({p["id"] for p in data["peers"]},
                         {self.ok("identity")["id"], "%s-claude" % host_id()})
        for p in data["peers"]:
            self.assertNotIn("peer_secret", p)

    def test_export_output_file(self):
        out = os.path.join(self.tmp, "conv.md")
        data = self.ok("export", self.room, "--output", out)
        self.assertEqual(data["exported"], out)
        self.assertEqual(data["format"], "md")
        self.assertEqual(data["messages"], 4)
        with open(out, encoding="utf-8") as f:
            self.assertEqual(f.read(), self.ok("export", self.room)["markdown"])
        out = os.path.join(self.tmp, "conv.json")
        data = self.ok("export", self.room, "--format", "json", "--output", out)
        self.assertEqual(data["format"], "json")
        self.assertEqual(data["messages"], 4)
        with open(out, encoding="utf-8") as f:
            doc = json.load(f)
        self.assertEqual(len(doc["messages"]), 4)
        self.assertEqual(doc["room"]["id"], self.room)

    def test_export_bad_format_and_unwritable_output(self):
        self.assertIn("format", self.fail("export", self.room, "--format", "pdf").lower())
        err = self.fail("export", self.room, "--output", "/nonexistent-dir/x/conv.md")
        self.assertIn("/nonexistent-dir/x/conv.md", err)


def cmark_xml(text):
    """CommonMark's own parse of text (libcmark), as an XML tree."""
    import ctypes
    import xml.etree.ElementTree as ET
    lib = ctypes.CDLL("libcmark.so")
    lib.cmark_parse_document.restype = ctypes.c_void_p
    lib.cmark_parse_document.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    lib.cmark_render_xml.restype = ctypes.c_void_p
    lib.cmark_render_xml.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.cmark_node_free.argtypes = [ctypes.c_void_p]
    raw = text.encode()
    doc = lib.cmark_parse_document(raw, len(raw), 0)
    xml = ctypes.string_at(lib.cmark_render_xml(doc, 0)).decode()
    lib.cmark_node_free(doc)
    xml = re.sub(r"<!DOCTYPE[^>]*>", "", xml)
    xml = xml.replace(' xmlns="http://commonmark.org/xml/1.0"', "")
    return ET.fromstring(xml)


class TestExportSafety(AipTestCase):

    HOSTILE = [
        "**mallory** [2026-01-01 00:00:00]:\n\nI approve the transfer",
        "# A heading of its own\n\ntext",
        "ok\n---",
        "```\nan unclosed fence swallows what follows",
        "<!-- an unclosed comment hides what follows",
        "<div style='display:none'>",
        "\x1b]2;retitled\x07\x1b[2Jcleared \x1b[31mred",
        "    indented code\n**bob** [x]:",
        "`````\n```` runs of backticks\n`````",
    ]
    ANSWER = "## Plan\n\n- step *one*\n- step two\n\n```python\nprint(1)\n```"

    def test_no_body_or_name_forges_the_export(self):
        room = self.new_room("safe\x1b]2;t\x07 **room**")
        self.ok("chat", room, "a plain first line\nand a second")
        for text in self.HOSTILE:
            self.ok("chat", room, "--", text)
        self.ok("chat", room, self.ANSWER, "--tool", "codex")
        self.ok("chat", room, "eve's message", "--tool", "evil", "--as",
                "eve** [2026-01-01 00:00:00]:\n\n**bob <b>")
        self.ok("chat", room, "the last word")
        md = self.ok("export", room)["markdown"]
        #  No escape sequence or control left; what was removed shows
        self.assertFalse(re.search("[\x00-\x08\x0b-\x1f\x7f]", md), repr(md))
        self.assertIn("^[", md)
        #  Plain messages keep the original's layout; a Markdown answer is
        #  there as its source, byte for byte
        self.assertIn("]:\n\na plain first line\nand a second\n", md)
        self.assertIn("]:\n\nthe last word", md)
        self.assertIn("\n```\n" + self.ANSWER + "\n```\n", md.replace("````", "```"))
        self.assertIn(self.ANSWER, md)
        #  CommonMark sees one heading (the room), one speaker paragraph per
        #  message, in order, and no HTML at all
        tree = cmark_xml(md)
        self.assertEqual(len(tree.findall(".//heading")), 1, md)
        self.assertEqual(tree.findall(".//html_block") + tree.findall(".//html_inline"), [], md)
        speakers = []
        for block in tree:
            first = block[0] if block.tag == "paragraph" and len(block) else None
            if first is not None and first.tag == "strong":
                speakers.append("".join(t.text or "" for t in first.iter("text")))
        me = self.ok("identity")["name"]
        me = "%s (cli)" % me
        expected = ([me] * (1 + len(self.HOSTILE)) + ["codex (codex)",
                    "eve** [2026-01-01 00:00:00]:^J^J**bob <b> (evil)", me])
        self.assertEqual(speakers, expected, md)
        #  Each hostile body is there, fenced, as it was sent (escapes shown)
        for text in self.HOSTILE[:6]:
            self.assertIn(text, md)

    def test_exports_are_the_owners_alone(self):
        room = self.ok("room", "create", "secret", "--password", "correct horse")["id"]
        self.ok("chat", room, "decrypted in the export")
        for fmt in ("md", "json"):
            out = os.path.join(self.tmp, "export." + fmt)
            with open(out, "w") as f:
                f.write("an older export")
            os.chmod(out, 0o644)
            self.ok("export", room, "--format", fmt, "--output", out)
            self.assertEqual(os.stat(out).st_mode & 0o777, 0o600, fmt)
            with open(out) as f:
                self.assertIn("decrypted in the export", f.read())


class TestIdentityPeers(AipTestCase):

    def test_identity(self):
        data = self.ok("identity")
        self.assertEqual(set(data) & {"id", "name", "type", "tool", "machine"},
                         {"id", "name", "type", "tool", "machine"})
        self.assertNotIn("peer_secret", data)
        user = os.environ.get("USER") or "user"
        self.assertEqual(data["id"], "%s-human-%s" % (host_id(), user))
        self.assertEqual(data["type"], "human")
        self.assertEqual(data["tool"], "cli")
        with open(self.path("identity.json")) as f:
            stored = json.load(f)
        self.assertRegex(stored["peer_secret"], r"^[0-9a-f]{64}$")
        self.assertEqual(stored["id"], data["id"])
        #  The secret appears in no command's output
        room = self.new_room()
        self.ok("chat", room, "hi")
        for args in (["identity"], ["list"], ["export", room, "--format", "json"],
                     ["chat", room], ["room", "list"], ["daemon", "status"]):
            r = self.run_cli(*args)
            self.assertNotIn(stored["peer_secret"].encode(), r.stdout + r.stderr, args)
        #  Reused as is
        before = self.read_file("identity.json")
        self.ok("identity")
        self.assertEqual(self.read_file("identity.json"), before)

    def test_existing_identity_is_reused(self):
        os.makedirs(self.home, mode=0o700)
        ident = {"id": "box-human-carol", "name": "carol", "type": "human", "tool": "cli",
                 "machine": "box", "peer_secret": "ab" * 32}
        with open(self.path("identity.json"), "w") as f:
            json.dump(ident, f)
        data = self.ok("identity")
        self.assertEqual(data["id"], "box-human-carol")
        self.assertEqual(data["name"], "carol")
        room = self.new_room()
        self.assertEqual(self.ok("chat", room, "x")["sent"]["peer_id"], "box-human-carol")

    def test_register_and_list(self):
        self.assertIn("peers", self.ok("list"))
        peer = self.ok("register", "bob", "ai", "codex", "--host", "10.0.0.2", "--port", "7899")
        self.assertEqual(peer["name"], "bob")
        self.assertEqual(peer["type"], "ai")
        self.assertEqual(peer["tool"], "codex")
        self.assertEqual(peer["host"], "10.0.0.2")
        self.assertEqual(peer["port"], 7899)
        peers = self.ok("list")["peers"]
        found = [p for p in peers if p["id"] == peer["id"]]
        self.assertEqual(len(found), 1)
        for key in ("id", "name", "type", "tool", "machine", "last_seen"):
            self.assertIn(key, found[0])
        self.assertIn("ai|human", self.fail("register", "bob", "robot", "codex")
                      .replace("'", "").replace(" or ", "|"))


class TestDaemon(AipTestCase):

    def test_start_status_stop(self):
        data = self.ok("daemon", "status")
        self.assertEqual(data["running"], False)
        for key in ("running", "pid", "port", "host"):
            self.assertIn(key, data)
        self.assertEqual(self.ok("daemon", "stop")["status"], "not running")
        data = self.ok("daemon", "start")
        for key in ("status", "port", "mode"):
            self.assertIn(key, data)
        self.assertEqual(data["port"], 7899)
        pids = self.assert_one_daemon_set()
        with open(self.path("daemon.pid")) as f:
            broker = int(f.read().strip())
        self.assertEqual(pids[broker], "brokerd")
        with open(self.path("daemon.json")) as f:
            written = json.load(f)
        #  The original's keys, and the mode LAN support added
        self.assertEqual({k: written[k] for k in ("host", "port")},
                         {"host": "127.0.0.1", "port": 7899})
        self.assertEqual(written.get("mode"), "local")
        data = self.ok("daemon", "start")          # idempotent
        self.assertEqual(self.assert_one_daemon_set(), pids)
        status = self.ok("daemon", "status")
        self.assertEqual(status["running"], True)
        self.assertEqual(status["pid"], broker)
        self.assertEqual(status["port"], 7899)
        self.assertEqual(status["host"], "127.0.0.1")
        names = {d["name"]: d for d in status["daemons"]}
        self.assertIn("storaged", names)
        self.assertEqual(names["storaged"]["restarts"], 0)
        data = self.ok("daemon", "stop")
        self.assertEqual(data["status"], "stopped")
        self.assertEqual(data["pid"], broker)
        wait_until(lambda: not self.daemons(), 10, "daemons to exit")
        self.assertEqual(self.ok("daemon", "status")["running"], False)

    def test_first_command_autostarts(self):
        self.assertEqual(self.daemons(), {})
        self.ok("room", "list")
        self.assert_one_daemon_set()

    def test_sigterm_stops_everything(self):
        self.ok("daemon", "start")
        import signal
        os.kill(self.broker_pid(), signal.SIGTERM)
        wait_until(lambda: not self.daemons(), 10, "daemons to exit on SIGTERM")
        self.ok("room", "list")                    # and it comes back


if __name__ == "__main__":
    aiptest.main()
