"""test_invite.py — invite, quick, discuss, discover against fake AI tools.

The fake tools (tests/fake/) accept exactly the command lines of DESIGN.md
§7b, record their argv and stdin, and misbehave on demand. Each test runs
its own daemons in a fresh, short AI_PEERS_HOME and stops them afterwards.
Nothing sleeps to synchronise: every wait polls a condition with a deadline.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from collections import OrderedDict

BIN = os.environ.get("AIP_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
SRC = os.environ.get("AIP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
FAKE = os.path.join(SRC, "tests", "fake")
AI_PEER = os.path.join(BIN, "ai-peer")

MARKDOWN = (
    "# Review of the plan\n"
    "\n"
    "Two points, with *emphasis* and `code`:\n"
    "\n"
    "1. The cache is **unbounded**  \n"
    "   (two trailing spaces above are a Markdown line break)\n"
    "2. Unicode survives: naïve café, 你好, 🚀, \"quotes\" and \\backslashes\\\n"
    "\n"
    "```python\n"
    "def f(x):\n"
    "\treturn {\"a\": x}  # tab-indented\n"
    "```\n"
    "\n"
    "| a | b |\n"
    "|---|---|\n"
    "| 1 | 2 |\n"
    "\n"
    "> quoted @claude line"
)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)   # polling interval, not synchronisation
    raise AssertionError("timed out waiting for " + what)


def group_gone(pgid):
    try:
        os.killpg(pgid, 0)
        return False
    except ProcessLookupError:
        return True


class InviteTest(unittest.TestCase):

    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="aipi", dir="/tmp")
        self.fake_dir = tempfile.mkdtemp(prefix="aipf", dir="/tmp")
        self.work = tempfile.mkdtemp(prefix="aipw", dir="/tmp")
        self.env = dict(os.environ)
        self.env["AI_PEERS_HOME"] = self.home
        self.env["PATH"] = FAKE + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.env["FAKE_AI_DIR"] = self.fake_dir
        for key in list(self.env):
            if key.startswith("FAKE_") and key != "FAKE_AI_DIR":
                del self.env[key]

    def tearDown(self):
        subprocess.run([AI_PEER, "daemon", "stop"], env=self.env, capture_output=True,
                       timeout=30)
        # under -DAIP_SANITIZE=ON a daemon's report lands in its log
        log = os.path.join(self.home, "daemon.log")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                text = f.read()
            for sign in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                self.assertNotIn(sign, text, "sanitizer report in daemon.log")
        for d in (self.home, self.fake_dir, self.work):
            shutil.rmtree(d, ignore_errors=True)

    # helpers

    def run_cli(self, *args, ok=True, env=None):
        proc = subprocess.run([AI_PEER] + list(args), env=env or self.env, cwd=self.work,
                              capture_output=True, timeout=120)
        doc = json.loads(proc.stdout.decode("utf-8"), object_pairs_hook=OrderedDict)
        if ok:
            self.assertEqual(proc.returncode, 0, proc.stdout)
            self.assertTrue(doc["ok"], doc)
        else:
            self.assertEqual(proc.returncode, 1, proc.stdout)
            self.assertFalse(doc["ok"], doc)
        return doc

    def set_mode(self, tool, mode):
        with open(os.path.join(self.fake_dir, tool + ".mode"), "w") as f:
            f.write(mode)

    def set_answer(self, tool, text):
        with open(os.path.join(self.fake_dir, tool + ".answer"), "wb") as f:
            f.write(text.encode("utf-8"))

    def calls(self, tool):
        path = os.path.join(self.fake_dir, tool + ".calls.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def room(self):
        return self.run_cli("room", "create", "invite-test")["data"]["id"]

    def messages(self, room):
        return self.run_cli("chat", room, "-n", "1000")["data"]["messages"]

    # tests

    def test_invite_answers_with_history_on_stdin_only(self):
        room = self.room()
        self.run_cli("chat", room, "first line SECRET-HISTORY-1")
        self.run_cli("chat", room, "second line from bob", "--as", "bob")
        doc = self.run_cli("invite", "--tool", "codex", "--room", room,
                           "--context", "CONTEXT-REQUEST-77")
        data = doc["data"]
        self.assertEqual(data["tool"], "codex")
        self.assertEqual(data["room"], room)
        self.assertTrue(data["response"].startswith("codex answers:"))
        self.assertIn("elapsed_s", data)
        last = self.messages(room)[-1]
        self.assertEqual(last["content"], data["response"])
        self.assertTrue(last["peer_id"].endswith("-codex"))
        self.assertEqual(last["peer_type"], "ai")
        call = self.calls("codex")[-1]
        # codex runs as its app server: the prompt travels in the protocol
        self.assertEqual(call["argv"][1:], ["app-server"])
        self.assertEqual(call["methods"], ["initialize", "initialized", "thread/start",
                                           "turn/start"][:len(call["methods"])])
        self.assertEqual(call["methods"][-1], "turn/start")
        self.assertEqual(call["params"]["approvalPolicy"], "never")
        self.assertEqual(call["params"]["sandbox"], "read-only")
        self.assertEqual(os.path.realpath(call["params"]["cwd"]), os.path.realpath(self.work))
        self.assertEqual(data["usage"]["input_tokens"], len(call["stdin"]) // 4)
        self.assertIn("session_id", data)
        prompt = call["stdin"]
        self.assertIn("SECRET-HISTORY-1", prompt)
        self.assertIn("bob", prompt)
        self.assertIn("CONTEXT-REQUEST-77", prompt)
        self.assertIn("UNTRUSTED", prompt)
        for arg in call["argv"]:
            self.assertNotIn("SECRET-HISTORY", arg)
            self.assertNotIn("CONTEXT-REQUEST", arg)
        # --history bounds the messages in the prompt
        self.run_cli("invite", "--tool", "codex", "--room", room, "--history", "1")
        self.assertNotIn("SECRET-HISTORY-1", self.calls("codex")[-1]["stdin"])
        # the tool runs in the invoking directory, in its own process group
        self.assertEqual(os.path.realpath(call["cwd"]), os.path.realpath(self.work))
        self.assertEqual(call["pgid"], call["pid"])

    def test_markdown_answer_is_byte_exact(self):
        room = self.room()
        self.run_cli("chat", room, "please review")
        self.set_answer("codex", MARKDOWN + "\n")
        data = self.run_cli("invite", "--tool", "codex", "--room", room)["data"]
        self.assertEqual(data["response"], MARKDOWN)
        self.assertEqual(self.messages(room)[-1]["content"], MARKDOWN)
        self.assertEqual(data["mentions"], ["claude"])

    def test_quick_runs_tools_in_parallel(self):
        tools = ["claude", "codex", "opencode", "gemini"]
        for t in tools:
            self.set_mode(t, "delay:2")
        self.run_cli("daemon", "start")
        # all four spawnd workers are up before timing
        wait_for(lambda: sum(1 for d in self.run_cli("daemon", "status")["data"]["daemons"]
                             if d.get("service") == "spawn" and d["state"] == "ready") == 4,
                 15, "four spawnd workers")
        start = time.monotonic()
        data = self.run_cli("quick", "What is 2+2?", "--tools", ",".join(tools))["data"]
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 3.5, "quick took %.2f s" % elapsed)
        print("quick with four 2 s tools: %.2f s" % elapsed)
        self.assertEqual(list(data["responses"].keys()), tools)
        for t in tools:
            self.assertTrue(data["responses"][t].startswith(t + " answers:"), data["responses"])
            self.assertIn("What is 2+2?", self.calls(t)[-1]["stdin"])
        self.assertEqual(data["question"], "What is 2+2?")
        contents = [m["content"] for m in data["conversation"]]
        self.assertIn("What is 2+2?", contents)

    def test_timeout_leaves_no_process_behind(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        for tool, mode in (("codex", "ignore-term"), ("opencode", "grandchild-hang")):
            self.set_mode(tool, mode)
            start = time.monotonic()
            doc = self.run_cli("invite", "--tool", tool, "--room", room, "--timeout", "1", ok=False)
            self.assertLess(time.monotonic() - start, 8)
            self.assertIn("timed out after 1 s", doc["error"])
            call = self.calls(tool)[-1]
            wait_for(lambda: group_gone(call["pgid"]), 5, "the tool's process group to vanish")
            last = self.messages(room)[-1]
            self.assertTrue(last["content"].startswith("[spawn error] "), last)
        # a tool that exits but leaves a grandchild holding stdout does not stall
        self.set_mode("gemini", "grandchild")
        start = time.monotonic()
        data = self.run_cli("invite", "--tool", "gemini", "--room", room, "--timeout", "30")["data"]
        self.assertLess(time.monotonic() - start, 5)
        self.assertTrue(data["response"].startswith("gemini answers:"))
        call = self.calls("gemini")[-1]
        wait_for(lambda: group_gone(call["pgid"]), 5, "the grandchild to be killed")

    def test_failures_in_the_tools_own_words(self):
        with open(os.path.join(self.home, "tools.json"), "w") as f:
            json.dump({"tools": {"ghost": {"argv": ["no-such-ai-binary"],
                                           "install": "pip install ghost-ai"}}}, f)
        self.set_mode("claude", "auth")
        self.set_mode("gemini", "auth")
        self.set_mode("codex", "crash")
        self.set_mode("opencode", "empty")
        data = self.run_cli("quick", "hi", "--tools", "claude,gemini,codex,opencode,ghost")["data"]
        r = data["responses"]
        for tool in r:
            self.assertTrue(r[tool].startswith("[error] "), r)
        self.assertIn("not logged in", r["claude"])
        self.assertIn("Not logged in", r["claude"])      # claude's own words (stdout)
        self.assertIn("/login", r["claude"])
        self.assertIn("not logged in", r["gemini"])
        self.assertIn("crashed", r["codex"])
        self.assertIn("about to crash", r["codex"])
        self.assertIn("empty answer", r["opencode"])
        self.assertIn("not installed", r["ghost"])
        self.assertIn("pip install ghost-ai", r["ghost"])
        errors = [m["content"] for m in data["conversation"] if m["content"].startswith("[spawn error]")]
        self.assertEqual(len(errors), 5)
        # a failing invite exits 1 with the message
        room = data["room"]
        self.set_mode("codex", "fail")
        doc = self.run_cli("invite", "--tool", "codex", "--room", room, ok=False)
        self.assertIn("boom: the fake codex broke", doc["error"])
        self.assertIn("exit 2", doc["error"])

    def test_output_is_capped_and_repaired(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        # a structured tool's 50 MB line is an error, nothing half is posted
        self.set_mode("codex", "big")
        doc = self.run_cli("invite", "--tool", "codex", "--room", room, ok=False)
        self.assertIn("printed a line longer than 8 MiB", doc["error"])
        self.assertTrue(self.messages(room)[-1]["content"].startswith("[spawn error] "))
        # a text tool's 50 MB of output is cut visibly
        with open(os.path.join(self.home, "tools.json"), "w") as f:
            json.dump({"tools": {"plain": {"argv": [os.path.join(FAKE, "claude"), "-p",
                                                    "--output-format", "text"]}}}, f)
        self.set_mode("claude", "big")
        data = self.run_cli("invite", "--tool", "plain", "--room", room)["data"]
        self.assertLessEqual(len(data["response"].encode()), 256 * 1024)
        self.assertIn("answer cut by ai-peer", data["response"])
        self.assertIn("52428800 bytes", data["response"])
        self.set_mode("gemini", "badutf8")
        data = self.run_cli("invite", "--tool", "gemini", "--room", room)["data"]
        self.assertIn("\ufffd", data["response"])
        self.assertTrue(data["response"].startswith("bad bytes: "))

    def test_claudecode_is_unset_and_model_passed(self):
        env = dict(self.env)
        env["CLAUDECODE"] = "1"
        room = self.run_cli("room", "create", "cc", env=env)["data"]["id"]
        self.run_cli("chat", room, "hello", env=env)
        data = self.run_cli("invite", "--tool", "claude", "--room", room, "--model", "opus",
                            env=env)["data"]
        self.assertTrue(data["response"].startswith("claude answers:"))
        call = self.calls("claude")[-1]
        self.assertIsNone(call["claudecode"])
        self.assertEqual(call["argv"][1:], ["-p", "--output-format", "stream-json", "--verbose",
                                            "--include-partial-messages", "--model", "opus"])
        # claude-code's usage, cost and session as its result event gave them
        self.assertEqual(data["tool"], "claude-code")
        self.assertEqual(data["usage"]["cost_usd"], 0.001)
        self.assertEqual(data["usage"]["model"], "fake-claude-model")
        self.assertTrue(data["session_id"].startswith("fake-claude-"))
        meta = json.loads(self.messages(room)[-1]["metadata"])
        self.assertEqual(meta["usage"]["output_tokens"], data["usage"]["output_tokens"])
        self.assertTrue(self.messages(room)[-1]["peer_id"].endswith("-claude-code"))

    def test_user_defined_tool_with_json_output_and_prompt_file(self):
        script = ("import json,sys; p=open(sys.argv[1]).read(); "
                  "print(json.dumps({'result': 'read %d bytes' % len(p), 'is_error': False, "
                  "'usage': {'input_tokens': 12, 'output_tokens': 3}}))")
        with open(os.path.join(self.home, "tools.json"), "w") as f:
            json.dump({"tools": {"pyjson": {"argv": ["/usr/bin/python3", "-c", script,
                                                     "{prompt_file}"],
                                            "prompt": "file", "output": "json",
                                            "answer": "result", "error_flag": "is_error",
                                            "usage": "usage", "env": {"AIP_TEST": "1"}}}}, f)
        room = self.room()
        self.run_cli("chat", room, "hello")
        data = self.run_cli("invite", "--tool", "pyjson", "--room", room)["data"]
        self.assertTrue(data["response"].startswith("read "), data)
        usage = dict(data["usage"])
        self.assertGreaterEqual(usage.pop("duration_ms"), 0)
        self.assertEqual(usage, {"input_tokens": 12, "output_tokens": 3})
        meta = json.loads(self.messages(room)[-1]["metadata"])
        self.assertEqual(meta["usage"]["input_tokens"], 12)
        # the temp prompt file is gone
        self.assertEqual([n for n in os.listdir(os.path.join(self.home, "run"))
                          if n.startswith("prompt-")], [])

    def test_discuss_rounds_are_sequential(self):
        data = self.run_cli("discuss", "--tools", "codex,gemini", "--rounds", "2",
                            "--context", "tabs or spaces?")["data"]
        self.assertEqual(data["total_invites"], 4)
        self.assertEqual([(e["round"], e["tool"]) for e in data["log"]],
                         [(1, "codex"), (1, "gemini"), (2, "codex"), (2, "gemini")])
        for e in data["log"]:
            self.assertIn("snippet", e)
        # the second speaker saw the first one's answer
        first = data["log"][0]["snippet"]
        self.assertIn(first, self.calls("gemini")[0]["stdin"])
        # continuing the room
        room = data["room"]
        more = self.run_cli("discuss", "--tools", "codex,gemini", "--rounds", "1",
                            "--room", room)["data"]
        self.assertEqual(more["room"], room)
        self.assertEqual(more["total_invites"], 2)

    def test_discuss_follows_mentions_with_a_hop_limit(self):
        self.set_answer("codex", "I think @gemini knows better")
        self.set_answer("gemini", "No, back to you @codex")
        data = self.run_cli("discuss", "--tools", "codex,claude", "--rounds", "1",
                            "--context", "who knows?", "--follow-mentions", "2")["data"]
        self.assertEqual([(e["tool"], e.get("mentioned_by")) for e in data["log"]],
                         [("codex", None), ("gemini", "codex"), ("codex", "gemini"),
                          ("claude", None)])
        self.assertEqual(data["total_invites"], 4)

    def test_status_shows_job_and_workers_flag(self):
        self.run_cli("daemon", "start", "--workers", "2")
        wait_for(lambda: sum(1 for d in self.run_cli("daemon", "status")["data"]["daemons"]
                             if d.get("service") == "spawn" and d["state"] == "ready") == 2,
                 15, "two spawnd workers")
        room = self.room()
        self.run_cli("chat", room, "hello")
        self.set_mode("codex", "delay:3")
        proc = subprocess.Popen([AI_PEER, "invite", "--tool", "codex", "--room", room],
                                env=self.env, cwd=self.work, stdout=subprocess.PIPE)
        try:
            def busy():
                for d in self.run_cli("daemon", "status")["data"]["daemons"]:
                    job = d.get("job")
                    if job and job["what"] == "codex in " + room:
                        return True
                return False
            wait_for(busy, 10, "daemon status to show the job")
        finally:
            out, _ = proc.communicate(timeout=60)
        self.assertTrue(json.loads(out)["ok"])

    def test_async_invite_jobs_wait_cancel(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        self.set_mode("codex", "delay:1")
        job = self.run_cli("invite", "--tool", "codex", "--room", room, "--async")["data"]
        self.assertEqual(job["status"], "queued")
        jobs = self.run_cli("jobs")["data"]["jobs"]
        self.assertEqual(jobs[0]["id"], job["job"])
        data = self.run_cli("wait", job["job"])["data"]
        self.assertTrue(data["response"].startswith("codex answers:"))
        # a finished job can be waited for again
        self.assertEqual(self.run_cli("wait", job["job"])["data"]["response"], data["response"])
        self.assertEqual(self.run_cli("jobs")["data"]["jobs"][0]["state"], "done")
        # cancel kills the tool's whole group; wait reports it
        self.set_mode("gemini", "ignore-term")
        job = self.run_cli("invite", "--tool", "gemini", "--room", room, "--async")["data"]["job"]
        wait_for(lambda: len(self.calls("gemini")) == 1, 10, "gemini to start")
        wait_for(lambda: [j for j in self.run_cli("jobs")["data"]["jobs"]
                          if j["id"] == job and j["state"] == "running"], 10, "running")
        self.assertTrue(self.run_cli("cancel", job)["data"]["cancelled"])
        doc = self.run_cli("wait", job, ok=False)
        self.assertIn("cancelled", doc["error"])
        wait_for(lambda: group_gone(self.calls("gemini")[-1]["pgid"]), 5, "gemini's group gone")
        self.assertFalse(self.messages(room)[-1]["content"].startswith("[spawn error]"))
        doc = self.run_cli("wait", "job-000000000000", ok=False)
        self.assertIn("no job", doc["error"])

    def test_progress_events_and_terminal_line(self):
        import pty
        import zmq
        import msgpack
        room = self.room()
        self.run_cli("chat", room, "hello")
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect("ipc://%s/run/events.ipc" % self.home)
        sub.setsockopt(zmq.SUBSCRIBE, ("room." + room).encode())
        self.set_mode("codex", "stream")
        master, slave = pty.openpty()
        proc = subprocess.Popen([AI_PEER, "invite", "--tool", "codex", "--room", room],
                                env=self.env, cwd=self.work, stdout=subprocess.PIPE,
                                stderr=slave)
        os.close(slave)
        progress = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if sub.poll(100):
                topic, body = sub.recv_multipart()
                event = msgpack.unpackb(body, raw=False)
                if event["type"] == "progress":
                    progress.append(event["data"])
        out, _ = proc.communicate(timeout=30)
        sub.close()
        ctx.term()
        terminal = b""
        try:
            while True:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                terminal += chunk
        except OSError:
            pass
        os.close(master)
        data = json.loads(out)["data"]
        self.assertIn("part 7 of a streamed answer", data["response"])
        self.assertTrue(progress, "no progress event")
        self.assertEqual(progress[-1]["tool"], "codex")
        self.assertGreater(progress[-1]["bytes"], 0)
        self.assertIn("streamed answer", progress[-1]["partial"])
        # the text grows (deltas) and the last event has the whole answer
        self.assertTrue(progress[-1]["done"])
        self.assertIn("part 7 of a streamed answer", progress[-1]["text"])
        growing = [e["text"] for e in progress if not e["done"]]
        self.assertTrue(growing and "part 7" not in growing[0], growing)
        self.assertEqual(progress[-1]["msg_id"], progress[0]["msg_id"])
        #  The answer as it grew, on the terminal (stderr), once
        self.assertIn(b"[codex]: part 0 of a streamed answer", terminal)
        self.assertEqual(terminal.count(b"part 7 of a streamed answer"), 1, terminal)

    def test_daemon_stop_kills_running_tools(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        self.set_mode("opencode", "grandchild-hang")
        self.run_cli("invite", "--tool", "opencode", "--room", room, "--async")
        wait_for(lambda: len(self.calls("opencode")) == 1, 10, "opencode to start")
        pgid = self.calls("opencode")[-1]["pgid"]
        self.assertFalse(group_gone(pgid))
        self.assertEqual(self.run_cli("daemon", "stop")["data"]["status"], "stopped")
        wait_for(lambda: group_gone(pgid), 10, "the tool's group to be killed with spawnd")

    def test_killed_spawnd_leaves_no_tool_behind(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        self.set_mode("codex", "ignore-term")
        job = self.run_cli("invite", "--tool", "codex", "--room", room, "--async")["data"]["job"]
        wait_for(lambda: len(self.calls("codex")) == 1, 10, "codex to start")
        call = self.calls("codex")[-1]
        with open("/proc/%d/stat" % call["pid"]) as f:
            spawnd = int(f.read().rsplit(")", 1)[1].split()[1])      # the tool's parent
        os.kill(spawnd, signal.SIGKILL)
        wait_for(lambda: group_gone(call["pgid"]), 10, "brokerd to kill the orphaned tool")
        doc = self.run_cli("wait", job, ok=False)
        self.assertIn("spawnd stopped", doc["error"])
        # the worker comes back and serves
        self.set_mode("codex", "answer")
        self.run_cli("invite", "--tool", "codex", "--room", room)

    def test_killed_spawnd_leaves_no_prompt_file(self):
        # a "prompt": "file" tool that reads its prompt, says so, and hangs
        started = os.path.join(self.work, "started")
        script = ("import os,sys,time; p=open(sys.argv[1]).read(); "
                  "open(sys.argv[2]+'.tmp','w').write('%d %s\\n%s' % (os.getppid(), "
                  "sys.argv[1], p)); os.rename(sys.argv[2]+'.tmp', sys.argv[2]); "
                  "time.sleep(120)")
        with open(os.path.join(self.home, "tools.json"), "w") as f:
            json.dump({"tools": {"hangfile": {"argv": ["/usr/bin/python3", "-c", script,
                                                       "{prompt_file}", started],
                                              "prompt": "file"}}}, f)
        room = self.room()
        secret = "PLAINTEXT-ONLY-IN-MEMORY-7f3a"
        self.run_cli("chat", room, secret)
        job = self.run_cli("invite", "--tool", "hangfile", "--room", room,
                           "--async")["data"]["job"]
        wait_for(lambda: os.path.exists(started), 15, "the tool to read its prompt")
        with open(started) as f:
            head, prompt = f.read().split("\n", 1)
        spawnd, path = head.split(" ", 1)
        self.assertIn(secret, prompt)               # the tool got the text
        self.assertFalse(path.startswith(self.home), path)
        # and a prompt file an older ai-peer left in run/ goes at the next start
        old = os.path.join(self.home, "run", "prompt-Ab12Cd")
        with open(old, "w") as f:
            f.write(secret)
        os.kill(int(spawnd), signal.SIGKILL)
        self.run_cli("wait", job, ok=False)
        wait_for(lambda: not os.path.exists(old), 15, "the restarted spawnd to remove it")
        # no file under the home holds the prompt
        for top, _, files in os.walk(self.home):
            for name in files:
                full = os.path.join(top, name)
                if name.startswith("prompt-"):
                    self.fail("prompt file left behind: %s" % full)
                if os.path.isfile(full) and not name.startswith("peers.db"):
                    with open(full, "rb") as f:
                        self.assertNotIn(secret.encode(), f.read(), full)

    def test_discover_registers_tools(self):
        data = self.run_cli("discover")["data"]
        tools = {d["tool"]: d for d in data["discovered"]}
        self.assertEqual(set(tools), {"claude-code", "codex", "opencode", "gemini"})
        self.assertEqual(tools["codex"]["version"], "codex 9.9.9 (fake)")
        self.assertEqual(tools["codex"]["binary"], os.path.join(FAKE, "codex"))
        self.assertEqual(data["registered"], 4)
        peers = [p["id"] for p in self.run_cli("list")["data"]["peers"]]
        self.assertTrue(any(p.endswith("-gemini") for p in peers), peers)

    def test_fakes_reject_what_the_real_tools_reject(self):
        def run(*argv, env=None):
            e = dict(self.env)
            e.update(env or {})
            return subprocess.run(list(argv), input=b"prompt", env=e, capture_output=True,
                                  timeout=30)
        self.assertEqual(run(os.path.join(FAKE, "codex"), "exec", "--full-auto", "-").returncode, 2)
        self.assertNotEqual(run(os.path.join(FAKE, "codex"), "exec", "-").returncode, 0)
        self.assertEqual(run(os.path.join(FAKE, "gemini"), "-p", "").returncode, 55)
        self.assertNotEqual(run(os.path.join(FAKE, "opencode"), "-p", "hi").returncode, 0)
        self.assertNotEqual(run(os.path.join(FAKE, "claude"), "-p", "--output-format", "text",
                                env={"CLAUDECODE": "1"}).returncode, 0)
        ok = run(os.path.join(FAKE, "opencode"), "run")
        self.assertEqual(ok.returncode, 0)
        self.assertIn(b"opencode answers: I read 6 bytes", ok.stdout)

    def test_detached_grandchild_is_killed(self):
        # a tool whose grandchild calls setsid leaves its process group:
        # spawnd, a child subreaper, gets it back and kills it after the run
        room = self.room()
        self.run_cli("chat", room, "hello")
        self.set_mode("gemini", "setsid")
        self.run_cli("invite", "--tool", "gemini", "--room", room)
        escaped = self.calls("gemini")[-1]["escaped"]
        self.assertTrue(escaped)

        def gone():
            try:
                with open("/proc/%d/stat" % escaped) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except FileNotFoundError:
                return True
        wait_for(gone, 10, "the detached grandchild to be killed")

    def test_stream_without_final_event_posts_no_half_answer(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        for tool in ("claude", "gemini", "codex", "opencode"):
            self.set_mode(tool, "nofinal")
            doc = self.run_cli("invite", "--tool", tool, "--room", room, ok=False)
            self.assertIn("without its final event", doc["error"])
            last = self.messages(room)[-1]
            self.assertTrue(last["content"].startswith("[spawn error] "), last)
            self.assertNotIn("half an answer", last["content"])

    def test_protocol_server_falls_back_with_a_warning(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        for tool, argv in (("codex", ["exec", "--json", "--skip-git-repo-check", "-"]),
                           ("opencode", ["run", "--format", "json"])):
            self.set_mode(tool, "noserver")
            data = self.run_cli("invite", "--tool", tool, "--room", room)["data"]
            self.assertTrue(data["response"].startswith(tool + " answers:"), data)
            self.assertIn("could not run here", data["warning"])
            self.assertIn("does not stream", data["warning"])
            self.assertEqual(self.calls(tool)[-1]["argv"][1:], argv)
            self.assertGreater(data["usage"]["input_tokens"], 0)

    def test_an_unknown_tool_is_refused_before_anything_is_made(self):
        with open(os.path.join(self.home, "tools.json"), "w") as f:
            json.dump({"tools": {"mine": {"argv": [os.path.join(FAKE, "claude"), "-p",
                                                   "--output-format", "text"]}}}, f)
        room = self.room()
        self.run_cli("chat", room, "hello")
        before = self.messages(room)
        rooms = self.run_cli("room", "list")["data"]["rooms"]
        for args in (["quick", "question", "--tools", "nosuch"],
                     ["quick", "question", "--tools", "claude,nosuch"],
                     ["discuss", "--tools", "claude,nosuch", "--context", "topic"],
                     ["discuss", "--tools", "claude,nosuch", "--room", room],
                     ["invite", "--tool", "nosuch", "--room", room],
                     ["invite", "--tool", "nosuch", "--room", room, "--async"]):
            err = self.run_cli(*args, ok=False)["error"]
            self.assertIn("unknown tool 'nosuch'", err, args)
            # the known ones are named: built-ins and the configured
            for name in ("claude", "codex", "opencode", "gemini", "mine"):
                self.assertIn(name, err, args)
            self.assertIn(os.path.join(self.home, "tools.json"), err, args)
        # nothing was made: no room, no peer, no post, no job, no call
        self.assertEqual(self.run_cli("room", "list")["data"]["rooms"], rooms)
        self.assertEqual(self.messages(room), before)
        peers = [p["id"] for p in self.run_cli("list")["data"]["peers"]]
        self.assertFalse([p for p in peers if p.endswith("-nosuch")], peers)
        self.assertEqual(self.run_cli("jobs")["data"]["jobs"], [])
        self.assertEqual(self.calls("claude"), [])
        # a configured tool is not refused
        data = self.run_cli("invite", "--tool", "mine", "--room", room)["data"]
        self.assertTrue(data["response"].startswith("claude answers:"), data)

    def test_broken_tools_json_is_reported_with_its_line(self):
        path = os.path.join(self.home, "tools.json")
        os.makedirs(self.home, exist_ok=True)
        with open(path, "w") as f:
            f.write('{"tools": {\n  "mine": {"argv": ["x",]}\n}}\n')
        room = self.room()
        doc = self.run_cli("invite", "--tool", "mine", "--room", room, ok=False)
        self.assertIn(path + ":2:", doc["error"])
        self.assertIn("not valid JSON", doc["error"])
        data = self.run_cli("discover")["data"]
        self.assertIn(path + ":2:", data["warning"])
        # one bad entry: named with its line, the rest still works
        with open(path, "w") as f:
            f.write('{"tools": {\n  "good": {"argv": ["%s"]},\n  "bad": {"argv": 7}\n}}\n'
                    % os.path.join(FAKE, "claude"))
        doc = self.run_cli("invite", "--tool", "bad", "--room", room, ok=False)
        self.assertIn(path + ":3: tools.bad.argv", doc["error"])
        self.assertNotIn("add your own", doc["error"])

    def sessions_db(self, sql, *args):
        """Read or change peers.db; a change is made with the daemons stopped."""
        import sqlite3
        if not sql.startswith("SELECT"):
            self.run_cli("daemon", "stop")
        con = sqlite3.connect(os.path.join(self.home, "peers.db"), timeout=10)
        try:
            rows = con.execute(sql, args).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def test_sessions_resume_and_send_only_what_is_new(self):
        room = self.room()
        self.run_cli("chat", room, "OLD-MESSAGE-1")
        for tool in ("claude", "gemini", "codex", "opencode"):
            first = self.run_cli("invite", "--tool", tool, "--room", room)["data"]
            self.assertFalse(first["resumed"])
            self.assertIn("OLD-MESSAGE-1", self.calls(tool)[-1]["stdin"])
            self.run_cli("chat", room, "NEW-MESSAGE-" + tool)
            second = self.run_cli("invite", "--tool", tool, "--room", room)["data"]
            self.assertTrue(second["resumed"], second)
            self.assertEqual(second["session_id"], first["session_id"])
            call = self.calls(tool)[-1]
            self.assertEqual(call["resumed"], first["session_id"])
            self.assertIn("NEW-MESSAGE-" + tool, call["stdin"])
            # not the old message, not its own last answer
            self.assertNotIn("OLD-MESSAGE-1", call["stdin"])
            self.assertNotIn(first["response"], call["stdin"])
            self.assertIn("UNTRUSTED", call["stdin"])
        # --fresh starts a new session with the full history
        data = self.run_cli("invite", "--tool", "claude", "--room", room, "--fresh")["data"]
        self.assertFalse(data["resumed"])
        self.assertNotIn("--resume", self.calls("claude")[-1]["argv"])
        self.assertIn("OLD-MESSAGE-1", self.calls("claude")[-1]["stdin"])
        # room delete forgets the sessions
        self.assertEqual(len(self.sessions_db("SELECT tool FROM tool_sessions WHERE room_id = ?",
                                              room)), 4)
        self.run_cli("room", "delete", room)
        self.assertEqual(self.sessions_db("SELECT tool FROM tool_sessions WHERE room_id = ?",
                                          room), [])

    def test_failed_resume_falls_back_once_with_a_warning(self):
        room = self.room()
        self.run_cli("chat", room, "OLD-MESSAGE-1")
        for tool in ("claude", "gemini", "codex", "opencode"):
            self.run_cli("invite", "--tool", tool, "--room", room)
            # the tool lost the session (upgraded, another machine...)
            name = "claude-code" if tool == "claude" else tool
            self.sessions_db("UPDATE tool_sessions SET session_id = 'gone-1' WHERE tool = ?", name)
            data = self.run_cli("invite", "--tool", tool, "--room", room)["data"]
            self.assertIn("could not resume", data["warning"])
            self.assertIn("gone-1", data["warning"])
            self.assertFalse(data["resumed"])
            calls = self.calls(tool)
            self.assertEqual(calls[-2]["resumed"], "gone-1")
            self.assertIn("OLD-MESSAGE-1", calls[-1]["stdin"])      # the full history again
            self.assertTrue(data["session_id"].startswith("fake-"))

    def test_password_room_keeps_no_tool_session_unless_asked(self):
        doc = self.run_cli("room", "create", "secret", "--password", "pw-123456")
        room = doc["data"]["id"]
        self.run_cli("chat", room, "PRIVATE-LINE")
        self.run_cli("invite", "--tool", "claude", "--room", room)
        self.run_cli("invite", "--tool", "codex", "--room", room)
        self.assertIn("--no-session-persistence", self.calls("claude")[-1]["argv"])
        self.assertTrue(self.calls("codex")[-1]["params"]["ephemeral"])
        self.assertEqual(self.sessions_db("SELECT tool FROM tool_sessions"), [])
        # the full history each turn
        self.run_cli("invite", "--tool", "claude", "--room", room)
        self.assertIn("PRIVATE-LINE", self.calls("claude")[-1]["stdin"])
        self.assertNotIn("--resume", self.calls("claude")[-1]["argv"])
        # --sessions opts in
        self.run_cli("invite", "--tool", "claude", "--room", room, "--sessions")
        self.assertNotIn("--no-session-persistence", self.calls("claude")[-1]["argv"])
        self.run_cli("invite", "--tool", "claude", "--room", room, "--sessions")
        self.assertIn("--resume", self.calls("claude")[-1]["argv"])
        # codex's fallback (no app server) keeps nothing either
        self.set_mode("codex", "noserver")
        self.run_cli("invite", "--tool", "codex", "--room", room)
        self.assertEqual(self.calls("codex")[-1]["argv"][1:],
                         ["exec", "--json", "--skip-git-repo-check", "--ephemeral", "-"])

    def test_max_cost_and_bad_session_ids(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        self.run_cli("invite", "--tool", "claude", "--room", room, "--max-cost", "0.25")
        argv = self.calls("claude")[-1]["argv"]
        self.assertEqual(argv[argv.index("--max-budget-usd") + 1], "0.25")
        for bad in ("1e3", "-1", "0", "abc", "1;rm"):
            doc = self.run_cli("invite", "--tool", "claude", "--room", room, "--max-cost", bad,
                               ok=False)
            self.assertIn("--max-cost", doc["error"])
        # a session id with shell characters is never stored nor put in argv
        self.set_answer("claude", "fine")
        with open(os.path.join(self.fake_dir, "claude.mode"), "w") as f:
            f.write("answer")
        self.sessions_db("UPDATE tool_sessions SET session_id = 'x; rm -rf /'")
        self.run_cli("invite", "--tool", "claude", "--room", room)
        self.assertNotIn("--resume", self.calls("claude")[-1]["argv"])

    def test_password_room_streams_locally(self):
        # the deltas of a password room's answer reach local viewers (the
        # events socket is this user's own), never a relay
        import zmq
        import msgpack
        room = self.run_cli("room", "create", "secret", "--password", "pw-123456")["data"]["id"]
        self.run_cli("chat", room, "hello")
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect("ipc://%s/run/events.ipc" % self.home)
        sub.setsockopt(zmq.SUBSCRIBE, ("room." + room).encode())
        self.set_mode("gemini", "stream")
        proc = subprocess.Popen([AI_PEER, "invite", "--tool", "gemini", "--room", room],
                                env=self.env, cwd=self.work, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        texts = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if sub.poll(100):
                _, body = sub.recv_multipart()
                event = msgpack.unpackb(body, raw=False)
                if event["type"] == "progress":
                    texts.append(event["data"]["text"])
        proc.communicate(timeout=30)
        sub.close()
        ctx.term()
        self.assertTrue(any("part 0 of a streamed answer" in t for t in texts), texts)

    def test_bad_output_from_a_tool(self):
        room = self.room()
        self.run_cli("chat", room, "hello")
        for tool in ("claude", "gemini", "codex", "opencode"):
            # a switch of format, invalid JSON and unknown events are skipped
            self.set_mode(tool, "switch")
            data = self.run_cli("invite", "--tool", tool, "--room", room)["data"]
            self.assertEqual(data["response"], "kept answer")
            # absurd usage is dropped, a session id with shell characters is
            # neither returned nor stored nor resumed
            self.set_mode(tool, "absurd")
            if tool in ("codex", "opencode"):
                # a protocol server's session is where the turn goes: refused
                doc = self.run_cli("invite", "--tool", tool, "--room", room, "--fresh",
                                   ok=False)
                self.assertIn("no valid", doc["error"])
            else:
                data = self.run_cli("invite", "--tool", tool, "--room", room,
                                    "--fresh")["data"]
                self.assertTrue(data["response"].startswith(tool + " answers:"), data)
                for key in ("input_tokens", "output_tokens"):
                    self.assertNotIn(key, data["usage"])
                self.assertNotIn("session_id", data)
            self.set_mode(tool, "answer")
            self.run_cli("invite", "--tool", tool, "--room", room)
            self.assertNotIn("rm -rf", json.dumps(self.calls(tool)[-1]["argv"]))
        rows = self.sessions_db("SELECT session_id FROM tool_sessions")
        self.assertFalse([r for r in rows if "rm" in r[0]], rows)

    def test_bad_arguments(self):
        doc = self.run_cli("invite", "--tool", "codex", ok=False)
        self.assertIn("Usage", doc["error"])
        doc = self.run_cli("invite", "--tool", "co dex", "--room", "room-x", ok=False)
        self.assertIn("invalid tool name", doc["error"])
        doc = self.run_cli("invite", "--tool", "codex", "--room", "room-nope", ok=False)
        self.assertIn("room-nope", doc["error"])
        doc = self.run_cli("invite", "--tool", "codex", "--room", "room-x", "--timeout", "0",
                           ok=False)
        self.assertIn("--timeout", doc["error"])
        room = self.room()
        doc = self.run_cli("invite", "--tool", "codex", "--room", room, "--model",
                           "--dangerously-skip-permissions", ok=False)
        self.assertIn("cannot start with '-'", doc["error"])
        doc = self.run_cli("discuss", "--tools", "codex", "--context", "x", ok=False)
        self.assertIn("two tools", doc["error"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
