"""Token usage and budgets: `ai-peer usage [ROOM]`, quick/discuss data.usage,
the usage line of export md, and --max-tokens.

Answers carry metadata.usage: put in directly through the protocol (as any
peer may) and through invites of a tools.json tool that reports usage
(tests/fake/usage_tool.py)."""
import json
import os
import sys

from aiptest import AipTestCase, ProtoClient, main

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake")
TOOL = os.path.join(FAKE, "usage_tool.py")


def ai_peer(tool):
    return {"id": "host-" + tool, "name": tool, "type": "ai", "tool": tool, "machine": "host"}


class UsageTestCase(AipTestCase):

    def setUp(self):
        super().setUp()
        self.env["FAKE_AI_DIR"] = self.tmp

    def tools(self, *names):
        """tools.json with one usage-reporting tool per name."""
        os.makedirs(self.home, exist_ok=True)
        with open(os.path.join(self.home, "tools.json"), "w") as f:
            json.dump({"tools": {n: {"argv": [sys.executable, TOOL, n, "--json"],
                                     "output": "json", "answer": "result", "usage": "usage"}
                                 for n in names}}, f)

    def set_usage(self, tool, usage):
        with open(os.path.join(self.tmp, tool + ".usage"), "w") as f:
            json.dump(usage, f)

    def calls(self, tool):
        try:
            with open(os.path.join(self.tmp, tool + ".calls")) as f:
                return len(f.read().split())
        except OSError:
            return 0

    def post(self, client, room, tool, metadata, content="an answer"):
        if not isinstance(metadata, str):
            metadata = json.dumps(metadata)
        rep = client.call("msg.send", {"room_id": room, "content": content,
                                       "peer": ai_peer(tool), "metadata": metadata})
        self.assertTrue(rep and rep["ok"], rep)
        return rep["data"]


