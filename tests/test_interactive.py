"""Interactive mode (chat ROOM -i) driven through tmux like a person, and
scripted through a pipe like an agent."""
import os
import shutil
import signal
import subprocess
import unittest

from aiptest import AI_PEER, AipTestCase, wait_until

TMUX = shutil.which("tmux")
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake")


@unittest.skipUnless(TMUX, "tmux is not installed")
class Terminal(AipTestCase):

    def setUp(self):
        super().setUp()
        #  The fake AI tools: the daemons started below inherit this PATH
        self.env["PATH"] = FAKE + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.env["FAKE_AI_DIR"] = self.tmp
        self.room = self.new_room("live")
        self.sock = os.path.join(self.tmp, "tmux.sock")
        env = " ".join("%s=%s" % (k, self.env[k]) for k in ("AI_PEERS_HOME", "USER")
                       if k in self.env)
        #  The pane stays after the command ends, so its last words can be read
        subprocess.run([TMUX, "-S", self.sock, "new-session", "-d", "-s", "t", "-x", "150",
                        "-y", "40", "env %s NO_COLOR=1 %s chat %s -i; echo EXIT=$?; sleep 600"
                        % (env, AI_PEER, self.room)], check=True)
        self.addCleanup(lambda: subprocess.run([TMUX, "-S", self.sock, "kill-server"],
                                               stderr=subprocess.DEVNULL))
        self.wait_screen("[You]:")

    def screen(self):
        return subprocess.run([TMUX, "-S", self.sock, "capture-pane", "-p", "-t", "t"],
                              stdout=subprocess.PIPE, check=True).stdout.decode()

    def keys(self, *keys):
        subprocess.run([TMUX, "-S", self.sock, "send-keys", "-t", "t"] + list(keys), check=True)

    def wait_screen(self, text, timeout=15):
        return wait_until(lambda: text in self.screen(), timeout, "%r on screen:\n%s"
                          % (text, self.screen()))

    def last_line(self):
        lines = [l for l in self.screen().split("\n") if l.strip()]
        return lines[-1] if lines else ""

    def test_push_above_a_half_typed_line(self):
        self.keys("half typed")
        self.wait_screen("half typed")
        self.ok("chat", self.room, "pushed by another process", "--tool", "codex")
        self.wait_screen("[codex (codex)]: pushed by another process")
        #  The half-typed text is still there, on the prompt line
        self.assertEqual(self.last_line().rstrip(), "[You]: half typed")
        self.keys(" and finished", "Enter")
        wait_until(lambda: any(m["content"] == "half typed and finished"
                               for m in self.read(self.room)), 10, "the typed line in the room")

    def test_who_help_and_quit(self):
        self.keys("/who", "Enter")
        self.wait_screen("[human]")
        self.keys("/help", "Enter")
        self.wait_screen("/cancel")
        self.keys("/quit", "Enter")
        self.wait_screen("EXIT=0")
        self.assertIn('"status": "exited"', self.screen())

    def test_ctrl_d_on_an_empty_prompt_leaves(self):
        self.keys("C-d")
        self.wait_screen("EXIT=0")

    def test_ctrl_d_after_a_line_leaves(self):
        self.keys("one line", "Enter")
        wait_until(lambda: any(m["content"] == "one line" for m in self.read(self.room)),
                   10, "the line in the room")
        self.keys("C-d")
        self.wait_screen("EXIT=0")

    def test_ctrl_c_leaves_when_nothing_is_pending(self):
        self.keys("C-c")
        self.wait_screen("EXIT=0")

    def test_mention_keeps_the_prompt_usable(self):
        self.keys("@nosuchtool are you there?", "Enter")
        self.wait_screen("nosuchtool is thinking")
        #  The prompt takes more text while the invite runs
        self.keys("still typing", "Enter")
        wait_until(lambda: any(m["content"] == "still typing" for m in self.read(self.room)),
                   10, "a line sent while the invite runs")
        self.wait_screen("nosuchtool did not answer", timeout=60)

    def test_mention_streams_the_answer_in(self):
        with open(os.path.join(self.tmp, "codex.answer"), "w") as f:
            f.write("Use a **short TTL**.")
        self.keys("@codex how long should tokens live?", "Enter")
        self.wait_screen("[codex (codex)]: Use a **short TTL**.", timeout=60)
        contents = [m["content"] for m in self.read(self.room)]
        self.assertIn("@codex how long should tokens live?", contents)
        self.assertIn("Use a **short TTL**.", contents)

    def test_reconnects_after_the_broker_is_killed(self):
        self.ok("chat", self.room, "before the crash", "--tool", "codex")
        self.wait_screen("before the crash")
        os.kill(self.broker_pid(), signal.SIGKILL)
        #  The next command restarts the daemons; the screen catches up
        self.ok("chat", self.room, "after the crash", "--tool", "codex")
        self.wait_screen("after the crash", timeout=20)
        self.assertEqual(self.screen().count("before the crash"), 1)
        self.assertEqual(self.screen().count("after the crash"), 1)


    def pane_title(self):
        return subprocess.run([TMUX, "-S", self.sock, "display-message", "-p", "-t", "t",
                               "#{pane_title}"], stdout=subprocess.PIPE,
                              check=True).stdout.decode().strip()

    def test_hostile_text_cannot_take_the_terminal(self):
        title = self.pane_title()
        self.assertNotIn("PWNED", title)
        #  A member's name and text full of escape sequences: retitle (OSC 0
        #  and 2, BEL and ST ended, and as 8-bit C1), clear the screen, move
        #  the cursor home and paint a fake line in red
        hostile = ("\x1b]2;PWNED-OSC2\x07\x1b]0;PWNED-OSC0\x1b\\\u009d2;PWNED-C1\u009c"
                   "\x1b[2J\x1b[H\x1b[31m[root]: paint\x1b[0m\rCR\x08"
                   "\nsecond line\n[admin]: forged speaker line")
        self.ok("chat", self.room, hostile, "--as", "ev\x1b]2;PWNED-NAME\x07il",
                "--tool", "codex")
        self.wait_screen("forged speaker line")
        screen = self.screen()
        #  Nothing was retitled or cleared: the banner is still on screen
        self.assertEqual(self.pane_title(), title)
        self.assertIn("Room %s" % self.room, screen)
        #  What was removed shows, on the message's own line
        self.assertIn("[ev^[il (codex)]: ^[^[\ufffd^[^[^[[root]: paint^[^MCR^H", screen)
        #  The lines of a message are indented: none starts as a speaker
        rows = screen.split("\n")
        self.assertIn("    second line", rows)
        self.assertIn("    [admin]: forged speaker line", rows)
        self.assertFalse([r for r in rows if r.startswith(("[admin]", "[root]"))], screen)
        #  No colour reached the terminal (NO_COLOR is set: nothing of ours)
        painted = subprocess.run([TMUX, "-S", self.sock, "capture-pane", "-p", "-e", "-t", "t"],
                                 stdout=subprocess.PIPE, check=True).stdout.decode()
        self.assertNotIn("\x1b[31m", painted)
        #  The room keeps the text byte-exact
        self.assertIn(hostile, [m["content"] for m in self.read(self.room)])

    def test_a_long_line_wraps_under_its_indent(self):
        #  Padding cannot push text to the start of a terminal row
        forged = ("x" + " " * (150 - len("[codex (codex)]: x"))
                  + "[admin]: wrapped to the left edge" + " " * 200 + "end")
        self.ok("chat", self.room, forged, "--tool", "codex")
        self.wait_screen("end")
        rows = self.screen().split("\n")
        self.assertFalse([r for r in rows if r.startswith("[admin]")], rows)
        self.assertIn("    [admin]: wrapped to the left edge", "\n".join(rows))

    def test_own_identity_from_elsewhere_is_shown(self):
        self.keys("typed in this session", "Enter")
        wait_until(lambda: any(m["content"] == "typed in this session"
                               for m in self.read(self.room)), 10, "the typed line in the room")
        #  The same identity, from another terminal (or an agent as the user)
        self.ok("chat", self.room, "sent from another terminal")
        self.wait_screen("]: sent from another terminal")
        me = "[%s (cli)]: " % self.ok("identity")["name"]
        self.assertIn(me + "sent from another terminal", self.screen().split("\n"))
        #  What this session sent shows once: as it was typed
        self.assertEqual(self.screen().count("typed in this session"), 1, self.screen())
        #  /history shows it again, on request
        self.keys("/history 5", "Enter")
        self.wait_screen(me + "typed in this session")


