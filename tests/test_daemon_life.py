"""test_daemon_life.py — starting and stopping the daemon set, truthfully.

(a) relayd honours SIGTERM at once, also right after a start and while it
waits for a storaged that will not answer: `daemon stop` never has to kill it.
(b) a broker that cannot start (daemon.pid unwritable, the LAN port taken,
the disk full) exits: no invisible brokerd, one more per retry, and `daemon
stop` / `daemon status` tell the truth.
"""
import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aiptest import AipTestCase, ProtoClient, main, pid_alive, wait_until  # noqa: E402


class TestStop(AipTestCase):

    def killed_at_stop(self, name):
        """Log lines where the broker had to SIGKILL a daemon called name."""
        return [line for line in self.daemon_log().splitlines()
                if "broker: %s (pid" % name in line and "ignored SIGTERM" in line]

    def test_stop_right_after_start_needs_no_kill(self):
        for _ in range(3):
            self.ok("daemon", "start")
            relayd = self.daemons("relayd")
            self.assertEqual(len(relayd), 1, self.daemons())
            self.assertEqual(self.ok("daemon", "stop")["status"], "stopped")
            self.assertEqual(self.daemons(), {}, "daemons left after daemon stop")
            for pid in relayd:
                self.assertFalse(pid_alive(pid))
        self.assertEqual(self.killed_at_stop("relayd"), [])

    def test_stop_has_the_same_keys_running_or_not(self):
        #  DESIGN.md §6: daemon stop answers status and pid, either way;
        #  with nothing running the pid is null, as daemon status has it
        stopped = self.ok("daemon", "stop")
        self.assertEqual(stopped, {"status": "not running", "pid": None})
        self.assertIsNone(self.ok("daemon", "status")["pid"])
        self.ok("daemon", "start")
        broker = self.broker_pid()
        stopped = self.ok("daemon", "stop")
        self.assertEqual(stopped, {"status": "stopped", "pid": broker})
        self.assertEqual(self.ok("daemon", "stop"), {"status": "not running", "pid": None})

    def test_relayd_waiting_for_a_frozen_storaged_still_stops(self):
        self.ok("daemon", "start")
        relayd, = self.daemons("relayd")
        storaged = self.storaged_pid()
        client = ProtoClient(self.home)
        self.addCleanup(client.close)
        #  relayd answers relay.status of an unknown room after asking storaged
        #  for its rooms: with storaged frozen, that wait would last 5 s
        os.kill(storaged, signal.SIGSTOP)
        self.addCleanup(lambda: pid_alive(storaged) and os.kill(storaged, signal.SIGCONT))
        client.request("relay.status", {"id": "room-000000000000"})

        def relayd_waits_for_storaged():
            daemons = {d["name"]: d for d in self.ok("daemon", "status")["daemons"]
                       if d["name"] in ("storaged", "relayd")}
            return daemons["storaged"].get("inflight") and daemons["relayd"].get("inflight")
        wait_until(relayd_waits_for_storaged, 10, "relayd to wait on the frozen storaged")
        self.assertEqual(self.ok("daemon", "stop")["status"], "stopped")
        wait_until(lambda: not pid_alive(relayd), 10, "relayd to exit")
        self.assertEqual(self.killed_at_stop("relayd"), [],
                         "relayd ignored SIGTERM while it waited for storaged")
        self.assertIn("relay: storaged: interrupted while waiting", self.daemon_log())



class TestWorkers(AipTestCase):
    """--workers 0 means no invites here: they say so at once, and a
    running daemon set never ignores another --workers silently."""

    def test_no_spawn_worker_fails_fast(self):
        self.ok("daemon", "start", "--workers", "0")
        self.assertEqual(self.ok("daemon", "status")["workers"], 0)
        room = self.new_room()
        for extra in ([], ["--async"]):
            #  The queue wait was minutes: a hang fails on the short timeout
            err = self.fail("invite", "--tool", "claude", "--room", room, *extra, timeout=15)
            self.assertIn("no spawn worker runs", err)
            self.assertIn("--workers 0", err)
            self.assertIn("ai-peer daemon start --workers N", err)
        self.assertEqual(self.ok("jobs")["jobs"], [])

    def test_start_with_other_workers_on_running_daemons_is_refused(self):
        self.ok("daemon", "start", "--workers", "1")
        broker = self.broker_pid()
        err = self.fail("daemon", "start", "--workers", "3")
        self.assertIn("already run with 1 spawn worker:", err)
        self.assertIn("'ai-peer daemon stop' then 'ai-peer daemon start --workers 3'", err)
        #  The same count, or none asked for, is a start of what runs
        self.assertTrue(self.ok("daemon", "start", "--workers", "1")["already_running"])
        self.assertTrue(self.ok("daemon", "start")["already_running"])
        self.assertEqual(self.ok("daemon", "status")["workers"], 1)
        self.assertEqual(self.broker_pid(), broker)
        #  Restarted as the message says, it has them
        self.ok("daemon", "stop")
        self.ok("daemon", "start", "--workers", "3")
        self.assertEqual(self.ok("daemon", "status")["workers"], 3)
        wait_until(lambda: len(self.daemons("spawnd")) == 3, 20, "three spawnd")


class TestFailedStart(AipTestCase):

    def assert_no_daemons_left(self, why):
        wait_until(lambda: not self.daemons(), 10, "no daemon left after %s" % why)
        self.assertEqual(self.ok("daemon", "stop")["status"], "not running")
        self.assertIs(self.ok("daemon", "status")["running"], False)
        self.assertEqual(self.daemons(), {})

    def test_unwritable_pid_file(self):
        self.ok("identity")
        os.mkdir(self.path("daemon.pid"))
        for attempt in range(3):
            error = self.fail("room", "list")
            self.assertIn("daemon.pid", error)
            self.assert_no_daemons_left("start %d with daemon.pid unwritable" % attempt)
        os.rmdir(self.path("daemon.pid"))
        self.assertEqual(self.ok("room", "list")["rooms"], [])
        #  (a child forked but not yet exec'd shows as brokerd a moment)
        self.assert_one_daemon_set()

    def test_lan_port_in_use(self):
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        for attempt in range(2):
            error = self.fail("daemon", "start", "--lan", "--port", str(port))
            self.assertIn(str(port), error)
            self.assert_no_daemons_left("start %d with LAN port %d taken" % (attempt, port))
        taken.close()
        self.assertEqual(self.ok("daemon", "start", "--lan", "--port", str(port))["mode"], "lan")

    def test_full_disk(self):
        disk = os.path.join(self.tmp, "disk")
        os.mkdir(disk)
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", disk],
                               capture_output=True, text=True)
        if mount.returncode != 0:
            self.skipTest("cannot mount a small tmpfs here: %s" % mount.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", disk])
        home = os.path.join(disk, "h")
        self.home = home
        self.env["AI_PEERS_HOME"] = home
        room = self.new_room("before the disk filled")
        self.ok("daemon", "stop")
        #  Fill the disk to the last block
        fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for chunk in (65536, 1):
                try:
                    while os.write(fd, b"\0" * chunk):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        for attempt in range(2):
            r = self.run_cli("room", "list")
            self.assert_envelope(r)
            self.assertFalse(r.doc["ok"], r)
            self.assertIn("No space left", r.doc["error"])
            self.assert_no_daemons_left("start %d on a full disk" % attempt)
        os.unlink(os.path.join(disk, "filler"))
        self.assertEqual([x["id"] for x in self.ok("room", "list")["rooms"]], [room])


if __name__ == "__main__":
    main()