class UsageCommand(UsageTestCase):

    def test_sums_a_room_and_all_rooms_per_tool(self):
        one, two = self.new_room("one"), self.new_room("two")
        client = ProtoClient(self.home)
        self.addCleanup(client.close)
        self.post(client, one, "claude", {"tool": "claude", "usage": {
            "input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 50,
            "cache_write_tokens": 5, "cost_usd": 0.25, "model": "m1", "duration_ms": 4000}})
        self.post(client, one, "claude", {"usage": {"input_tokens": 234, "output_tokens": 367,
                                                    "cost_usd": 0.5, "duration_ms": 200}})
        self.post(client, one, "codex", {"usage": {"input_tokens": 10, "output_tokens": 1}})
        self.post(client, two, "codex", {"usage": {"input_tokens": 7, "output_tokens": 3,
                                                   "duration_ms": 9}})
        #  Not answers with usage: a human line, an error, no metadata
        self.ok("chat", one, "a human line")
        self.post(client, one, "codex", {"error": True}, "[spawn error] x")

        data = self.ok("usage", one)
        self.assertEqual(data["room"], one)
        self.assertEqual(data["answers"], 3)
        self.assertEqual(data["input_tokens"], 1244)
        self.assertEqual(data["output_tokens"], 568)
        self.assertEqual(data["cache_read_tokens"], 50)
        self.assertEqual(data["cache_write_tokens"], 5)
        self.assertEqual(data["duration_ms"], 4200)
        self.assertAlmostEqual(data["cost_usd"], 0.75)
        claude, codex = data["by_tool"]["claude"], data["by_tool"]["codex"]
        self.assertEqual(sorted(data["by_tool"]), ["claude", "codex"])
        self.assertEqual((claude["answers"], claude["input_tokens"], claude["output_tokens"]),
                         (2, 1234, 567))
        self.assertAlmostEqual(claude["cost_usd"], 0.75)
        #  codex never reported a cost: none is made up
        self.assertEqual((codex["answers"], codex["input_tokens"]), (1, 10))
        self.assertNotIn("cost_usd", codex)

        every = self.ok("usage")
        self.assertNotIn("room", every)
        self.assertEqual(every["answers"], 4)
        self.assertEqual(every["input_tokens"], 1251)
        self.assertEqual(every["by_tool"]["codex"]["input_tokens"], 17)
        self.assertEqual(every["by_tool"]["codex"]["rooms"], 2)
        self.assertEqual(every["by_tool"]["claude"]["rooms"], 1)

        #  A deleted room's answers are no longer counted
        self.ok("room", "delete", one)
        every = self.ok("usage")
        self.assertEqual(every["answers"], 1)
        self.assertEqual(list(every["by_tool"]), ["codex"])

    def test_bad_usage_from_a_peer_is_stored_and_counts_as_nothing(self):
        room = self.new_room()
        client = ProtoClient(self.home)
        self.addCleanup(client.close)
        bad = [{"usage": {"input_tokens": -5, "output_tokens": 10 ** 20,
                          "cache_read_tokens": "7", "cost_usd": 1e9, "duration_ms": 1.5}},
               {"usage": {"input_tokens": 2 ** 62, "output_tokens": None, "cost_usd": "1"}},
               {"usage": [1, 2, 3]},
               {"usage": "many"},
               'not json at all, but it says "usage"',
               '{"usage": {"input_tokens": 5',
               ""]
        for metadata in bad:
            self.post(client, room, "gemini", metadata)
        #  Every message was stored
        self.assertEqual(len([m for m in self.read(room) if m["peer_id"] == "host-gemini"
                              and m["type"] == "message"]),
                         len(bad))
        data = self.ok("usage", room)
        gemini = data["by_tool"]["gemini"]
        #  The two usage objects are answers; none of their values counts
        self.assertEqual(gemini["answers"], 2)
        for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                    "duration_ms"):
            self.assertEqual(gemini[key], 0, key)
            self.assertEqual(data[key], 0, key)
        self.assertNotIn("cost_usd", gemini)

    def test_a_message_sent_again_is_counted_once(self):
        room = self.new_room()
        client = ProtoClient(self.home)
        self.addCleanup(client.close)
        args = {"room_id": room, "id": "msg-resent-once", "content": "an answer",
                "peer": ai_peer("codex"),
                "metadata": json.dumps({"usage": {"input_tokens": 40, "output_tokens": 2}})}
        for _ in range(3):
            rep = client.call("msg.send", args)
            self.assertTrue(rep["ok"], rep)
        data = self.ok("usage", room)
        self.assertEqual((data["answers"], data["input_tokens"]), (1, 40))

    def test_a_long_tool_name_is_counted_under_its_first_64_characters(self):
        room = self.new_room()
        client = ProtoClient(self.home)
        self.addCleanup(client.close)
        tool = "é" * 100
        peer = dict(ai_peer("x"), tool=tool)
        rep = client.call("msg.send", {"room_id": room, "content": "hi", "peer": peer,
                                       "metadata": json.dumps({"usage": {"input_tokens": 9}})})
        self.assertTrue(rep["ok"], rep)
        data = self.ok("usage", room)
        self.assertEqual(list(data["by_tool"]), ["é" * 64])
        self.assertEqual(data["by_tool"]["é" * 64]["input_tokens"], 9)
        self.assertEqual(data["input_tokens"], 9)

    def test_arguments_are_checked(self):
        self.assertIn("room list", self.fail("usage", "room-000000000000"))
        self.assertIn("Invalid room id", self.fail("usage", "no such room"))
        self.assertIn("usage", self.fail("usage", "room-a", "room-b"))
        self.assertIn("--bogus", self.fail("usage", "--bogus"))
        r = self.run_cli("usage", "--help")
        self.assertEqual(r.rc, 0)
        self.assertIn(b"Usage: ai-peer usage [room-id]", r.stdout)
        client = ProtoClient(self.home)
        self.addCleanup(client.close)
        rep = client.call("usage.sum", {"room_id": "bad id"})
        self.assertFalse(rep["ok"], rep)
        self.assertEqual(rep["error"]["code"], "malformed")
        rep = client.call("usage.sum", {"room": "x"})
        self.assertFalse(rep["ok"], rep)

    def test_export_md_shows_one_usage_line_under_each_ai_answer(self):
        room = self.new_room("md")
        client = ProtoClient(self.home)
        self.addCleanup(client.close)
        self.ok("chat", room, "question from a human")
        self.post(client, room, "claude-code", {"usage": {
            "input_tokens": 1234, "output_tokens": 567, "cost_usd": 0.0123,
            "duration_ms": 4200}}, "the answer of claude")
        self.post(client, room, "codex", {"usage": {"input_tokens": 5, "output_tokens": 1}},
                  "the answer of codex")
        self.post(client, room, "gemini", {"tool": "gemini"}, "no usage here")
        md = self.ok("export", room)["markdown"]
        lines = md.split("\n")
        line = "_claude-code · 1,234 in / 567 out · $0.0123 · 4.2 s_"
        self.assertIn(line, lines)
        self.assertIn("_codex · 5 in / 1 out_", lines)
        #  Under its answer, outside the body
        self.assertLess(md.index("the answer of claude"), md.index(line))
        self.assertLess(md.index(line), md.index("the answer of codex"))
        self.assertEqual(md.count(" in / "), 2)
        self.assertEqual(md.count("in / 567 out"), 1)


