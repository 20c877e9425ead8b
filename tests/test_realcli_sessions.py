"""test_realcli_sessions.py — resumed sessions with the real AI CLIs.

The second invite of a tool in a room resumes the tool's own session and
sends it only the messages since its last turn: the model receives the
first answer as the assistant's own turn, and the new message, not the old
ones. A session the tool has lost (its store deleted) falls back once to a
fresh session with the whole history and a warning. A tools.json tool that
names a one-shot format and its resume arguments (a fork or wrapper of a
CLI: opencode run --format json, -s ID) resumes the same way. In a password
room claude and codex keep no session: each turn gets the whole history and
no file under the tools' HOME holds the room's plaintext. Helpers, the
fake model server and the first turn's checks are in test_realcli.py.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakemodel  # noqa: E402
import realcli  # noqa: E402
from test_realcli import (ANSWER1, ANSWER2, NEW, OLD, USAGE1, USAGE2,  # noqa: E402
                          RealCliCase, expected_usage, usage_subset)


class RealCliSessionTest(RealCliCase):

    # -- one tool: the second invite resumes ------------------------------------
    def check_resume(self, tool):
        self.need(tool)
        room = self.first_turn(tool)
        #  Turn 2 resumes: only the new message goes to the tool, and the
        #  model sees the first answer as its own earlier turn
        self.ok("chat", room, NEW)
        self.fake.add({"text": ANSWER2, "usage": USAGE2})
        data2 = self.invite(tool, room)
        self.assertEqual(data2["response"].strip(), ANSWER2)
        self.assertTrue(data2.get("resumed"), data2)
        self.assertFalse(data2.get("warning"), data2)
        self.assertEqual(usage_subset(data2.get("usage")), expected_usage(tool, USAGE2),
                         "usage of turn 2 alone, not of the whole session: %r"
                         % data2.get("usage"))
        reqs = self.turn_requests(tool)
        self.assertEqual(len(reqs), 2)
        conv = fakemodel.FakeModel.conversation(reqs[1])
        roles = [r for r, _ in conv]
        mine = [i for i, (r, t) in enumerate(conv)
                if r == "assistant" and ANSWER1.strip()[:60] in t]
        self.assertTrue(mine, "the first answer is not an assistant turn: %r" % roles)
        after = "\n".join(t for r, t in conv[mine[-1] + 1:] if r == "user")
        self.assertIn(NEW, after)
        for old in OLD:
            self.assertNotIn(old, after, "an old message was sent again after resuming")
        self.assert_offline()

    def test_claude_resumes(self):
        self.check_resume("claude")

    def test_codex_resumes(self):
        self.check_resume("codex")

    def test_gemini_resumes(self):
        self.check_resume("gemini")

    def test_opencode_resumes(self):
        self.check_resume("opencode")

    # -- a lost session falls back ------------------------------------------
    def check_lost_session(self, tool):
        self.need(tool)
        room = self.seeded_room()
        self.fake.add({"text": ANSWER2, "usage": USAGE2})
        self.invite(tool, room)
        self.assertTrue(realcli.forget_sessions(tool, self.toolhome),
                        "%s kept no session files to forget" % tool)
        self.ok("chat", room, NEW)
        self.fake.add({"text": "Answer after the fallback.", "usage": USAGE2})
        data = self.invite(tool, room)
        self.assertEqual(data["response"].strip(), "Answer after the fallback.")
        self.assertTrue(data.get("warning"), "no warning for the fallback: %r" % data)
        self.assertFalse(data.get("resumed"), data)
        last = self.read(room)[-1]
        self.assertFalse(last["content"].startswith("[spawn error]"), last)
        #  The fresh session got the whole history again
        sent = "\n".join(t for r, t in fakemodel.FakeModel.conversation(
            self.turn_requests(tool)[-1]) if r == "user")
        for text in OLD + [NEW]:
            self.assertIn(text, sent)
        self.assert_offline()

    def test_claude_lost_session(self):
        self.check_lost_session("claude")

    def test_codex_lost_session(self):
        self.check_lost_session("codex")

    def test_gemini_lost_session(self):
        self.check_lost_session("gemini")

    def test_opencode_lost_session(self):
        self.check_lost_session("opencode")

    # -- tools.json: the one-shot JSON modes, as a fork or wrapper names them --
    def check_tools_json(self, name, tool, argv, fmt, resume_args):
        self.need(tool)
        os.makedirs(self.home, exist_ok=True)
        with open(os.path.join(self.home, "tools.json"), "w") as f:
            json.dump({"tools": {name: {"argv": [realcli.binary(tool)] + argv,
                                        "format": fmt, "resume_args": resume_args}}}, f)
        room = self.seeded_room()
        self.fake.add({"text": ANSWER1, "chunks": 3, "usage": USAGE1})
        data = self.invite(name, room)
        self.assertEqual(data["response"].strip(), ANSWER1.strip())
        self.assertEqual(usage_subset(data.get("usage")), expected_usage(tool, USAGE1),
                         data.get("usage"))
        self.assertTrue(data.get("session_id"), data)
        self.ok("chat", room, NEW)
        self.fake.add({"text": ANSWER2, "usage": USAGE2})
        data2 = self.invite(name, room)
        self.assertEqual(data2["response"].strip(), ANSWER2)
        self.assertTrue(data2.get("resumed"), data2)
        self.assertEqual(data2.get("session_id"), data["session_id"])
        #  (codex exec reports the whole thread's usage on a resumed turn:
        #  ai-peer must report this turn's)
        self.assertEqual(usage_subset(data2.get("usage")), expected_usage(tool, USAGE2),
                         "usage of turn 2 alone: %r" % data2.get("usage"))
        conv = fakemodel.FakeModel.conversation(self.turn_requests(tool)[-1])
        mine = [i for i, (r, t) in enumerate(conv)
                if r == "assistant" and ANSWER1.strip()[:60] in t]
        self.assertTrue(mine, [r for r, _ in conv])
        after = "\n".join(t for r, t in conv[mine[-1] + 1:] if r == "user")
        self.assertIn(NEW, after)
        for old in OLD:
            self.assertNotIn(old, after)
        self.assert_offline()

    def test_tools_json_opencode_run_resumes(self):
        self.check_tools_json("myopencode", "opencode", ["run", "--format", "json"],
                              "opencode-json", ["-s", "{session_id}"])

    # -- password rooms: the tools keep nothing on disk --------------------------
    SECRET = "plaintext-marker-7f3a9c: the launch code is 0000"

    def files_with(self, needle):
        found = []
        for top, _dirs, files in os.walk(self.toolhome):
            for name in files:
                path = os.path.join(top, name)
                try:
                    with open(path, "rb") as f:
                        if needle.encode() in f.read():
                            found.append(path)
                except OSError:
                    pass
        return found

    def check_password_room(self, tool):
        self.need(tool)
        room = self.ok("room", "create", "secret-room", "--password", "correct horse")["id"]
        self.ok("chat", room, self.SECRET)
        self.fake.add({"text": ANSWER1, "usage": USAGE1})
        data = self.invite(tool, room)
        self.assertEqual(data["response"].strip(), ANSWER1.strip())
        self.ok("chat", room, NEW)
        self.fake.add({"text": ANSWER2, "usage": USAGE2})
        data2 = self.invite(tool, room)
        self.assertFalse(data2.get("resumed"), data2)
        #  no session: the whole history again, and no plaintext on disk
        sent = "\n".join(t for r, t in fakemodel.FakeModel.conversation(
            self.turn_requests(tool)[-1]) if r == "user")
        self.assertIn(self.SECRET, sent)
        self.assertIn(NEW, sent)
        self.assertEqual(self.files_with("plaintext-marker-7f3a9c"), [],
                         "%s kept the password room's plaintext on disk" % tool)
        self.assert_offline()

    def test_claude_password_room_keeps_nothing(self):
        self.check_password_room("claude")

    def test_codex_password_room_keeps_nothing(self):
        self.check_password_room("codex")


if __name__ == "__main__":
    unittest.main(verbosity=2)
