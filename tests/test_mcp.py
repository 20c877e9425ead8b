"""test_mcp.py — `ai-peer mcp`, the MCP server for AI agents.

The official MCP TypeScript SDK client (tests/mcp/sdk_client.mjs, from
tests/node) drives the real server against real daemons: every tool, errors,
progress, cancellation, wait_messages woken by another process. Raw JSON-RPC
lines check what the SDK never sends: garbage, calls before initialize, a
line over 1 MiB, stdin closed mid-call.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402
from aiptest import AI_PEER, BIN_DIR, SOURCE_DIR, AipTestCase, wait_until  # noqa: E402

FAKE = os.path.join(SOURCE_DIR, "tests", "fake")
SDK_CLIENT = os.path.join(SOURCE_DIR, "tests", "mcp", "sdk_client.mjs")
SDK = os.path.join(SOURCE_DIR, "tests", "node", "node_modules", "@modelcontextprotocol", "sdk")
NODE = shutil.which("node")


class McpCase(AipTestCase):

    def setUp(self):
        super().setUp()
        self.fake_dir = tempfile.mkdtemp(prefix="aipf", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.fake_dir, True)
        self.env["PATH"] = FAKE + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.env["FAKE_AI_DIR"] = self.fake_dir
        self.env["AIP_BIN_DIR"] = BIN_DIR
        for key in list(self.env):
            if key.startswith("FAKE_") and key != "FAKE_AI_DIR":
                del self.env[key]

    def fake_mode(self, tool, mode):
        with open(os.path.join(self.fake_dir, tool + ".mode"), "w") as f:
            f.write(mode)

    def fake_calls(self, tool):
        try:
            with open(os.path.join(self.fake_dir, tool + ".calls.jsonl")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []


class TestSdkClient(McpCase):
    """The official SDK client against the real server."""

    def setUp(self):
        super().setUp()
        if not NODE or not os.path.isdir(SDK):
            raise self.failureException("node and @modelcontextprotocol/sdk (tests/node) are "
                                        "needed: run scripts/setup.sh")

    def scenario(self, name, timeout=120):
        p = subprocess.run([NODE, SDK_CLIENT, name], env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 0, "scenario %s failed:\n%s\n%s" % (name, out, err))
        for mark in aiptest.SANITIZER_MARKS:
            self.assertNotIn(mark, err)
        facts = json.loads(out.strip().splitlines()[-1])
        self.assertTrue(facts["ok"])
        return facts

    def test_every_tool(self):
        facts = self.scenario("tools")
        self.assertEqual(facts["tools"], 14)
        # the fake tools really ran (invite, quick x2, discuss x2, async)
        self.assertGreaterEqual(len(self.fake_calls("claude")), 3)
        self.assertGreaterEqual(len(self.fake_calls("codex")), 3)

    def test_errors(self):
        self.scenario("errors")

    def test_session_and_budget_arguments_as_the_cli_flags(self):
        self.scenario("budgets")

    def test_progress_while_an_invite_streams(self):
        self.fake_mode("claude", "stream")
        facts = self.scenario("progress")
        self.assertGreaterEqual(facts["notifications"], 2)

    def test_cancel_kills_the_invite(self):
        self.fake_mode("claude", "hang")
        self.scenario("cancel")
        calls = wait_until(lambda: self.fake_calls("claude"), 10, "the fake claude to start")
        wait_until(lambda: not aiptest.pid_alive(calls[0]["pid"]), 20,
                   "the cancelled tool to be killed")

    def test_wait_messages_woken_by_another_process(self):
        self.scenario("wait")


class RawServer:
    """ai-peer mcp on pipes, spoken to line by line."""

    def __init__(self, case, *args):
        self.p = subprocess.Popen([AI_PEER, "mcp"] + list(args), env=case.env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        case.addCleanup(self.kill)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        err = self.p.stderr.read().decode(errors="replace")
        for mark in aiptest.SANITIZER_MARKS:
            assert mark not in err, "sanitizer report from ai-peer mcp:\n" + err
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass

    def send(self, obj):
        line = obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n"
        self.p.stdin.write(line)
        self.p.stdin.flush()

    def recv(self):
        line = self.p.stdout.readline()
        assert line, "the server closed stdout (stderr: %r)" % self.p.stderr.read()
        assert line.endswith(b"\n")
        return json.loads(line)

    def call(self, rid, method, params=None):
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.recv()

    def initialize(self, version="2025-06-18", name="raw-test"):
        r = self.call(0, "initialize", {"protocolVersion": version, "capabilities": {},
                                        "clientInfo": {"name": name, "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r


class TestRawProtocol(McpCase):

    def test_lifecycle_and_versions(self):
        s = RawServer(self)
        r = s.call(1, "tools/list")
        self.assertEqual(r["error"]["code"], -32600)
        self.assertIn("initialize", r["error"]["message"])
        r = s.initialize("2025-06-18")
        self.assertEqual(r["result"]["protocolVersion"], "2025-06-18")
        self.assertEqual(r["result"]["serverInfo"]["name"], "ai-peer")
        self.assertIn("tools", r["result"]["capabilities"])
        self.assertEqual(s.call(2, "ping"), {"jsonrpc": "2.0", "id": 2, "result": {}})
        names = [t["name"] for t in s.call(3, "tools/list")["result"]["tools"]]
        self.assertIn("wait_messages", names)
        s2 = RawServer(self)
        self.assertEqual(s2.initialize("2025-11-25")["result"]["protocolVersion"], "2025-11-25")
        s3 = RawServer(self)
        self.assertEqual(s3.initialize("1999-01-01")["result"]["protocolVersion"], "2025-11-25")
        r = s3.call("d", "server/discover")
        self.assertIn("2025-06-18", r["result"]["supportedVersions"])

    def test_bad_json_rpc_gets_standard_codes(self):
        s = RawServer(self)
        s.initialize()
        s.send(b"{not json\n")
        self.assertEqual(s.recv()["error"]["code"], -32700)
        s.send(b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]\n')
        self.assertEqual(s.recv()["error"]["code"], -32600)
        s.send(b'{"id":5,"method":"ping"}\n')
        r = s.recv()
        self.assertEqual((r["id"], r["error"]["code"]), (5, -32600))
        self.assertEqual(s.call(6, "no/such/method")["error"]["code"], -32601)
        r = s.call(7, "tools/call", {"name": "nope", "arguments": {}})
        self.assertEqual(r["error"]["code"], -32602)
        r = s.call(8, "tools/call", {"name": "chat_send", "arguments": []})
        self.assertEqual(r["error"]["code"], -32602)
        # blank lines and notifications get no answer; the next request does
        s.send(b"\n   \n")
        s.send({"jsonrpc": "2.0", "method": "notifications/whatever"})
        self.assertEqual(s.call(9, "ping")["id"], 9)

    def test_a_line_over_1_mib_is_refused_without_holding_it(self):
        s = RawServer(self)
        s.initialize()
        status = "/proc/%d/status" % s.p.pid

        def rss_kb():
            with open(status) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        before = rss_kb()
        chunk = b"x" * 65536
        s.p.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"')
        for _ in range(16 * 16):          # 16 MiB
            s.p.stdin.write(chunk)
        s.p.stdin.write(b'"}}\n')
        s.p.stdin.flush()
        r = s.recv()
        self.assertEqual(r["error"]["code"], -32600)
        self.assertIsNone(r["id"])
        self.assertIn("at most", r["error"]["message"])
        # it did not keep 16 MiB (a 1 MiB buffer at most, and freed)
        self.assertLess(rss_kb() - before, 8 * 1024)
        # and it goes on
        self.assertEqual(s.call(2, "ping")["id"], 2)

    def test_identity_from_tool_flag_and_client_name(self):
        room = self.new_room()
        s = RawServer(self, "--tool", "opencode")
        s.initialize(name="claude-code")
        r = s.call(1, "tools/call", {"name": "chat_send",
                                     "arguments": {"room": room, "message": "hi"}})
        sent = r["result"]["structuredContent"]["sent"]
        self.assertEqual(sent["peer_id"], aiptest.socket_hostname_id() + "-opencode")
        s2 = RawServer(self)
        s2.initialize(name="Weird Client/2")
        r = s2.call(1, "tools/call", {"name": "chat_send",
                                      "arguments": {"room": room, "message": "hi"}})
        self.assertEqual(r["result"]["structuredContent"]["sent"]["peer_id"],
                         aiptest.socket_hostname_id() + "-weird-client-2")
        self.assertEqual(r["result"]["structuredContent"]["sent"]["peer_type"], "ai")

    def test_stdin_closed_mid_call_cancels_and_exits_0(self):
        self.fake_mode("claude", "hang")
        room = self.new_room()
        s = RawServer(self)
        s.initialize()
        s.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "invite", "arguments": {"tool": "claude", "room": room,
                                                           "timeout": 120}}})
        calls = wait_until(lambda: self.fake_calls("claude"), 15, "the fake claude to start")
        s.p.stdin.close()
        self.assertEqual(s.p.wait(timeout=10), 0)
        self.assertEqual(s.p.stdout.read(), b"", "no answer to a call whose client left")
        wait_until(lambda: not aiptest.pid_alive(calls[0]["pid"]), 20,
                   "the tool of the abandoned call to be killed")
        jobs = self.ok("jobs")["jobs"]
        self.assertEqual([j["state"] for j in jobs], ["cancelled"])

    def test_the_daemons_killed_mid_session(self):
        """brokerd dies under a running server: the next call restarts the
        daemons, and wait_messages is woken by the new broker's events."""
        room = self.new_room()
        s = RawServer(self, "--tool", "codex")
        s.initialize()
        r = s.call(1, "tools/call", {"name": "chat_send",
                                     "arguments": {"room": room, "message": "before"}})
        self.assertFalse(r["result"]["isError"], r)
        old = self.broker_pid()
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: not aiptest.pid_alive(old), 10, "brokerd to die")
        r = s.call(2, "tools/call", {"name": "chat_send",
                                     "arguments": {"room": room, "message": "after"}})
        self.assertFalse(r["result"]["isError"], r)
        self.assertEqual(r["result"]["structuredContent"]["sent"]["content"], "after")
        self.assertNotEqual(wait_until(self.broker_pid, 10, "a new brokerd"), old)
        s.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "wait_messages", "_meta": {"progressToken": "w"},
                           "arguments": {"room": room, "timeout_s": 60}}})
        # a progress notification: it is waiting
        self.assertEqual(s.recv()["method"], "notifications/progress")
        self.ok("chat", room, "wake after the restart")
        while True:
            r = s.recv()
            if r.get("id") == 3:
                break
        got = r["result"]["structuredContent"]
        self.assertEqual([m["content"] for m in got["messages"]], ["wake after the restart"])
        self.assertFalse(got["timed_out"])

    def test_arguments_of_the_wrong_kind(self):
        """Each kind of argument refuses a value of another kind with a
        message naming it, before any command runs."""
        s = RawServer(self)
        s.initialize()
        cases = [
            ("chat_send", {"room": 7, "message": "x"}, "'room' must be a string"),
            ("room_create", {"lan": "yes"}, "'lan' must be true or false"),
            ("quick", {"question": "q", "tools": []}, "'tools' must be a non-empty array"),
            ("quick", {"question": "q", "tools": ["codex", 3]}, "'tools' must list tool names"),
            ("quick", {"question": "q", "tools": ["a,b"]}, "'tools' must list tool names"),
            ("quick", {"tools": ["codex"]}, "quick needs the argument 'question'"),
        ]
        for i, (tool, args, want) in enumerate(cases):
            r = s.call(i + 1, "tools/call", {"name": tool, "arguments": args})
            self.assertIn("result", r, (tool, args))
            self.assertTrue(r["result"]["isError"], r)
            self.assertIn(want, r["result"]["content"][0]["text"], (tool, args))
        self.assertEqual(self.ok("room", "list")["rooms"], [], "no command ran")

    def test_calls_in_flight_are_bounded(self):
        s = RawServer(self)
        s.initialize()
        for i in range(80):
            s.send({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                    "params": {"name": "wait_messages", "arguments": {"timeout_s": 60}}})
        refused = [s.recv() for _ in range(16)]
        self.assertEqual(sorted(r["id"] for r in refused), list(range(65, 81)))
        for r in refused:
            self.assertEqual(r["error"]["code"], -32603)
            self.assertIn("too many tool calls", r["error"]["message"])
        # cancelling makes room again
        for i in range(64):
            s.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": i + 1}})
        r = wait_until(lambda: self._try_ping_call(s), 20, "a call to be accepted again")
        self.assertFalse(r["result"]["isError"])

    def _try_ping_call(self, s):
        s.send({"jsonrpc": "2.0", "id": "again", "method": "tools/call",
                "params": {"name": "room_list", "arguments": {}}})
        r = s.recv()
        return r if "result" in r else None

    def test_stdout_is_protocol_only(self):
        room = self.new_room()
        s = RawServer(self)
        s.initialize()
        # a public-room warning or progress goes to stderr, never stdout
        for i in range(20):
            s.send({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                    "params": {"name": "chat_send",
                               "arguments": {"room": room, "message": "m%d" % i}}})
        ids = sorted(s.recv()["id"] for _ in range(20))
        self.assertEqual(ids, list(range(1, 21)))
        s.p.stdin.close()
        self.assertEqual(s.p.wait(timeout=10), 0)
        self.assertEqual(s.p.stdout.read(), b"")


if __name__ == "__main__":
    aiptest.main()