class UsageOfInvites(UsageTestCase):

    def test_invite_quick_and_usage_agree_with_the_tool(self):
        self.tools("alpha", "beta")
        self.set_usage("alpha", {"input_tokens": 300, "output_tokens": 40,
                                 "cache_read_tokens": 11, "cost_usd": 0.01,
                                 "model": "alpha-1", "duration_ms": 1200})
        self.set_usage("beta", {"input_tokens": 500, "output_tokens": 60})
        data = self.ok("quick", "what is 2+2?", "--tools", "alpha,beta")
        usage = data["usage"]
        self.assertEqual(usage["input_tokens"], 800)
        self.assertEqual(usage["output_tokens"], 100)
        self.assertEqual(usage["cache_read_tokens"], 11)
        self.assertEqual(usage["cache_write_tokens"], 0)
        #  spawnd measures the duration itself
        self.assertGreater(usage["duration_ms"], 0)
        self.assertEqual(usage["duration_ms"], sum(u["duration_ms"]
                                                   for u in usage["by_tool"].values()))
        self.assertAlmostEqual(usage["cost_usd"], 0.01)
        self.assertEqual(sorted(usage["by_tool"]), ["alpha", "beta"])
        self.assertEqual(usage["by_tool"]["alpha"]["input_tokens"], 300)
        self.assertEqual(usage["by_tool"]["alpha"]["model"], "alpha-1")
        self.assertEqual(usage["by_tool"]["beta"]["output_tokens"], 60)
        self.assertNotIn("over_budget", data)
        room = data["room"]
        #  invite passes spawn.run's usage through; the answer keeps it
        inv = self.ok("invite", "--tool", "beta", "--room", room)
        self.assertEqual((inv["usage"]["input_tokens"], inv["usage"]["output_tokens"]),
                         (500, 60))
        meta = json.loads(self.read(room)[-1]["metadata"])
        self.assertEqual(meta["usage"]["input_tokens"], 500)
        summed = self.ok("usage", room)
        self.assertEqual(summed["answers"], 3)
        self.assertEqual(summed["by_tool"]["beta"]["answers"], 2)
        self.assertEqual(summed["by_tool"]["beta"]["input_tokens"], 1000)
        self.assertEqual(summed["input_tokens"], 1300)

    def test_quick_reports_the_answers_over_the_budget(self):
        self.tools("alpha", "beta", "gamma")
        for tool in ("alpha", "beta", "gamma"):
            self.set_usage(tool, {"input_tokens": 500, "output_tokens": 100})
        data = self.ok("quick", "hi", "--tools", "alpha,beta,gamma", "--max-tokens", "1000")
        self.assertEqual(data["max_tokens"], 1000)
        self.assertEqual(data["usage"]["input_tokens"] + data["usage"]["output_tokens"], 1800)
        #  600 fits, 1200 does not: the answers that arrived second and third
        self.assertEqual(len(data["over_budget"]), 2, data["over_budget"])
        self.assertEqual(len(set(data["over_budget"])), 2)
        self.assertTrue(set(data["over_budget"]) <= {"alpha", "beta", "gamma"})
        #  Every answer is still there
        self.assertEqual(sorted(data["responses"]), ["alpha", "beta", "gamma"])
        data = self.ok("quick", "hi", "--tools", "alpha,beta", "--max-tokens", "5000")
        self.assertEqual(data["over_budget"], [])

    def test_discuss_stops_at_the_token_budget(self):
        self.tools("alpha", "beta")
        self.set_usage("alpha", {"input_tokens": 500, "output_tokens": 100})
        self.set_usage("beta", {"input_tokens": 300, "output_tokens": 50})
        data = self.ok("discuss", "--tools", "alpha,beta", "--rounds", "5",
                       "--context", "tabs or spaces?", "--max-tokens", "1400")
        #  600, 950, 1550: the fourth turn never starts
        self.assertEqual(data["stopped"], "token budget of 1400 reached after 3 invites")
        self.assertEqual(data["total_invites"], 3)
        self.assertEqual(len(data["log"]), 3)
        self.assertEqual((self.calls("alpha"), self.calls("beta")), (2, 1))
        self.assertEqual(data["usage"]["input_tokens"], 1300)
        self.assertEqual(data["usage"]["output_tokens"], 250)
        self.assertEqual(data["usage"]["by_tool"]["alpha"]["input_tokens"], 1000)
        self.assertEqual(data["log"][0]["usage"]["input_tokens"], 500)
        self.assertEqual(data["max_tokens"], 1400)
        #  A budget that is never reached changes nothing
        data = self.ok("discuss", "--tools", "alpha,beta", "--rounds", "1",
                       "--context", "again", "--max-tokens", "100000")
        self.assertNotIn("stopped", data)
        self.assertEqual(data["total_invites"], 2)
        self.assertEqual(data["usage"]["input_tokens"], 800)

    def test_max_tokens_is_checked(self):
        for bad in ("0", "-5", "ten", "1e3", "99999999999999999999", ""):
            for cmd in (["quick", "hi", "--tools", "alpha"],
                        ["discuss", "--tools", "alpha,beta", "--context", "x"]):
                err = self.fail(*cmd, "--max-tokens", bad)
                self.assertIn("--max-tokens", err)
        self.assertEqual(self.calls("alpha"), 0)


