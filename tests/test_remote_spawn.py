"""test_remote_spawn.py — a spawnd on "another machine" serves a LAN hub's invites.

The hub is a daemon set in LAN mode with no spawn workers of its own
(daemon start --lan --workers 0); the remote worker is a spawnd started by
hand with --hub tcp://127.0.0.1:PORT --hub-key --token and a home of its
own, reaching the hub over CURVE on loopback (docs/lan.md, "Remote spawn
workers"). The AI tools are the fakes of tests/fake/. Nothing sleeps to
synchronise: every wait polls a condition with a deadline.
"""
import json
import os
import signal
import socket
import subprocess

import aiptest
from aiptest import AipTestCase, wait_until

SPAWND = os.path.join(aiptest.BIN_DIR, "spawnd")
FAKE = os.path.join(aiptest.SOURCE_DIR, "tests", "fake")


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RemoteSpawnTest(AipTestCase):

    def setUp(self):
        super().setUp()
        self.fake_dir = os.path.join(self.tmp, "fake")
        os.mkdir(self.fake_dir)
        self.env["PATH"] = FAKE + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.env["FAKE_AI_DIR"] = self.fake_dir
        for key in list(self.env):
            if key.startswith("FAKE_") and key != "FAKE_AI_DIR":
                del self.env[key]
        self.worker_home = os.path.join(self.tmp, "w")

    def start_hub(self):
        self.port = free_tcp_port()
        self.ok("daemon", "start", "--lan", "--port", str(self.port), "--workers", "0")
        lan = self.ok("daemon", "status")["lan"]
        return lan["public_key"], lan["worker_token"]

    def spawn_workers(self):
        return [d for d in self.ok("daemon", "status")["daemons"] if d.get("service") == "spawn"]

    def start_spawnd(self, *args):
        """A remote spawnd (its own home, no AI_PEERS_HOME); stopped at cleanup."""
        env = dict(self.env)
        env.pop("AI_PEERS_HOME", None)
        log_path = os.path.join(self.tmp, "spawnd-%d.log" % len(os.listdir(self.tmp)))
        log = open(log_path, "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([SPAWND] + list(args) + ["--home", self.worker_home], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_spawnd, p)
        return p, log_path

    def stop_spawnd(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def log_of(self, path):
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")

    def test_invite_runs_on_the_remote_worker(self):
        key, token = self.start_hub()
        self.assertEqual(self.spawn_workers(), [])
        p, log = self.start_spawnd("--hub", "tcp://127.0.0.1:%d" % self.port,
                                   "--hub-key", key, "--token", token)
        workers = wait_until(self.spawn_workers, 10, "the remote worker to register")
        self.assertEqual(len(workers), 1, workers)
        self.assertEqual(workers[0]["pid"], p.pid)
        #  Named after its machine: the hub lists workers of many machines
        self.assertRegex(workers[0]["name"], r"^spawnd-.+-%d$" % p.pid)

        room = self.new_room("lan-invite")
        self.ok("chat", room, "what is 2+2?")
        data = self.ok("invite", "--tool", "codex", "--room", room)
        self.assertTrue(data["response"].startswith("codex answers: I read"), data)
        self.assertEqual(data["peer_id"], aiptest.socket_hostname_id() + "-codex")
        #  The tool ran under the remote spawnd, with the hub's history in its prompt
        with open(os.path.join(self.fake_dir, "codex.calls.jsonl")) as f:
            calls = [json.loads(line) for line in f]
        self.assertEqual(len(calls), 1)
        self.assertIn("what is 2+2?", calls[0]["stdin"])
        self.assertIn("codex (pid", self.log_of(log))
        #  ... and its answer is stored on the hub
        contents = [m["content"] for m in self.read(room)]
        self.assertIn(data["response"], contents)

        #  An encrypted room: the worker decrypts the history, encrypts the answer
        secret = self.ok("room", "create", "lan-secret", "--password", "pw")["id"]
        self.ok("chat", secret, "sealed question")
        data = self.ok("invite", "--tool", "claude", "--room", secret)
        self.assertTrue(data["response"].startswith("claude answers"), data)
        with open(os.path.join(self.fake_dir, "claude.calls.jsonl")) as f:
            self.assertIn("sealed question", json.loads(f.readline())["stdin"])
        stored = [row[0] for row in self.db().execute(
            "SELECT content FROM messages WHERE room_id = ?", (secret,))]
        self.assertTrue(stored)
        self.assertFalse([c for c in stored if "claude answers" in c], stored)
        self.assertIn(data["response"], [m["content"] for m in self.read(secret)])

        #  A clean stop says goodbye: the hub forgets the worker at once
        self.stop_spawnd(p)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(self.spawn_workers(), [])

    def test_an_invite_goes_to_a_worker_that_has_the_tool(self):
        #  The hub has a spawn worker of its own, but no AI tools on its PATH;
        #  the remote machine has them
        self.port = free_tcp_port()
        bare = {"PATH": "/usr/bin:/bin"}
        self.ok("daemon", "start", "--lan", "--port", str(self.port), "--workers", "1", env=bare)
        lan = self.ok("daemon", "status")["lan"]
        wait_until(lambda: len(self.spawn_workers()) == 1, 15, "the hub's own spawn worker")
        p, log = self.start_spawnd("--hub", "tcp://127.0.0.1:%d" % self.port,
                                   "--hub-key", lan["public_key"], "--token", lan["worker_token"])
        remote = wait_until(lambda: [w for w in self.spawn_workers() if w.get("pid") == p.pid],
                            10, "the remote worker to register")[0]
        self.assertTrue(remote.get("remote"), remote)
        #  daemon status lists what each announced: the hub's own none at all
        own = wait_until(lambda: [w for w in self.spawn_workers()
                                  if w.get("pid") != p.pid and w.get("state") == "ready"],
                         15, "the hub's own spawn worker to be ready")
        self.assertEqual([w["tools"] for w in own], [[]])
        self.assertIn("codex", remote["tools"])
        room = self.new_room("routed")
        self.ok("chat", room, "which machine answers?")
        for _ in range(3):
            data = self.ok("invite", "--tool", "codex", "--room", room)
            self.assertTrue(data["response"].startswith("codex answers"), data)
        with open(os.path.join(self.fake_dir, "codex.calls.jsonl")) as f:
            self.assertEqual(len(f.readlines()), 3, "every invite ran where codex is")
        self.assertEqual(self.log_of(log).count("codex (pid"), 3)
        #  A tool nobody has still fails with the tool's own explanation
        r = self.run_cli("invite", "--tool", "nosuchtool", "--room", room)
        self.assertEqual(r.rc, 1, r)

    def test_a_tool_only_a_remote_worker_has_is_not_refused(self):
        #  The worker's own tools.json has a tool the hub never heard of;
        #  it announced it in its READY, so the hub's CLI lets it through
        key, token = self.start_hub()
        os.makedirs(self.worker_home, mode=0o700)
        with open(os.path.join(self.worker_home, "tools.json"), "w") as f:
            json.dump({"tools": {"faraway": {"argv": [os.path.join(FAKE, "claude"), "-p",
                                                      "--output-format", "text"]}}}, f)
        room = self.new_room("faraway")
        self.ok("chat", room, "who serves this?")
        p, log = self.start_spawnd("--hub", "tcp://127.0.0.1:%d" % self.port,
                                   "--hub-key", key, "--token", token)
        worker = wait_until(lambda: [w for w in self.spawn_workers() if w.get("pid") == p.pid],
                            10, "the remote worker to register")[0]
        self.assertIn("faraway", worker["tools"])
        data = self.ok("invite", "--tool", "faraway", "--room", room)
        self.assertTrue(data["response"].startswith("claude answers"), data)
        #  One nobody has is refused by name, before anything is posted
        before = self.read(room)
        err = self.fail("invite", "--tool", "nearby", "--room", room)
        self.assertIn("unknown tool 'nearby'", err)
        self.assertIn("faraway", err)
        self.assertEqual(self.read(room), before)
        #  The worker gone, the hub has none: said at once
        self.stop_spawnd(p)
        self.assertIn("no spawn worker runs", self.fail("invite", "--tool", "faraway",
                                                        "--room", room, timeout=15))

    def test_wrong_token_is_refused_and_said(self):
        key, token = self.start_hub()
        wrong = ("0" if token[0] != "0" else "1") + token[1:]
        p, log = self.start_spawnd("--hub", "tcp://127.0.0.1:%d" % self.port,
                                   "--hub-key", key, "--token", wrong)
        wait_until(lambda: "does not accept us" in self.log_of(log), 15,
                   "spawnd to say the hub refuses it")
        self.assertIn("remote spawn worker was refused", self.daemon_log())
        self.assertEqual(self.spawn_workers(), [])
        self.assertIsNone(p.poll())

    def test_bad_flags_exit_non_zero_with_a_reason(self):
        key = "ab" * 32
        cases = [
            (["--hub", "tcp://127.0.0.1:1"], "--hub-key"),
            (["--hub", "tcp://127.0.0.1:1", "--hub-key", "abc", "--token", key], "64 hex"),
            (["--hub", "tcp://127.0.0.1:1", "--hub-key", "zz" * 32, "--token", key], "64 hex"),
            (["--hub", "tcp://127.0.0.1:1", "--hub-key", key], "--token"),
            (["--hub", "tcp://127.0.0.1:1", "--hub-key", key, "--token", "xyz"], "64 hex"),
            (["--hub", "127.0.0.1:1", "--hub-key", key, "--token", key], "tcp://HOST:PORT"),
            (["--hub", "tcp://127.0.0.1:1", "--hub-key", key, "--token", key,
              "--endpoint", "ipc:///x"], "replaces"),
            (["--token", key], "go with --hub"),
            #  The option table: an unknown flag, a flag without its value
            (["--hubb", "tcp://127.0.0.1:1"], "unknown option '--hubb'"),
            (["--home"], "--home needs a value: DIR"),
            (["--hub", "tcp://127.0.0.1:1", "--hub-key"], "--hub-key needs a value: KEY"),
        ]
        for args, reason in cases:
            p = subprocess.run([SPAWND, "--home", self.worker_home] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                               timeout=30)
            self.assertEqual(p.returncode, 1, args)
            self.assertIn(reason, p.stderr.decode(), args)
            if "needs a value" in reason or "unknown" in reason:
                self.assertIn("usage: spawnd", p.stderr.decode(), args)


if __name__ == "__main__":
    aiptest.main()
