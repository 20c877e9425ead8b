"""test_robustness.py — concurrency, crashes and malformed frames.

(a) ten first commands at once start one daemon set; (b) kill -9 storaged
during a burst of sends: every acknowledged message is stored exactly once;
(c) kill -9 brokerd in the middle of a command: success or a clear error,
never a hang; (d) malformed frames to a live broker get errors and the
broker keeps serving; (e) run/ is private.
"""
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402
from aiptest import AI_PEER, AipTestCase, ProtoClient, pid_alive, wait_until  # noqa: E402

import msgpack  # noqa: E402
import zmq  # noqa: E402


def proc_state(pid):
    """The one-letter state /proc gives a process (R, S, T stopped, Z), or "?"."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return "?"


def peer(name):
    return {"id": "test-%s" % name, "name": name, "type": "ai", "tool": name, "machine": "t"}


class TestStartup(AipTestCase):

    def test_ten_first_commands_at_once(self):
        commands = [["room", "list"], ["identity"], ["room", "create", "r"], ["list"],
                    ["history"]] * 2
        procs = [subprocess.Popen([AI_PEER] + c, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=self.env) for c in commands]
        results = []
        for c, p in zip(commands, procs):
            out, err = p.communicate(timeout=60)
            results.append(aiptest.Result(c, p.returncode, out, err))
        for r in results:
            self.check_stderr(r)
            self.assert_envelope(r)
            self.assertTrue(r.doc["ok"], r)
        self.assert_one_daemon_set()
        #  Everyone agrees on the identity and sees both rooms
        ids = {r.doc["data"]["id"] for r in results if r.args == ["identity"]}
        self.assertEqual(len(ids), 1)
        self.assertEqual(len(self.ok("room", "list")["rooms"]), 2)
        self.assertEqual(self.ok("daemon", "status")["pid"], self.broker_pid())

    def test_run_dir_is_private(self):
        self.ok("daemon", "start")
        mode = stat.S_IMODE(os.stat(self.path("run")).st_mode)
        self.assertEqual(mode, 0o700)
        self.ok("daemon", "stop")
        #  A run/ made public by someone is made private again
        os.chmod(self.path("run"), 0o755)
        self.ok("identity")
        self.assertEqual(stat.S_IMODE(os.stat(self.path("run")).st_mode), 0o700)
        home_mode = stat.S_IMODE(os.stat(self.home).st_mode)
        self.assertEqual(home_mode & 0o077, 0, oct(home_mode))
        self.assertEqual(stat.S_IMODE(os.stat(self.path("identity.json")).st_mode) & 0o077, 0)


class TestStorageCrash(AipTestCase):

    SENDERS = 4
    PER_SENDER = 100            #  CLI sends per sender
    RAW_PER_SENDER = 2000       #  pipelined protocol sends per sender

    def test_kill9_storaged_during_cli_burst(self):
        room = self.new_room("burst")
        storaged = self.storaged_pid()
        acked = {}                  # content -> id, for sends that exited 0
        failed = []
        lock = threading.Lock()

        def sender(n):
            for i in range(self.PER_SENDER):
                content = "sender %d message %d" % (n, i)
                r = self.run_cli("chat", room, "--tool", "t%d" % n, content, timeout=60)
                with lock:
                    if r.rc == 0 and r.doc and r.doc.get("ok"):
                        acked[content] = r.doc["data"]["sent"]["id"]
                    else:
                        self.assertIsNotNone(r.doc, r)
                        self.assertEqual(r.rc, 1, r)
                        failed.append(r.doc["error"])

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(self.SENDERS)]
        for t in threads:
            t.start()
        try:
            #  Kill once a fair part of the burst went through
            wait_until(lambda: len(acked) >= self.SENDERS * self.PER_SENDER // 4, 60,
                       "a quarter of the burst")
            os.kill(storaged, signal.SIGKILL)
        finally:
            for t in threads:
                t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "a sender hung")
        self.check_all_stored(room, acked)
        self.check_restarted(storaged)
        #  Most sends succeed: the CLI retries a request its worker lost
        self.assertGreater(len(acked), self.SENDERS * self.PER_SENDER * 0.9, failed[:5])

    def test_kill9_storaged_during_protocol_burst(self):
        """Pipelined raw clients: ok replies must be durable."""
        room = self.new_room("pipelined")
        storaged = self.storaged_pid()
        acked = {}
        lock = threading.Lock()
        progress = [0]

        def sender(n):
            client = ProtoClient(self.home)
            try:
                pending = {}
                sent = 0
                deadline = time.monotonic() + 90
                while (sent < self.RAW_PER_SENDER or pending) and time.monotonic() < deadline:
                    while sent < self.RAW_PER_SENDER and len(pending) < 32:
                        mid = "msg-t%dx%05d" % (n, sent)
                        content = "raw %d/%d" % (n, sent)
                        rid = client.request("msg.send", {"room_id": room, "id": mid,
                                                          "content": content,
                                                          "peer": peer("raw%d" % n)})
                        pending[rid] = (mid, content)
                        sent += 1
                    rep = client.recv(20000)
                    if rep is None:
                        break
                    item = pending.pop(rep.get("id"), None)
                    if item is None:
                        continue
                    with lock:
                        progress[0] += 1
                        if rep.get("ok"):
                            self.assertEqual(rep["data"]["id"], item[0])
                            acked[item[1]] = item[0]
                        else:
                            self.assertIsInstance(rep["error"]["message"], str)
                self.assertEqual(pending, {}, "requests left without a reply")
            finally:
                client.close()

        errors = []

        def run(n):
            try:
                sender(n)
            except BaseException as e:        # noqa: B902 — reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(self.SENDERS)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: progress[0] >= self.SENDERS * self.RAW_PER_SENDER // 8, 60,
                       "an eighth of the burst")
            os.kill(storaged, signal.SIGKILL)
            at_kill = progress[0]
        finally:
            for t in threads:
                t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "a sender hung")
        if errors:
            raise errors[0]
        self.assertLess(at_kill, self.SENDERS * self.RAW_PER_SENDER, "killed after the burst")
        self.check_all_stored(room, acked)
        self.check_restarted(storaged)

    def test_frozen_storaged_gives_clear_error(self):
        """A worker that stops answering: a clear error in bounded time."""
        room = self.new_room()
        storaged = self.storaged_pid()
        os.kill(storaged, signal.SIGSTOP)
        try:
            #  Stopped before the send (the signal is delivered when the
            #  kernel next runs it); the one store worker the broker has
            wait_until(lambda: proc_state(storaged) == "T", 10, "storaged to stop")
            workers = [d for d in self.ok("daemon", "status")["daemons"]
                       if d["name"] == "storaged"]
            self.assertEqual([d["pid"] for d in workers], [storaged], workers)
            start = time.monotonic()
            r = self.run_cli("chat", room, "into the void", timeout=40)
            self.assertNotEqual(r.rc, 0, "a send answered while storaged (pid %d, state %s) was "
                                "stopped: %r; daemons %r" % (storaged, proc_state(storaged), r,
                                                              self.daemons()))
            self.assertEqual(r.rc, 1, r)
            self.assertIs(r.doc["ok"], False, r)
            err = r.doc["error"]
            self.assertLess(time.monotonic() - start, 35)
            self.assertIn("storaged", err)
        finally:
            os.kill(storaged, signal.SIGCONT)
        self.assertEqual(self.ok("chat", room, "thawed")["sent"]["content"], "thawed")
        msgs = [m["content"] for m in self.read(room) if m["type"] == "message"]
        self.assertEqual(msgs[-1], "thawed")
        self.assertEqual(msgs.count("thawed"), 1)

    def check_all_stored(self, room, acked):
        con = self.db()
        rows = con.execute("SELECT id, content FROM messages WHERE room_id=? AND type='message'",
                           (room,)).fetchall()
        by_content = {}
        for mid, content in rows:
            by_content.setdefault(content, []).append(mid)
        dups = {c: ids for c, ids in by_content.items() if len(ids) > 1}
        self.assertEqual(dups, {}, "messages stored more than once")
        lost = [c for c in acked if c not in by_content]
        self.assertEqual(lost, [], "%d acknowledged messages lost" % len(lost))
        for content, mid in acked.items():
            self.assertEqual(by_content[content], [mid])

    def check_restarted(self, old_storaged):
        wait_until(lambda: self.storaged_pid() not in (None, old_storaged), 15,
                   "the broker to restart storaged")
        status = self.ok("daemon", "status")
        store = [d for d in status["daemons"] if d["name"] == "storaged"][0]
        self.assertGreaterEqual(store["restarts"], 1)
        room = self.new_room("after")
        self.assertEqual(self.ok("chat", room, "still works")["sent"]["content"], "still works")
        self.assertFalse(pid_alive(old_storaged))


class TestBrokerCrash(AipTestCase):

    def test_kill9_broker_while_command_waits(self):
        room = self.new_room()
        storaged = self.storaged_pid()
        broker = self.broker_pid()
        #  Freeze storaged so the command is surely in flight in the broker
        os.kill(storaged, signal.SIGSTOP)
        try:
            p = subprocess.Popen([AI_PEER, "chat", room, "sent during the crash"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env)

            def in_flight():
                st = self.ok("daemon", "status")
                return any(d.get("inflight") for d in st.get("daemons", []))
            wait_until(in_flight, 15, "the request to reach the broker")
            os.kill(broker, signal.SIGKILL)
        finally:
            os.kill(storaged, signal.SIGCONT)
        out, err = p.communicate(timeout=45)
        r = aiptest.Result(["chat"], p.returncode, out, err)
        self.assert_envelope(r)
        if r.doc["ok"]:
            self.assertEqual(r.doc["data"]["sent"]["content"], "sent during the crash")
        else:
            self.assertIn("daemon", r.doc["error"])
        msgs = [m["content"] for m in self.read(room) if m["type"] == "message"]
        self.assertEqual(msgs, ["sent during the crash"] if r.doc["ok"] else msgs)
        self.assertLessEqual(len(msgs), 1)
        self.assert_one_daemon_set()
        self.assertNotIn(broker, self.daemons())

    def test_kill9_broker_during_burst(self):
        room = self.new_room()
        results = []

        def sender():
            for i in range(60):
                results.append(self.run_cli("chat", room, "m%d" % i, timeout=45))

        t = threading.Thread(target=sender)
        t.start()
        try:
            wait_until(lambda: len(results) >= 10, 30, "sends to start")
            broker = self.broker_pid()
            if broker:
                os.kill(broker, signal.SIGKILL)
        finally:
            t.join(120)
        self.assertFalse(t.is_alive())
        for r in results:
            self.assert_envelope(r)
        ok = [r.doc["data"]["sent"]["content"] for r in results if r.doc["ok"]]
        stored = [m["content"] for m in self.read(room) if m["type"] == "message"]
        self.assertEqual(len(stored), len(set(stored)))
        self.assertTrue(set(ok) <= set(stored))
        self.assertGreaterEqual(len(ok), 55)


class TestGreedyClient(AipTestCase):
    """Issue 11 item 10: a client that pipelines large msg.list and reads
    nothing is held to a byte budget; everyone else keeps being served."""

    # AipTestCase.fail runs a CLI command that must fail; unittest's assert
    # methods report through self.fail(msg): here they must really fail
    fail = unittest.TestCase.fail

    MESSAGES = 24               # of 200 KiB: more than one page of history
    REQUESTS = 2000             # pipelined msg.list, never read while sent
    RSS_BOUND_MB = 1024         # generous: unbounded, both went past 2 GB

    def peak_rss_mb(self, pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        return 0

    def test_greedy_client_is_refused_and_nobody_slows_down(self):
        room = self.new_room("greedy")
        filler = ProtoClient(self.home, timeout_ms=30000)
        self.addCleanup(filler.close)
        big = "x" * (200 * 1024)
        for i in range(self.MESSAGES):
            rep = filler.call("msg.send", {"room_id": room, "id": "msg-big%04d" % i,
                                           "content": big, "peer": peer("filler")})
            self.assertTrue(rep and rep["ok"], rep)
        broker, storaged = self.broker_pid(), self.storaged_pid()

        # the greedy client: a short receive queue of its own, so that what
        # it does not read stays on the broker's side
        ctx = zmq.Context()
        self.addCleanup(ctx.term)
        greedy = ctx.socket(zmq.DEALER)
        self.addCleanup(greedy.close, 0)
        greedy.setsockopt(zmq.LINGER, 0)
        greedy.setsockopt(zmq.RCVHWM, 4)
        greedy.setsockopt(zmq.RCVBUF, 64 * 1024)
        greedy.setsockopt(zmq.SNDTIMEO, 60000)
        greedy.connect("ipc://%s/run/broker.ipc" % self.home)
        for rid in range(1, self.REQUESTS + 1):
            greedy.send(msgpack.packb({"v": 1, "id": rid, "op": "msg.list",
                                       "a": {"room_id": room, "limit": 1000}}))

        # meanwhile another client is answered, every time, in good time
        other = ProtoClient(self.home, timeout_ms=5000)
        self.addCleanup(other.close)
        for i in range(20):
            started = time.monotonic()
            rep = other.call("room.list", {})
            self.assertIsNotNone(rep, "another client got no answer while one client "
                                      "pipelined msg.list without reading")
            self.assertTrue(rep["ok"], rep)
            rep = other.call("msg.send", {"room_id": room, "id": "msg-other%04d" % i,
                                          "content": "still here %d" % i,
                                          "peer": peer("other")})
            self.assertTrue(rep and rep["ok"], rep)
            self.assertLess(time.monotonic() - started, 5.0)
        self.assertLess(self.peak_rss_mb(broker), self.RSS_BOUND_MB)
        self.assertLess(self.peak_rss_mb(storaged), self.RSS_BOUND_MB)

        # the greedy client, reading at last: pages, and clear refusals
        pages = refused = 0
        while greedy.poll(10000):
            rep = msgpack.unpackb(greedy.recv(), raw=False)
            if rep["ok"]:
                self.assertTrue(rep["data"]["messages"], rep["id"])
                self.assertTrue(rep["data"].get("truncated"), "a page stops at its byte cap")
                pages += 1
            else:
                self.assertEqual(rep["error"]["code"], "unavailable", rep)
                self.assertIn("read the replies before sending more", rep["error"]["message"])
                refused += 1
            if pages + refused == self.REQUESTS:
                break
        self.assertGreater(pages, 0)
        self.assertGreater(refused, 0)
        self.assertLess(self.peak_rss_mb(broker), self.RSS_BOUND_MB)
        self.assertLess(self.peak_rss_mb(storaged), self.RSS_BOUND_MB)
        # nothing was dropped or restarted, and it is served again
        self.assertEqual(self.broker_pid(), broker)
        self.assertEqual(self.storaged_pid(), storaged)
        rep = other.call("msg.list", {"room_id": room, "limit": 5})
        self.assertTrue(rep and rep["ok"], rep)
        status = self.ok("daemon", "status")
        store = [d for d in status["daemons"] if d["name"] == "storaged"][0]
        self.assertEqual(store["restarts"], 0)
        self.assertNotIn("lost: no heartbeat", self.daemon_log())


class TestMalformedFrames(AipTestCase):

    def setUp(self):
        super().setUp()
        self.ok("daemon", "start")
        self.pids = self.assert_one_daemon_set()
        self.client = ProtoClient(self.home)
        self.addCleanup(self.client.close)

    def expect_error(self, *frames, code="malformed", rid=None):
        self.client.send_raw(*frames)
        rep = self.client.recv(5000)
        self.assertIsNotNone(rep, "no reply to %r" % (frames[0][:64],))
        self.assertEqual(rep.get("v"), 1, rep)
        self.assertIs(rep.get("ok"), False, rep)
        self.assertIsInstance(rep.get("error"), dict, rep)
        self.assertEqual(rep["error"].get("code"), code, rep)
        self.assertIsInstance(rep["error"].get("message"), str, rep)
        self.assertTrue(rep["error"]["message"], rep)
        if rid is not None:
            self.assertEqual(rep.get("id"), rid, rep)
        return rep

    def assert_still_serving(self):
        rep = self.client.call("room.list", {}, 5000)
        self.assertIsNotNone(rep, "the broker stopped answering")
        self.assertIs(rep["ok"], True, rep)
        self.assertIn("rooms", rep["data"])
        self.assertEqual(self.assert_one_daemon_set(), self.pids)
        status = self.ok("daemon", "status")
        self.assertEqual(status["pid"], self.broker_pid())
        store = [d for d in status["daemons"] if d["name"] == "storaged"][0]
        self.assertEqual(store["restarts"], 0)

    def test_normal_request(self):
        rep = self.client.call("ping", {})
        self.assertIs(rep["ok"], True, rep)
        rep = self.client.call("room.list", {})
        self.assertEqual(rep["data"]["rooms"], [])
        self.assertEqual(rep["v"], 1)

    def test_garbage(self):
        for junk in (b"", b"\x00", b"hello world", b"\xc1", b"\xff" * 100, os.urandom(4096),
                     b"{\"v\":1,\"id\":1,\"op\":\"room.list\"}"):
            self.expect_error(junk)
        self.assert_still_serving()

    def test_not_a_map(self):
        for doc in (1, "room.list", [1, 2, 3], None, True, 1.5, b"bin"):
            self.expect_error(msgpack.packb(doc, use_bin_type=True))
        self.assert_still_serving()

    def test_truncated(self):
        good = msgpack.packb({"v": 1, "id": 7, "op": "room.list", "a": {}})
        for cut in range(1, len(good)):
            self.expect_error(good[:cut])
        #  Trailing bytes after a valid document
        self.expect_error(good + b"\x00")
        self.assert_still_serving()

    def test_huge_claimed_lengths(self):
        for claim in (b"\xdd\xff\xff\xff\xff",          # array32 of 4G elements
                      b"\xdf\xff\xff\xff\xff",          # map32
                      b"\xdb\xff\xff\xff\xff",          # str32
                      b"\xc6\xff\xff\xff\xff",          # bin32
                      b"\xc9\xff\xff\xff\xff\x01",      # ext32
                      b"\xdc\xff\xff",                  # array16
                      b"\xde\xff\xff"):                 # map16
            self.expect_error(claim)
            #  ... nested inside an otherwise valid request
            self.expect_error(b"\x84\xa1v\x01\xa2id\x05\xa2op\xa9room.list\xa1a" + claim)
        #  A map claiming more elements than the whole limit, with a few
        self.expect_error(b"\xdf\x00\x20\x00\x00" + b"\xa1k\x01" * 10)
        self.assert_still_serving()

    def test_deep_nesting(self):
        body = b"\x91" * 100000 + b"\x01"
        self.expect_error(b"\x84\xa1v\x01\xa2id\x05\xa2op\xa9room.list\xa1a" + body)
        body = b"\x81\xa1k" * 10000 + b"\x01"
        self.expect_error(body)
        self.assert_still_serving()

    def test_wrong_version(self):
        for v in (0, 2, 255, -1, "1", None):
            body = msgpack.packb({"v": v, "id": 9, "op": "room.list", "a": {}})
            rep = self.expect_error(body, rid=9)
            self.assertIn("version", rep["error"]["message"].lower())
        self.expect_error(msgpack.packb({"id": 9, "op": "room.list", "a": {}}))
        self.assert_still_serving()

    def test_unknown_op(self):
        for op in ("room.explode", "", "x" * 10000, "ROOM.LIST", "room.list\x00"):
            rep = self.expect_error(msgpack.packb({"v": 1, "id": 11, "op": op, "a": {}}),
                                    rid=11)
            self.assertLess(len(rep["error"]["message"]), 2000)
        self.expect_error(msgpack.packb({"v": 1, "id": 11, "op": 42, "a": {}}))
        self.assert_still_serving()

    def test_wrong_field_types(self):
        p = peer("x")
        cases = [
            {"v": 1, "id": "12", "op": "room.list", "a": {}},
            {"v": 1, "id": -1, "op": "room.list", "a": {}},
            {"v": 1, "id": 12, "op": "room.list", "a": []},
            {"v": 1, "id": 12, "op": "room.list", "a": "x"},
            {"v": 1, "id": 12, "op": "room.get", "a": {}},
            {"v": 1, "id": 12, "op": "room.get", "a": {"id": 5}},
            {"v": 1, "id": 12, "op": "room.get", "a": {"id": "bad/id"}},
            {"v": 1, "id": 12, "op": "room.get", "a": {"id": "r" * 65}},
            {"v": 1, "id": 12, "op": "msg.send", "a": {"room_id": "room-x", "content": 5,
                                                       "peer": p}},
            {"v": 1, "id": 12, "op": "msg.send", "a": {"room_id": "room-x", "content": "x"}},
            {"v": 1, "id": 12, "op": "msg.send", "a": {"room_id": "room-x", "content": "x",
                                                       "peer": "me"}},
            {"v": 1, "id": 12, "op": "msg.send", "a": {"room_id": "room-x", "content": "x",
                                                       "peer": dict(p, type="robot")}},
            {"v": 1, "id": 12, "op": "msg.send", "a": {"room_id": "room-x", "content": "x",
                                                       "type": "shout", "peer": p}},
            {"v": 1, "id": 12, "op": "msg.send", "a": {"room_id": "room-x",
                                                       "content": "x" * (256 * 1024 * 4 // 3 + 1025),
                                                       "peer": p}},
            {"v": 1, "id": 12, "op": "msg.list", "a": {"room_id": "room-x", "limit": -5}},
            {"v": 1, "id": 12, "op": "msg.list", "a": {"room_id": "room-x", "limit": 10 ** 9}},
            {"v": 1, "id": 12, "op": "msg.list", "a": {"room_id": "room-x", "limit": "10"}},
            {"v": 1, "id": 12, "op": "peer.register", "a": dict(p, port=70000)},
            {"v": 1, "id": 12, "op": "peer.register", "a": dict(p, port=True)},
        ]
        for doc in cases:
            self.expect_error(msgpack.packb(doc, use_bin_type=True))
        #  Invalid UTF-8 in a string field, and binary where a string goes
        self.expect_error(msgpack.packb({"v": 1, "id": 12, "op": "msg.send",
                                         "a": {"room_id": "room-x", "content": b"x",
                                               "peer": p}}, use_bin_type=True))
        raw = msgpack.packb({"v": 1, "id": 12, "op": "msg.send",
                             "a": {"room_id": "room-x", "content": "\u00e9\u00e9", "peer": p}})
        self.expect_error(raw.replace("\u00e9\u00e9".encode(), b"\xff\xfe"))
        self.assert_still_serving()

    def test_multi_frame(self):
        good = msgpack.packb({"v": 1, "id": 13, "op": "room.list", "a": {}})
        self.expect_error(good, good)
        self.expect_error(good, b"")
        self.expect_error(b"", good)
        self.expect_error(*([b"x"] * 50))
        self.assert_still_serving()

    def test_oversized_frame(self):
        #  Over the socket's maximum message size: zmq drops the connection,
        #  no reply is possible; the broker must shrug it off
        big = ProtoClient(self.home)
        try:
            body = msgpack.packb({"v": 1, "id": 14, "op": "msg.send",
                                  "a": {"room_id": "room-x", "content": "x" * (2 << 20),
                                        "peer": peer("big")}})
            big.send_raw(body)
            rep = big.recv(1000)
            if rep is not None:
                self.assertIs(rep["ok"], False)
        finally:
            big.close()
        self.assert_still_serving()

    def test_many_bad_clients_at_once(self):
        clients = [ProtoClient(self.home) for _ in range(20)]
        try:
            for i, c in enumerate(clients):
                c.send_raw(os.urandom(64 + i))
            for c in clients:
                self.assertIsNotNone(c.recv(5000))
        finally:
            for c in clients:
                c.close()
        self.assert_still_serving()


if __name__ == "__main__":
    aiptest.main()