class UsageOfBuiltinTools(UsageTestCase):
    """The built-in adapters on the fake CLIs, which print the real tools'
    structured shapes (claude and gemini stream-json, codex app-server,
    opencode acp) with usage in each tool's own keys."""

    def setUp(self):
        super().setUp()
        self.env["PATH"] = FAKE + ":" + self.env.get("PATH", "/usr/bin:/bin")

    def test_quick_usage_and_the_room_sum_agree(self):
        tools = ["claude-code", "codex", "gemini", "opencode"]
        data = self.ok("quick", "what is 2+2?", "--tools", ",".join(tools), "--max-tokens", "1")
        for tool in tools:
            self.assertFalse(data["responses"][tool].startswith("[error]"), data["responses"])
        usage = data["usage"]
        self.assertEqual(sorted(usage["by_tool"]), sorted(tools))
        for tool in tools:
            self.assertGreater(usage["by_tool"][tool]["input_tokens"], 0, usage)
            self.assertGreater(usage["by_tool"][tool]["output_tokens"], 0, usage)
        for key in ("input_tokens", "output_tokens"):
            self.assertEqual(usage[key], sum(u[key] for u in usage["by_tool"].values()))
        #  Every answer is past a budget of one token
        self.assertEqual(sorted(data["over_budget"]), sorted(tools))
        summed = self.ok("usage", data["room"])
        self.assertEqual(summed["answers"], 4)
        for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            self.assertEqual(summed[key], usage[key], key)
        for tool in tools:
            self.assertEqual(summed["by_tool"][tool]["input_tokens"],
                             usage["by_tool"][tool]["input_tokens"], tool)


if __name__ == "__main__":
    main()
