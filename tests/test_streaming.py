"""AI answers shown as they grow: in chat -i (driven through tmux like a
person), on invite's stderr when it is a terminal (a pty), and quick's
per-tool progress line. The tools are tools.json entries running
tests/fake/usage_tool.py, which prints the first part of its answer, then
waits for the test to release it: so a test sees the text while the tool
still runs without guessing how long anything takes."""
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from aiptest import AI_PEER, SANITIZER_MARKS, AipTestCase, main, wait_until

TMUX = shutil.which("tmux")
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake")
TOOL = os.path.join(FAKE, "usage_tool.py")


class StreamingCase(AipTestCase):

    def setUp(self):
        super().setUp()
        self.env["FAKE_AI_DIR"] = self.tmp
        os.makedirs(self.home, exist_ok=True)
        with open(os.path.join(self.home, "tools.json"), "w") as f:
            json.dump({"tools": {n: {"argv": [sys.executable, TOOL, n]}
                                 for n in ("alpha", "beta")}}, f)

    def gate(self, tool, first, answer):
        """tool prints first, waits for release(tool), then ends its answer."""
        with open(os.path.join(self.tmp, tool + ".first"), "w") as f:
            f.write(first)
        with open(os.path.join(self.tmp, tool + ".answer"), "w") as f:
            f.write(answer)

    def release(self, tool):
        open(os.path.join(self.tmp, tool + ".release"), "w").close()

    def answers(self, room, tool):
        return [m["content"] for m in self.read(room)
                if m["peer_id"].endswith("-" + tool) and m["type"] == "message"]


