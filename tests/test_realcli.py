"""test_realcli.py — invite, discuss and quick with the real AI CLIs.

The four real CLIs from npm (tests/node: claude, codex, gemini, opencode)
run as ai-peer's built-in tools, found on PATH, offline against the fake
model server of tests/fakemodel.py (config and HOME from tests/realcli.py),
under real daemons. Asserted for each tool: the answer's text is published
on the broker's events while the model is still streaming it, under the id
the answer is then posted with; the usage ai-peer reports (reply and posted
metadata) equals what the model reported; nothing leaves loopback. Then a
401 or 429 from the model; a stream the model server cuts off (claude falls
back to a non-streaming request: its whole answer is posted once; codex and
gemini give up: the invite fails, nothing posted); the discuss token budget
and a quick of all four.
Resumed sessions: test_realcli_sessions.py, on the same helpers.

A CLI that is not installed (scripts/setup.sh runs npm ci in tests/node) is
skipped with the reason; nothing else is.
"""
import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402
import fakemodel  # noqa: E402
import realcli  # noqa: E402

#  Three old room messages and the marks that show where they went
OLD = ["old-message-alpha: we are designing a cache",
       "old-message-bravo: it must be bounded",
       "old-message-charlie: what eviction policy?"]
NEW = "new-message-delta: and what about TTLs?"
ANSWER1 = ("First answer, streamed slowly: use LRU with a size bound, "
           "and count bytes rather than entries. ") * 3
ANSWER2 = "Second answer: TTLs on top of LRU, checked lazily on read."
USAGE1 = {"input_tokens": 1200, "output_tokens": 42, "cache_read_tokens": 300,
          "cache_write_tokens": 100}
USAGE2 = {"input_tokens": 80, "output_tokens": 17, "cache_read_tokens": 1500,
          "cache_write_tokens": 0}
#  Only Anthropic's API reports cache writes
HAS_CACHE_WRITE = {"claude": True, "codex": False, "gemini": False, "opencode": False}
API = {"claude": "anthropic", "codex": "responses", "gemini": "gemini", "opencode": "chat"}
INVITE_TIMEOUT = 240
#  The name ai-peer gives the tool (in progress events and peer ids)
PEER_TOOL = {"claude": "claude-code"}


def expected_usage(tool, u):
    """What ai-peer must report for a model turn that reported u: input
    tokens are the uncached input (the cache reads are counted apart)."""
    return {"input_tokens": u["input_tokens"], "output_tokens": u["output_tokens"],
            "cache_read_tokens": u["cache_read_tokens"],
            "cache_write_tokens": u["cache_write_tokens"] if HAS_CACHE_WRITE[tool] else 0}


def usage_subset(u):
    u = u or {}
    return {k: u.get(k, 0) for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                     "cache_write_tokens")}


class Subscriber:
    """The broker's PUB socket, topic room.<id>: every event with the time
    it was received."""

    def __init__(self, home, room):
        import zmq
        self.zmq = zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect("ipc://%s/run/events.ipc" % home)
        self.sock.setsockopt(zmq.SUBSCRIBE, ("room." + room).encode())
        self.events = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import msgpack
        while not self._stop.is_set():
            if self.sock.poll(50):
                _topic, body = self.sock.recv_multipart()
                self.events.append((time.time(), msgpack.unpackb(body, raw=False)))

    def progress(self):
        return [(t, e["data"]) for t, e in list(self.events) if e.get("type") == "progress"]

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)
        self.ctx.term()


