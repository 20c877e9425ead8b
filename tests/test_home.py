"""A home or identity another user could have changed is refused, by the CLI
and by every daemon, with a message saying how to fix it (as ssh does)."""
import json
import os
import subprocess
import unittest

from aiptest import BIN_DIR, AipTestCase, main

OTHER_UID = 4242
DAEMONS = ("brokerd", "storaged", "spawnd", "relayd")


class HomeSafety(AipTestCase):

    def make_home(self, mode):
        os.mkdir(self.home, 0o700)
        os.chmod(self.home, mode)

    def assert_refused(self, *mentions):
        for args in (["room", "list"], ["identity"], ["chat", "room-0123456789ab", "-i"]):
            err = self.fail(*args, input=b"")
            for text in mentions:
                self.assertIn(text, err, args)
        self.assertEqual(self.daemons(), {}, "a daemon started in a refused home")

    def assert_daemons_refuse(self, *mentions):
        for name in DAEMONS:
            p = subprocess.run([os.path.join(BIN_DIR, name), "--home", self.home],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                               env=self.env)
            self.assertNotEqual(p.returncode, 0, name)
            for text in mentions:
                self.assertIn(text, p.stderr.decode(), name)

    def test_world_writable_home(self):
        self.make_home(0o777)
        self.assert_refused(self.home, "writable by everyone", "chmod 700 " + self.home)
        self.assert_daemons_refuse("chmod 700 " + self.home)
        #  Fixed as the message says, it works
        os.chmod(self.home, 0o700)
        self.ok("room", "list")

    def test_group_writable_home(self):
        self.make_home(0o770)
        self.assert_refused("writable by its group", "chmod 700 " + self.home)
        self.assert_daemons_refuse("chmod 700 " + self.home)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to give a home to another user")
    def test_home_of_another_user(self):
        self.make_home(0o700)
        os.chown(self.home, OTHER_UID, OTHER_UID)
        self.assert_refused("owned by uid %d" % OTHER_UID)
        self.assert_daemons_refuse("owned by uid %d" % OTHER_UID)

    def test_a_home_made_unsafe_while_the_daemons_run_is_refused_by_every_command(self):
        self.make_home(0o700)
        room = self.new_room("before")
        self.ok("chat", room, "hello")
        broker = self.broker_pid()
        mcp = subprocess.Popen([os.path.join(BIN_DIR, "ai-peer"), "mcp"], env=self.env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (mcp.kill(), mcp.wait(), mcp.stdin.close(), mcp.stdout.close()))

        def mcp_call(rid, method, params):
            mcp.stdin.write(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                                        "params": params}).encode() + b"\n")
            mcp.stdin.flush()
            return json.loads(mcp.stdout.readline())

        mcp_call(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "home-test", "version": "1"}})
        listed = mcp_call(1, "tools/call", {"name": "room_list", "arguments": {}})["result"]
        self.assertFalse(listed["isError"], listed)
        os.chmod(self.home, 0o777)
        commands = (["room", "list"], ["room", "create", "x"], ["chat", room, "hi"],
                    ["chat", room], ["history"], ["export", room], ["list"], ["jobs"],
                    ["discover"], ["usage"], ["inbox"], ["identity"],
                    ["invite", "--tool", "claude", "--room", room],
                    ["quick", "question", "--tools", "claude"],
                    ["daemon", "status"], ["daemon", "start"], ["daemon", "stop"],
                    ["web", "--stop"], ["register", "bob", "human", "cli"])
        for args in commands:
            err = self.fail(*args)
            self.assertIn("writable by everyone", err, args)
            self.assertIn("chmod 700 " + self.home, err, args)
        refused = mcp_call(2, "tools/call", {"name": "room_list", "arguments": {}})["result"]
        self.assertTrue(refused["isError"], refused)
        self.assertIn("chmod 700 " + self.home, refused["content"][0]["text"])
        #  Nothing was done: the daemons run on, the room holds what it held
        self.assertEqual(self.broker_pid(), broker)
        os.chmod(self.home, 0o700)
        self.assertEqual([r["id"] for r in self.ok("room", "list")["rooms"]], [room])
        self.assertEqual([m["content"] for m in self.read(room) if m["type"] == "message"],
                         ["hello"])
        listed = mcp_call(3, "tools/call", {"name": "room_list", "arguments": {}})["result"]
        self.assertFalse(listed["isError"], listed)

    def test_a_readable_home_of_the_original_is_used(self):
        #  The original made ~/.ai-peers 0755: readable, nobody else writes it
        self.make_home(0o755)
        self.ok("room", "list")

    def write_identity(self, mode, uid=None):
        self.make_home(0o700)
        path = self.path("identity.json")
        with open(path, "w") as f:
            f.write('{"id": "box-human-alice", "name": "alice", "type": "human", '
                    '"tool": "cli", "machine": "box", "peer_secret": "%s"}' % ("ab" * 32))
        os.chmod(path, mode)
        if uid is not None:
            os.chown(path, uid, uid)
        return path

    def test_identity_writable_by_others(self):
        path = self.write_identity(0o666)
        err = self.fail("identity")
        self.assertIn("writable by everyone", err)
        self.assertIn("chmod 600 " + path, err)
        os.chmod(path, 0o620)
        self.assertIn("writable by its group", self.fail("chat", "room-0123456789ab", "-i",
                                                         input=b""))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to give a file to another user")
    def test_identity_of_another_user(self):
        path = self.write_identity(0o600, OTHER_UID)
        err = self.fail("identity")
        self.assertIn("%s is owned by uid %d" % (path, OTHER_UID), err)
        self.assertIn("move it away", err)

    def test_identity_readable_by_others_is_made_private(self):
        path = self.write_identity(0o644)
        self.assertEqual(self.ok("identity")["id"], "box-human-alice")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)


if __name__ == "__main__":
    main()