@unittest.skipUnless(TMUX, "tmux is not installed")
class InteractiveStreaming(StreamingCase):

    def setUp(self):
        super().setUp()
        #  The fake AI CLIs: the daemons started below inherit this PATH
        self.env["PATH"] = FAKE + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.room = self.new_room("live")
        self.sock = os.path.join(self.tmp, "tmux.sock")
        env = " ".join("%s=%s" % (k, self.env[k]) for k in ("AI_PEERS_HOME", "USER")
                       if k in self.env)
        subprocess.run([TMUX, "-S", self.sock, "new-session", "-d", "-s", "t", "-x", "120",
                        "-y", "40", "env %s NO_COLOR=1 %s chat %s -i; echo EXIT=$?; sleep 600"
                        % (env, AI_PEER, self.room)], check=True)
        self.addCleanup(lambda: subprocess.run([TMUX, "-S", self.sock, "kill-server"],
                                               stderr=subprocess.DEVNULL))
        self.addCleanup(self.leave)
        self.wait_screen("[You]:")

    def history(self):
        return subprocess.run([TMUX, "-S", self.sock, "capture-pane", "-p", "-S", "-",
                               "-t", "t"], stdout=subprocess.PIPE, check=True).stdout.decode()

    def leave(self):
        """chat -i ends cleanly, with no sanitizer report (ASan builds)."""
        self.keys("C-u", "/quit", "Enter")
        wait_until(lambda: "EXIT=" in self.history(), 20, "chat -i to end:\n" + self.screen())
        history = self.history()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, history, history[-5000:])
        self.assertIn("EXIT=0", history)

    def screen(self):
        return subprocess.run([TMUX, "-S", self.sock, "capture-pane", "-p", "-t", "t"],
                              stdout=subprocess.PIPE, check=True).stdout.decode()

    def title(self):
        return subprocess.run([TMUX, "-S", self.sock, "display-message", "-p", "-t", "t",
                               "#{pane_title}"], stdout=subprocess.PIPE,
                              check=True).stdout.decode().strip()

    def keys(self, *keys):
        subprocess.run([TMUX, "-S", self.sock, "send-keys", "-t", "t"] + list(keys), check=True)

    def wait_screen(self, text, timeout=20):
        return wait_until(lambda: text in self.screen(), timeout, "%r on screen:\n%s"
                          % (text, self.screen()))

    def last_line(self):
        lines = [l for l in self.screen().split("\n") if l.strip()]
        return lines[-1] if lines else ""

    def test_the_answer_grows_in_place_then_the_message_replaces_it(self):
        title = self.title()
        first = "Short answer: use a \x1b]2;pwned\x07TTL.\nSecond line so far"
        self.gate("alpha", first, first + " and the rest.\nThird line.")
        self.keys("@alpha how long should tokens live?", "Enter")
        #  Before any text: one line that says who is thinking
        self.wait_screen("alpha is thinking")
        self.keys("half typed")
        #  The text so far, under the tool's name, while the tool still runs
        self.wait_screen("Second line so far")
        screen = self.screen()
        self.assertIn("alpha is writing", screen)
        self.assertIn("Short answer: use a ^[TTL.", screen)
        self.assertEqual(self.answers(self.room, "alpha"), [])
        #  The line being typed survives every redraw
        self.assertEqual(self.last_line().rstrip(), "[You]: half typed")
        self.assertEqual(self.title(), title)
        self.release("alpha")
        self.wait_screen("[alpha (alpha)]: Short answer")
        screen = self.screen()
        #  Replaced by exactly one final message
        self.assertNotIn("alpha is writing", screen)
        self.assertNotIn("alpha is thinking", screen)
        self.assertEqual(screen.count("Short answer: use a"), 1, screen)
        self.assertEqual(screen.count("Second line so far"), 1, screen)
        self.assertIn("[alpha (alpha)]: Short answer: use a ^[TTL.", screen)
        self.assertEqual(self.last_line().rstrip(), "[You]: half typed")
        self.assertEqual(self.answers(self.room, "alpha"), [first + " and the rest.\nThird line."])
        self.keys(" and sent", "Enter")
        wait_until(lambda: "half typed and sent" in [m["content"] for m in self.read(self.room)],
                   10, "the typed line in the room")

    def test_two_answers_at_once_stay_apart(self):
        self.gate("alpha", "alpha writes first", "alpha writes first, then finishes.")
        self.gate("beta", "beta has a different view", "beta has a different view: done.")
        self.keys("@alpha one", "Enter")
        self.keys("@beta two", "Enter")
        self.wait_screen("beta has a different view")
        self.wait_screen("alpha writes first")
        screen = self.screen()
        self.assertIn("alpha is writing", screen)
        self.assertIn("beta is writing", screen)
        #  Each block holds its own tool's text, in order
        self.assertLess(screen.index("alpha is writing"), screen.index("alpha writes first"))
        self.assertLess(screen.index("beta is writing"), screen.index("beta has a different"))
        #  The lines typed while they run were printed above them
        self.assertIn("[You]: @beta two", screen)
        self.release("beta")
        self.wait_screen("[beta (beta)]: beta has a different view: done.")
        screen = self.screen()
        self.assertNotIn("beta is writing", screen)
        self.assertIn("alpha is writing", screen)
        self.assertEqual(screen.count("beta has a different view"), 1, screen)
        self.release("alpha")
        self.wait_screen("[alpha (alpha)]: alpha writes first, then finishes.")
        screen = self.screen()
        self.assertNotIn("is writing", screen)
        self.assertEqual(screen.count("alpha writes first"), 1, screen)
        self.assertEqual(self.last_line().rstrip(), "[You]:")

    def test_the_four_builtin_adapters_stream_at_once(self):
        #  The fake CLIs print each real tool's structured shape (claude and
        #  gemini stream-json deltas, codex app-server and opencode acp
        #  notifications); each waits after its first delta
        tools = {"claude-code": "claude", "codex": "codex", "gemini": "gemini",
                 "opencode": "opencode"}
        for binary in tools.values():
            with open(os.path.join(self.tmp, binary + ".mode"), "w") as f:
                f.write("gate")
        for tool in tools:
            self.keys("@%s go" % tool, "Enter")
        for binary in tools.values():
            self.wait_screen("first half from %s" % binary, timeout=60)
        screen = self.screen()
        for tool in tools:
            self.assertIn("%s is writing" % tool, screen)
        self.assertEqual(self.last_line().rstrip(), "[You]:")
        for binary in tools.values():
            self.release(binary)
        for tool, binary in tools.items():
            self.wait_screen("second half from %s" % binary, timeout=60)
        wait_until(lambda: "is writing" not in self.screen(), 20,
                   "every block replaced:\n" + self.screen())
        screen = self.screen()
        for binary in tools.values():
            self.assertEqual(screen.count("first half from %s" % binary), 1, screen)
            self.assertEqual(screen.count("second half from %s" % binary), 1, screen)

    def test_a_failed_invite_takes_its_line_away(self):
        self.keys("@nosuchtool are you there?", "Enter")
        self.wait_screen("nosuchtool is thinking")
        self.wait_screen("nosuchtool did not answer", timeout=60)
        wait_until(lambda: "nosuchtool is thinking" not in self.screen(), 10,
                   "the thinking line to go:\n" + self.screen())


@unittest.skipUnless(TMUX, "tmux is not installed")
class RealClaudeStreaming(InteractiveStreaming):
    """The real claude CLI (tests/node) against the tests' fake model server,
    streaming its answer slowly: chat -i shows it growing, then the posted
    message replaces it."""

    ANSWER = ("Streamed by the real claude: keep tokens short-lived, rotate the "
              "signing keys, and log every refresh with its client id.")

    def setUp(self):
        import fakemodel
        import realcli
        ok, why = realcli.available("claude")
        if not ok:
            self.skipTest(why)
        self.fake = fakemodel.FakeModel()
        toolhome = tempfile.mkdtemp(prefix="aiptool", dir="/tmp")
        self.addCleanup(shutil.rmtree, toolhome, True)
        self.realcli_env = lambda base: realcli.env("claude", self.fake, toolhome, base=base)
        super().setUp()
        self.addCleanup(self.fake.close)

    def new_room(self, name="test"):
        #  The daemons start here: with the real CLI first on PATH, its
        #  config in a temporary HOME
        self.env = self.realcli_env(self.env)
        return super().new_room(name)

    def test_the_real_claude_streams_into_chat(self):
        #  14 deltas 250 ms apart: the model takes about 3.5 s to finish
        self.fake.add({"text": self.ANSWER, "chunks": 14, "chunk_delay_ms": 250,
                       "usage": {"input_tokens": 50, "output_tokens": 20}})
        self.keys("@claude-code how long should tokens live?", "Enter")
        final = "[claude-code (claude-code)]: Streamed by the real claude"

        def partial_block():
            screen = self.screen()
            if final in screen:
                raise AssertionError("the answer was posted before any text showed:\n"
                                     + screen)
            return "claude-code is writing" in screen and "Streamed by" in screen
        wait_until(partial_block, 120, "the answer growing in chat -i:\n" + self.screen())
        self.wait_screen(final, timeout=120)
        wait_until(lambda: "is writing" not in self.screen(), 20, "the block replaced")
        screen = self.screen()
        self.assertEqual(screen.count("Streamed by the real claude"), 1, screen)
        self.assertEqual([r["path"] for r in self.fake.escapes()], [])

    #  The fake-tool tests of the parent class are not run again here
    test_the_answer_grows_in_place_then_the_message_replaces_it = None
    test_two_answers_at_once_stay_apart = None
    test_the_four_builtin_adapters_stream_at_once = None
    test_a_failed_invite_takes_its_line_away = None