class Scripted(AipTestCase):

    def test_lines_from_a_pipe_are_sent_in_order(self):
        room = self.new_room("scripted")
        lines = "first line\n/who\nsecond ✓ line\n\nthird without newline"
        r = self.run_cli("chat", room, "-i", input=lines.encode())
        self.assert_envelope(r)
        self.assertEqual(r.doc["data"]["sent"], 3)
        contents = [m["content"] for m in self.read(room) if m["type"] == "message"]
        self.assertEqual(contents, ["first line", "second ✓ line", "third without newline"])
        self.assertIn(b"[human]", r.stderr)

    def test_a_bad_line_is_refused_whole_and_named(self):
        room = self.new_room("limits")
        limit = 256 * 1024
        lines = (b"ok one\n" + b"x" * (limit + 10) + b"\n" + b"ok two\n" + b"nul\x00here\n"
                 + b"bad \xff utf8\n" + b"y" * limit + b"\n" + b"last")
        r = self.run_cli("chat", room, "-i", input=lines)
        self.assert_envelope(r)
        contents = [m["content"] for m in self.read(room) if m["type"] == "message"]
        #  Nothing of the long line (not its tail), nor of the NUL or bad one
        self.assertEqual(contents, ["ok one", "ok two", "y" * limit, "last"])
        self.assertEqual(r.doc["data"]["sent"], 4)
        self.assertEqual(r.doc["data"]["not_sent"], 3)
        err = r.stderr.decode()
        self.assertIn("line 2 not sent: longer than 256 KiB", err)
        self.assertIn("line 4 not sent: it holds a NUL byte (at byte 4)", err)
        self.assertIn("line 5 not sent: it is not valid UTF-8", err)

    def test_unknown_room(self):
        err = self.fail("chat", "room-doesnotexist", "-i", input=b"")
        self.assertIn("room list", err)


if __name__ == "__main__":
    unittest.main()