class RealCliCase(aiptest.AipTestCase):
    """Helpers: a FakeModel, the real CLIs on PATH, daemons with their env."""

    def setUp(self):
        super().setUp()
        self.fake = fakemodel.FakeModel()
        self.addCleanup(self.fake.close)
        self.work = os.path.join(self.tmp, "work")
        self.toolhome = os.path.join(self.tmp, "toolhome")
        os.makedirs(self.work)
        os.makedirs(self.toolhome)
        #  The daemons start from the first command with this environment:
        #  the real CLIs first on PATH, their config in a temporary HOME
        self.env = realcli.env("all", self.fake, self.toolhome, base=self.env)

    def need(self, *tools):
        for tool in tools:
            ok, why = realcli.available(tool)
            if not ok:
                self.skipTest(why)

    def cli(self, *args, timeout=INVITE_TIMEOUT):
        p = subprocess.run([aiptest.AI_PEER] + list(args), env=self.env, cwd=self.work,
                           capture_output=True, timeout=timeout)
        r = aiptest.Result(args, p.returncode, p.stdout, p.stderr)
        self.check_stderr(r)
        self.assert_envelope(r)
        return r

    def ok_cli(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertTrue(r.doc["ok"], "%r\ndaemon.log:\n%s" % (r, self.daemon_log()[-4000:]))
        return r.doc["data"]

    def seeded_room(self):
        room = self.new_room("realcli")
        for text in OLD:
            self.ok("chat", room, text)
        return room

    def invite(self, tool, room, *extra):
        return self.ok_cli("invite", "--tool", tool, "--room", room, "--timeout", "180",
                           *extra)

    def turn_requests(self, tool):
        return self.fake.model_requests(API[tool])

    def assert_offline(self):
        self.assertEqual([r["path"] for r in self.fake.escapes()], [],
                         "a CLI tried to reach the internet")
        #  and everything a CLI asked the fake for was answered
        self.assertEqual([(r["method"], r["path"]) for r in self.fake.requests
                          if r["api"] == "unknown"], [], "a CLI asked for what the fake lacks")

    # -- one tool: stream and usage --------------------------------------------
    def first_turn(self, tool):
        """Invite tool into a seeded room with a slow streamed answer; check
        the text was visible while the model streamed it, and the usage."""
        room = self.seeded_room()
        sub = Subscriber(self.home, room)
        self.addCleanup(sub.close)
        #  12 deltas; the model's stream stops after 4 of them until a
        #  progress event with text has been seen (or 150 s passed), so the
        #  answer is unfinished for as long as a loaded machine needs
        self.fake.hold()
        self.addCleanup(self.fake.release)
        self.fake.add({"text": ANSWER1, "chunks": 12, "chunk_delay_ms": 20, "usage": USAGE1,
                       "hold_after": 4, "hold_max_s": 150})
        result = []
        inviter = threading.Thread(target=lambda: result.append(self.invite(tool, room)))
        inviter.start()

        def text_seen():
            return [d for t, d in sub.progress()
                    if d.get("text") and d["tool"] == PEER_TOOL.get(tool, tool)]
        deadline = time.monotonic() + 150
        while not text_seen() and inviter.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        early = text_seen()
        self.fake.release()
        inviter.join(200)
        self.assertFalse(inviter.is_alive(), "the invite did not end")
        self.assertTrue(result, "the invite failed")
        data = result[0]
        self.assertEqual(data["response"].strip(), ANSWER1.strip())
        posted = self.read(room)[-1]
        self.assertEqual(posted["content"].strip(), ANSWER1.strip())

        #  The text was visible while the model was still streaming it
        req1 = self.turn_requests(tool)
        self.assertEqual(len(req1), 1, "one model turn for one invite")
        self.assertTrue(early, "no progress event with text while the model's answer was "
                        "unfinished; events: %r" % sub.progress()[-5:])
        for d in early:
            self.assertTrue(ANSWER1.startswith(d["text"]) or d["text"] in ANSWER1,
                            "progress text is not part of the answer: %r" % d["text"][:200])
            self.assertLess(len(d["text"]), len(ANSWER1))
            self.assertEqual(d["msg_id"], posted["id"],
                             "progress msg_id is the id the answer is posted under")

        #  Usage as the model reported it, in the reply and the posted answer
        self.assertEqual(usage_subset(data.get("usage")), expected_usage(tool, USAGE1),
                         data.get("usage"))
        self.assertGreaterEqual(data["usage"].get("duration_ms", 0), 0)
        meta = posted.get("metadata") or {}
        if isinstance(meta, str):
            meta = json.loads(meta)
        self.assertEqual(usage_subset(meta.get("usage")), expected_usage(tool, USAGE1), posted)
        self.assert_offline()
        return room


class RealCliTest(RealCliCase):

    def test_claude_streams_and_reports_usage(self):
        self.need("claude")
        self.first_turn("claude")

    def test_codex_streams_and_reports_usage(self):
        self.need("codex")
        self.first_turn("codex")

    def test_gemini_streams_and_reports_usage(self):
        self.need("gemini")
        self.first_turn("gemini")

    def test_opencode_streams_and_reports_usage(self):
        self.need("opencode")
        self.first_turn("opencode")

    # -- errors from the model ------------------------------------------------
    def check_api_error(self, tool, status, pattern):
        self.need(tool)
        room = self.seeded_room()
        self.fake.add({"status": status, "times": 50})
        r = self.cli("invite", "--tool", tool, "--room", room, "--timeout", "120")
        self.assertFalse(r.doc["ok"], r)
        self.assertRegex(r.doc["error"].lower(), pattern, r)
        self.assertTrue(self.read(room)[-1]["content"].startswith("[spawn error]"))
        self.assert_offline()

    def test_claude_auth_error(self):
        self.check_api_error("claude", 401, "auth|api key|log ?in")

    def test_codex_auth_error(self):
        self.check_api_error("codex", 401, "auth|api key|log ?in")

    def test_gemini_rate_limit(self):
        self.check_api_error("gemini", 429, "rate|limit|quota|exhausted")

    def test_opencode_rate_limit(self):
        self.check_api_error("opencode", 429, "rate|limit|quota")

    # -- the model's stream breaks off ----------------------------------------
    CUT = "A streamed answer that the model server cuts off after its first part."

    def check_stream_cut(self, tool, times, recovers):
        """The fake closes the stream after the first delta, `times` times.
        A tool that recovers (retries, or claude's non-streaming fallback)
        must get its whole answer posted once, never the cut part glued to
        it; one that gives up must fail the invite with nothing posted."""
        self.need(tool)
        room = self.seeded_room()
        self.fake.add({"text": self.CUT, "chunks": 4, "hang_up": True, "times": times},
                      {"text": self.CUT})
        r = self.cli("invite", "--tool", tool, "--room", room, "--timeout", "180")
        last = self.read(room)[-1]
        if recovers:
            self.assertTrue(r.doc["ok"], r)
            self.assertEqual(r.doc["data"]["response"].strip(), self.CUT)
            self.assertEqual(last["content"].strip(), self.CUT)
        else:
            self.assertFalse(r.doc["ok"], r)
            self.assertTrue(r.doc["error"].strip(), r)
            self.assertTrue(last["content"].startswith("[spawn error]"), last)
            #  and the part that came is not posted as if it were the answer
            self.assertNotIn(self.CUT[:17], last["content"])
        self.assert_offline()

    def test_claude_stream_cut_falls_back(self):
        #  claude retries a broken stream as one non-streaming request
        self.check_stream_cut("claude", 50, True)

    def test_codex_stream_cut_fails(self):
        self.check_stream_cut("codex", 50, False)

    def test_gemini_stream_cut_fails(self):
        #  gemini exits 0 here, with a result of status "error"
        self.check_stream_cut("gemini", 50, False)

    # -- discuss stops at the token budget --------------------------------------
    def test_discuss_token_budget(self):
        self.need("claude", "gemini")
        room = self.seeded_room()
        per_turn = {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 0,
                    "cache_write_tokens": 0}
        for i in range(6):
            self.fake.add({"text": "turn %d answer" % (i + 1), "usage": per_turn})
        #  120 tokens a turn: after 3 invites the total (360) has reached 300
        data = self.ok_cli("discuss", "--tools", "claude,gemini", "--rounds", "3",
                           "--room", room, "--max-tokens", "300", "--timeout", "180")
        self.assertEqual(data["total_invites"], 3, data)
        self.assertEqual(data.get("stopped"), "token budget of 300 reached after 3 invites")
        self.assertEqual(usage_subset(data["usage"]),
                         {"input_tokens": 300, "output_tokens": 60, "cache_read_tokens": 0,
                          "cache_write_tokens": 0}, data["usage"])
        self.assertEqual(len(self.fake.model_requests()), 3)
        self.assert_offline()

    # -- quick: all four at once --------------------------------------------------
    def test_quick_all_four(self):
        self.need(*realcli.TOOLS)
        data = self.ok_cli("quick", "What is 2+2? One word.", "--tools",
                           "claude,codex,gemini,opencode", "--timeout", "180")
        default = fakemodel.DEFAULT_USAGE
        for tool in realcli.TOOLS:
            self.assertEqual(data["responses"][tool].strip(), fakemodel.DEFAULT_TEXT, data)
            self.assertEqual(usage_subset(data["usage"]["by_tool"][tool]),
                             expected_usage(tool, default), data["usage"])
        self.assertEqual(data["usage"]["input_tokens"], 4 * default["input_tokens"])
        self.assertEqual(data["usage"]["output_tokens"], 4 * default["output_tokens"])
        self.assertEqual(len(self.fake.model_requests()), 4)
        self.assert_offline()


if __name__ == "__main__":
    unittest.main(verbosity=2)