class TerminalStderr(StreamingCase):
    """invite and quick with stderr on a pty (stdout a pipe: only the JSON)."""

    def run_pty(self, args, on_output):
        """Run ai-peer with stderr on a pty; on_output(text so far) is called as
        it grows. Returns (stdout document, everything stderr showed)."""
        master, slave = pty.openpty()
        p = subprocess.Popen([AI_PEER] + args, stdout=subprocess.PIPE, stderr=slave,
                             env=self.env)
        os.close(slave)
        shown = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                shown += chunk
                on_output(shown.decode(errors="replace"), p)
            elif p.poll() is not None:
                break
        os.close(master)
        out = p.communicate(timeout=30)[0]
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, shown.decode(errors="replace"))
        return json.loads(out.decode()), shown.decode(errors="replace")

    def test_invite_shows_the_growing_answer_on_stderr(self):
        room = self.new_room()
        self.ok("chat", room, "hello")
        first = "the first half \x1b[2J\x1b]0;x\x07of it"
        self.gate("alpha", first, first + ", and the second half.")
        seen = {}

        def on_output(text, p):
            if "of it" in text and "running" not in seen:
                #  The text is on the terminal while the tool still runs
                seen["running"] = p.poll() is None and self.answers(room, "alpha") == []
                self.release("alpha")
        doc, shown = self.run_pty(["invite", "--tool", "alpha", "--room", room], on_output)
        self.assertTrue(doc["ok"], doc)
        self.assertEqual(doc["data"]["response"], first + ", and the second half.")
        self.assertTrue(seen.get("running"), shown)
        self.assertIn("[alpha]: the first half ^[^[of it, and the second half.", shown)
        self.assertEqual(shown.count("the first half"), 1)
        self.assertNotIn("\x1b]", shown)
        self.assertNotIn("\x1b[2J", shown)

    def test_quick_shows_each_tools_progress_on_stderr(self):
        self.gate("alpha", "alpha is on it", "alpha is on it: 4.")
        seen = {}

        def on_output(text, p):
            if "alpha: writing" in text and "beta: done" in text and "both" not in seen:
                seen["both"] = True
                self.release("alpha")
        doc, shown = self.run_pty(["quick", "2+2?", "--tools", "alpha,beta"], on_output)
        self.assertTrue(doc["ok"], doc)
        self.assertTrue(seen.get("both"), shown)
        self.assertEqual(doc["data"]["responses"]["alpha"], "alpha is on it: 4.")

    def test_discuss_streams_each_turn_on_stderr(self):
        self.gate("alpha", "alpha opens", "alpha opens the discussion.")
        self.gate("beta", "beta replies", "beta replies to alpha.")
        seen = {}

        def on_output(text, p):
            #  Each turn's text while its tool runs
            for tool, first in (("alpha", "alpha opens"), ("beta", "beta replies")):
                if "[%s]: %s" % (tool, first) in text and tool not in seen:
                    seen[tool] = p.poll() is None
                    self.release(tool)
        doc, shown = self.run_pty(["discuss", "--tools", "alpha,beta", "--rounds", "1",
                                   "--context", "tabs or spaces?"], on_output)
        self.assertTrue(doc["ok"], doc)
        self.assertEqual(seen, {"alpha": True, "beta": True}, shown)
        self.assertIn("[alpha]: alpha opens the discussion.", shown)
        self.assertIn("[beta]: beta replies to alpha.", shown)
        self.assertLess(shown.index("[alpha]:"), shown.index("[beta]:"))
        self.assertEqual(doc["data"]["total_invites"], 2)

    def test_no_progress_when_stderr_is_not_a_terminal(self):
        room = self.new_room()
        self.gate("alpha", "quietly", "quietly done")
        self.release("alpha")
        r = self.run_cli("invite", "--tool", "alpha", "--room", room)
        self.assertEqual(r.doc["data"]["response"], "quietly done")
        self.assertNotIn(b"quietly", r.stderr)
        self.assertNotIn(b"thinking", r.stderr)


if __name__ == "__main__":
    main()
