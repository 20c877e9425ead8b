"""test_daemon_life.py — starting and stopping the daemon set, truthfully.

(a) relayd honours SIGTERM at once, also right after a start and while it
waits for a storaged that will not answer: `daemon stop` never has to kill it.
"""
import os
import signal
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


if __name__ == "__main__":
    main()
