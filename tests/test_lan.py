#!/usr/bin/python3
"""System test: LAN mode across separate machines (docs/lan.md).

Three hosts, each a Linux network namespace with its own host name and its
own AI_PEERS_HOME, on one bridge (tests/lanhosts.py): hostA 10.231.0.1,
hostB .2, hostC .3. A hubs rooms, B joins and chats, C is the stranger.

HarnessTest checks the machines themselves (reachability, UDP broadcast
across the bridge, a daemon set per host inside its namespace, packet
capture, nothing left after teardown); LanTest checks what a user of LAN
mode would: discovery by beacon, create/join/chat both ways, the hub dying
and coming back (nothing lost, nothing doubled), strangers refused, nothing
readable on the wire, joining through discovery.

Needs root (CI runs as root); skipped with the reason otherwise. Never
sleeps to synchronise: every wait polls a condition with a deadline.
AIP_KEEP_TMP=1 keeps the hosts' homes (daemon.log, peers.db) for a look.

    sudo AIP_BIN_DIR=build AIP_SOURCE_DIR=. /usr/bin/python3 tests/test_lan.py -v
"""
import json
import os
import re
import secrets
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest      # noqa: E402
import lanhosts     # noqa: E402

PORT = 7899
WARNING = "LAN hub unreachable — message saved locally only"
DEADLINE = 20.0                 # generous: the ASan suite runs this too
FAKE_TOOLS = os.path.join(aiptest.SOURCE_DIR, "tests", "fake")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def wait_for(what, condition, timeout=DEADLINE, interval=0.2):
    """Poll condition() until it returns a true value; fail with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(interval)        # polling interval, not synchronisation


def parse_cs(cs):
    """A peer+lan:// connection string: (address, port, room id, {query})."""
    u = urllib.parse.urlsplit(cs)
    q = dict(urllib.parse.parse_qsl(u.query))
    return u.hostname, u.port, u.path.lstrip("/"), q


def with_query(cs, **changes):
    """cs with some query values replaced (the order of the others kept)."""
    u = urllib.parse.urlsplit(cs)
    pairs = [(k, changes.get(k, v)) for k, v in urllib.parse.parse_qsl(u.query)]
    return urllib.parse.urlunsplit(u._replace(query="&".join("%s=%s" % p for p in pairs)))


def other_hex64(not_this):
    while True:
        h = secrets.token_hex(32)
        if h != not_this:
            return h


def need_lanhosts():
    """Skip without root or network namespaces (AIP_LAN_REQUIRED=1: fail instead)."""
    if not os.access(aiptest.AI_PEER, os.X_OK):
        raise AssertionError("no ai-peer in AIP_BIN_DIR=%s" % aiptest.BIN_DIR)
    reason = lanhosts.unavailable()
    if reason:
        if os.environ.get("AIP_LAN_REQUIRED"):
            raise AssertionError(reason)
        raise unittest.SkipTest(reason)


class LanCase(unittest.TestCase):
    """A test class on its own LanNet; a failing test prints the daemon logs."""

    maxDiff = 6000
    letters = "ABC"
    net = None

    @classmethod
    def setUpClass(cls):
        need_lanhosts()
        cls.net = lanhosts.LanNet(cls.letters).up()
        for h in cls.net.hosts:
            setattr(cls, h.letter, h)

    @classmethod
    def tearDownClass(cls):
        if cls.net is None:
            return
        logs = {h.name: h.log() for h in cls.net.hosts}
        cls.net.down()
        for name, log in logs.items():
            for mark in aiptest.SANITIZER_MARKS:
                if mark in log:
                    raise AssertionError("sanitizer report in %s's daemon.log:\n%s"
                                         % (name, log[-20000:]))

    def need_tcpdump(self):
        if not lanhosts.shutil.which("tcpdump"):
            reason = "tcpdump is not installed (scripts/setup.sh installs it)"
            if os.environ.get("AIP_LAN_REQUIRED"):
                self.fail(reason)
            self.skipTest(reason)

    def failed(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return any(t is self for t, _ in getattr(result, "failures", []) +
                   getattr(result, "errors", []))

    def tearDown(self):
        if self.failed() and self.net:
            sys.stderr.write("\n==== %s failed; the hosts' daemon logs:\n%s\n"
                             % (self.id(), self.net.logs()))


class HarnessTest(LanCase):
    """The machines the LAN tests run on: a LAN, not one host in disguise."""

    def test_hosts_reach_each_other_and_broadcast_crosses_the_bridge(self):
        A, B, C = self.A, self.B, self.C
        for h in (A, B, C):
            for other in (A, B, C):
                if other is not h:
                    self.assertTrue(h.reaches(other.addr), "%s -> %s" % (h, other))
            self.assertEqual(h.run("uname", "-n").stdout.decode().strip(), h.name)
        #  B and C listen on the beacon port; A broadcasts until both heard it
        listen = ("import socket,sys\n"
                  "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                  "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                  "s.bind(('',%d)); s.settimeout(%d)\n"
                  "print('ready',flush=True)\n"
                  "d,a=s.recvfrom(2048); print(a[0],d.decode(),flush=True)\n" % (PORT, DEADLINE))
        receivers = [h.popen(sys.executable, "-c", listen, stdout=subprocess.PIPE, text=True)
                     for h in (B, C)]
        try:
            for r in receivers:
                self.assertEqual(r.stdout.readline().strip(), "ready")
            send = ("import socket,sys\n"
                    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                    "s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\n"
                    "s.sendto(b'beacon-from-A',(sys.argv[1],%d))\n" % PORT)
            for dest in ("10.231.0.255", "255.255.255.255"):
                wait_for("a broadcast to %s" % dest,
                         lambda: A.run(sys.executable, "-c", send, dest).returncode == 0)
            for r in receivers:
                out, _ = r.communicate(timeout=DEADLINE + 5)
                self.assertEqual(out.strip(), "%s beacon-from-A" % A.addr)
        finally:
            for r in receivers:
                if r.poll() is None:
                    r.kill()
                    r.wait()

    def test_each_host_has_its_own_daemon_set_and_identity(self):
        for h in (self.A, self.B):
            ident = h.ok("identity")
            self.assertEqual(ident["id"], h.identity_id)
            self.assertEqual(ident["machine"], h.name)
            h.ok("room", "create", "local-" + h.letter)
            pids = wait_for("%s's daemons" % h.name, h.daemon_pids)
            ns = os.readlink("/proc/%d/ns/net" % next(iter(pids)))
            self.assertNotEqual(ns, os.readlink("/proc/self/ns/net"),
                                "the daemons run in %s's namespace" % h.name)
            self.assertIn(next(iter(pids)), lanhosts.netns_pids(h.ns))
        rooms_a = [r["name"] for r in self.A.ok("room", "list")["rooms"]]
        self.assertEqual(rooms_a, ["local-A"], "homes are separate")
        killed = self.B.kill_daemons()
        self.assertTrue(killed)
        self.assertTrue(self.A.daemon_pids(), "killing B's daemons leaves A's alone")

    def test_capture_sees_plaintext_and_tcp_to_the_port(self):
        self.need_tcpdump()
        A, B = self.A, self.B
        cap = lanhosts.Capture(A, os.path.join(self.net.tmp, "harness.pcap")).start()
        canary = "plain-canary-" + secrets.token_hex(6)
        server = ("import socket\n"
                  "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                  "s.bind(('',%d)); s.listen(1); print('ready',flush=True)\n"
                  "c,_=s.accept(); print(c.recv(100).decode(),flush=True)\n" % PORT)
        srv = A.popen(sys.executable, "-c", server, stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(srv.stdout.readline().strip(), "ready")
            client = ("import socket,sys\n"
                      "socket.create_connection((sys.argv[1],%d),timeout=5).sendall("
                      "sys.argv[2].encode())\n" % PORT)
            self.assertEqual(B.run(sys.executable, "-c", client, A.addr, canary).returncode, 0)
            out, _ = srv.communicate(timeout=DEADLINE)
            self.assertEqual(out.strip(), canary)
        finally:
            if srv.poll() is None:
                srv.kill()
                srv.wait()
        data = cap.stop()
        self.assertIn(canary.encode(), data, "the capture holds what crossed the wire")
        tcp = [p for p in lanhosts.parse_pcap(data)
               if p["proto"] == "tcp" and p["dport"] == PORT and p["payload"]]
        self.assertTrue(tcp, "TCP with data to port %d in the capture" % PORT)
        self.assertEqual(tcp[0]["src"], B.addr)

    def test_teardown_leaves_nothing(self):
        lanhosts.sweep_stale()
        #  Ours only: another run of the tests on this machine makes and
        #  removes its own namespaces meanwhile
        def ours():
            return {ns for ns in lanhosts.netns_list()
                    if ns.startswith("%s-%d-" % (lanhosts.PREFIX, os.getpid()))}
        before = ours()
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        net = lanhosts.LanNet("XY").up()
        try:
            x, y = net.hosts
            x.ok("room", "create", "x")
            y.ok("room", "create", "y")
            self.assertTrue(x.daemon_pids() and y.daemon_pids())
            mine = {net.switch, x.ns, y.ns}
            self.assertEqual(mine - set(lanhosts.netns_list()), set())
            #  a process left in a namespace is killed too
            stray = x.popen("sleep", "300", uts=False)
        finally:
            tmp = net.tmp
            net.down()
        self.assertEqual(net.leftovers(), [])
        self.assertEqual(ours(), before)
        self.assertFalse(os.path.exists(tmp))
        self.assertEqual(stray.wait(timeout=10), -9)
        after = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        self.assertEqual(after, links, "the root namespace's links are as they were")


class LanTest(LanCase):
    """LAN mode as a user sees it, across hostA (hub), hostB and hostC."""

    room = None         # the room r1 A hubs and B joined: the created data
    joined = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        #  A has AI tools installed (the fakes), so its beacon carries a list
        cls.A.env["PATH"] = FAKE_TOOLS + ":" + cls.A.env.get("PATH", "")

    # -- helpers -------------------------------------------------------------

    def lan_on(self, *hosts):
        """Each host's daemon set in LAN mode (started if need be)."""
        for h in hosts:
            status = h.ok("daemon", "status") if h.daemon_pids() else {}
            if not status.get("lan"):
                data = h.ok("daemon", "start", "--lan")
                self.assertEqual(data["port"], PORT, data)

    def lan_peer(self, observer, machine):
        """The lan_peers entry of machine in observer's discover, when heard."""
        last = {}

        def heard():
            last["data"] = data = observer.ok("discover")
            return next((p for p in data.get("lan_peers") or []
                         if p.get("machine") == machine), None)
        try:
            return wait_for("%s to hear %s's beacon" % (observer.name, machine), heard)
        except AssertionError as e:
            data = last.get("data", {})
            raise AssertionError("%s; discover's lan_peers: %r (keys: %s)"
                                 % (e, data.get("lan_peers", "(none)"), sorted(data))) from None

    def messages(self, host, room):
        return host.ok("history", room, "-n", "1000")["messages"]

    def contents(self, host, room):
        return [m["content"] for m in self.messages(host, room)]

    def shared_room(self):
        """r1: A hubs it, B joined it. Its create data."""
        self.lan_on(self.A, self.B)
        cls = type(self)
        if cls.room is None:
            cls.room = self.A.ok("room", "create", "r1", "--lan")
        if not cls.joined:
            self.B.ok("room", "join", cls.room["connection_string"])
            cls.joined = True
        return cls.room

    def assert_arrives(self, host, room, text):
        wait_for("%s to get %r" % (host.name, text),
                 lambda: text in self.contents(host, room))

    # -- 1. discovery ----------------------------------------------------------

    def test_1_discovery_by_beacon(self):
        self.lan_on(self.A, self.B)
        status = self.A.ok("daemon", "status")
        lan = status.get("lan")
        self.assertIsInstance(lan, dict, status)
        self.assertEqual(lan.get("address"), self.A.addr, lan)
        self.assertEqual(lan.get("port"), PORT, lan)
        self.assertRegex(lan.get("public_key", ""), HEX64)

        peer = self.lan_peer(self.B, "hostA")
        self.assertEqual(peer.get("address"), self.A.addr, peer)
        self.assertEqual(peer.get("user"), self.A.user, peer)
        self.assertEqual(peer.get("port"), PORT, peer)
        self.assertEqual(peer.get("status"), "active", peer)
        self.assertEqual(peer.get("public_key"), lan["public_key"], peer)
        self.assertIn("last_seen", peer)
        self.assertIsInstance(peer.get("tools"), list, peer)
        mine = sorted(d["tool"] for d in self.A.ok("discover")["discovered"])
        self.assertTrue(mine, "A has the fake tools on PATH")
        #  A's beacon tells the tools its spawn workers said they have in
        #  their READY: it is re-published once they are up
        #  (claude-code's alias "claude" is listed too: invites may use it)
        tools = lambda p: sorted(t for t in (t if isinstance(t, str) else t.get("tool")
                                             for t in p["tools"])
                                 if t != "claude" or "claude-code" not in mine)
        heard = {}
        try:
            wait_for("B to hear A's installed tools", lambda: heard.update(
                tools=tools(self.lan_peer(self.B, "hostA"))) or heard["tools"] == mine)
        except AssertionError as e:
            raise AssertionError("%s: B hears %r, A has %r" % (e, heard.get("tools"), mine))
        #  and the other way round
        self.assertEqual(self.lan_peer(self.A, "hostB").get("address"), self.B.addr)

        peers = self.B.ok("list")["peers"]
        lan_a = [p for p in peers if p.get("type") == "lan" and p.get("machine") == "hostA"]
        self.assertEqual(len(lan_a), 1, peers)
        self.assertEqual(lan_a[0].get("address"), self.A.addr, lan_a)
        self.assertEqual(lan_a[0].get("status"), "active", lan_a)
        self.assertIn("tools", lan_a[0])
        self.assertGreaterEqual(self.B.ok("daemon", "status")["lan"].get("peers_heard", 0), 1)

    # -- 2. create, join, chat ---------------------------------------------------

    def test_2_create_join_and_chat_both_ways(self):
        self.lan_on(self.A, self.B)
        room = self.shared_room()
        rid, cs = room["id"], room["connection_string"]
        self.assertRegex(rid, r"^room-[0-9a-f]{12}$")
        self.assertTrue(cs.startswith("peer+lan://%s:%d/%s?" % (self.A.addr, PORT, rid)), cs)
        addr, port, path_room, q = parse_cs(cs)
        self.assertEqual((addr, port, path_room), (self.A.addr, PORT, rid))
        self.assertRegex(q.get("token", ""), HEX64, cs)
        self.assertRegex(q.get("key", ""), HEX64, cs)
        self.assertEqual(q["key"], self.A.ok("daemon", "status")["lan"]["public_key"])
        self.assertIn(rid, [r["id"] for r in self.B.ok("room", "list")["rooms"]])

        from_b = "hello from B " + secrets.token_hex(4)
        sent = self.B.ok("chat", rid, from_b)
        self.assertNotIn("warning", sent)
        self.assert_arrives(self.A, rid, from_b)
        from_a = "hello from A " + secrets.token_hex(4)
        sent = self.A.ok("chat", rid, from_a)
        self.assertNotIn("warning", sent)
        self.assert_arrives(self.B, rid, from_a)

        def same_on_both():
            a = [(m["id"], m["content"]) for m in self.messages(self.A, rid)]
            b = [(m["id"], m["content"]) for m in self.messages(self.B, rid)]
            return a == b and (a, b)
        try:
            a, _ = wait_for("both copies of the room to agree", same_on_both)
        except AssertionError:
            self.assertEqual([(m["id"], m["content"]) for m in self.messages(self.A, rid)],
                             [(m["id"], m["content"]) for m in self.messages(self.B, rid)])
            raise
        texts = [c for _, c in a]
        self.assertLess(texts.index(from_b), texts.index(from_a))
        self.assertEqual(len(set(i for i, _ in a)), len(a), "no id twice")
        on_a = {m["content"]: m for m in self.messages(self.A, rid)}
        self.assertEqual(on_a[from_b]["peer_id"], self.B.identity_id)
        self.assertEqual(on_a[from_a]["peer_id"], self.A.identity_id)
        joins = [m["peer_id"] for m in self.messages(self.A, rid)
                 if m["type"] == "system" and m["content"] == "joined the room"]
        self.assertEqual(joins.count(self.B.identity_id), 1, joins)
        self.assertTrue(self.B.ok("chat", rid)["relay_ok"])

    # -- 3. the hub dies and comes back -----------------------------------------

    def test_3_hub_down_messages_wait_and_arrive_once(self):
        rid = self.shared_room()["id"]
        self.assertTrue(self.B.ok("chat", rid)["relay_ok"])
        killed = self.A.kill_daemons()
        self.assertIn("brokerd", killed.values())

        fast = {"AI_PEER_RELAY_WAIT_MS": "1000"}
        texts = ["while the hub is down %d %s" % (i, secrets.token_hex(3)) for i in range(3)]
        for text in texts:
            r = self.B.cli("chat", rid, text, env=fast)
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(r.doc["data"].get("warning"), WARNING, r)
            self.assertIn(WARNING, r.stderr.decode())
        self.assertEqual([c for c in self.contents(self.B, rid) if c in texts], texts,
                         "B keeps them locally, in order")
        wait_for("B's relay_ok to turn false", lambda: not self.B.ok("chat", rid)["relay_ok"])
        self.assertFalse(self.A.daemon_pids(), "nothing restarted A's daemons yet")

        data = self.A.ok("daemon", "start", "--lan")
        self.assertEqual(data["port"], PORT)
        wait_for("A to get the 3 messages B wrote while it was down",
                 lambda: all(t in self.contents(self.A, rid) for t in texts), timeout=40)
        marker = "after the hub came back " + secrets.token_hex(3)
        self.B.ok("chat", rid, marker)
        self.assert_arrives(self.A, rid, marker)
        got = [c for c in self.contents(self.A, rid) if c in texts]
        self.assertEqual(got, texts, "each exactly once, in order, on the hub")

        from_a = "A is back " + secrets.token_hex(3)
        sent = self.A.ok("chat", rid, from_a)
        self.assertNotIn("warning", sent)
        self.assert_arrives(self.B, rid, from_a)
        self.assertEqual([c for c in self.contents(self.B, rid) if c in texts], texts,
                         "no duplicates on B either")
        wait_for("B's relay_ok to come back", lambda: self.B.ok("chat", rid)["relay_ok"])

    # -- 4. a stranger --------------------------------------------------------

    def test_4_stranger_with_a_wrong_token_or_key_is_refused(self):
        self.lan_on(self.A)
        room = self.A.ok("room", "create", "r-c", "--lan")
        rid, cs = room["id"], room["connection_string"]
        _, _, _, q = parse_cs(cs)
        C = self.C

        def c_rooms():
            return [r["id"] for r in C.ok("room", "list")["rooms"]]

        err = C.fail("room", "join", with_query(cs, token=other_hex64(q["token"])))
        self.assertIn("token", err.lower())
        self.assertNotIn(rid, c_rooms())

        started = time.monotonic()
        err = C.fail("room", "join", with_query(cs, key=other_hex64(q["key"])),
                     timeout=aiptest.COMMAND_TIMEOUT)
        took = time.monotonic() - started
        self.assertLess(took, 30, "a hub that cannot answer fails within the command's timeout")
        self.assertTrue(any(w in err.lower() for w in ("key", "reach", "answer", "connect",
                                                       self.A.addr)), err)
        self.assertNotIn(rid, c_rooms())

        #  the right string works from the same host: the refusals were not luck
        self.assertEqual(C.ok("room", "join", cs)["joined"], rid)
        self.assertIn(rid, c_rooms())

    # -- 5. nothing readable on the wire -------------------------------------------

    def test_5_capture_holds_no_message_text(self):
        self.need_tcpdump()
        A, B = self.A, self.B
        r1 = self.shared_room()
        password = "pw-" + secrets.token_hex(4)
        r2 = A.ok("room", "create", "r2", "--lan", "--password", password)
        self.assertTrue(r2.get("encrypted"), r2)
        cap = lanhosts.Capture(A, os.path.join(self.net.tmp, "lan.pcap")).start()
        try:
            B.ok("room", "join", r2["connection_string"], "--password", password)
            texts = []
            for room in (r1, r2):
                for sender, reader in ((B, A), (A, B)):
                    text = "secret-%s-%s-%s" % (sender.letter, room["id"][-4:],
                                                secrets.token_hex(6))
                    texts.append(text)
                    sent = sender.ok("chat", room["id"], text)
                    self.assertNotIn("warning", sent)
                    self.assert_arrives(reader, room["id"], text)
        finally:
            data = cap.stop()
        for text in texts:
            self.assertNotIn(text.encode(), data, "message text in clear on the wire")
        for room in (r1, r2):
            token = parse_cs(room["connection_string"])[3]["token"]
            self.assertNotIn(token.encode(), data, "a room token in clear on the wire")
        self.assertNotIn(password.encode(), data)
        #  not vacuous: the capture did record the hub's TCP traffic, both ways
        tcp = [p for p in lanhosts.parse_pcap(data) if p["proto"] == "tcp" and p["payload"]]
        to_hub = [p for p in tcp if p["dst"] == A.addr and p["dport"] == PORT
                  and p["src"] == B.addr]
        from_hub = [p for p in tcp if p["src"] == A.addr and p["sport"] == PORT
                    and p["dst"] == B.addr]
        self.assertTrue(to_hub and from_hub,
                        "TCP with data B -> A:%d and back in the capture (%d packets in all)"
                        % (PORT, len(tcp)))
        self.assertGreater(sum(len(p["payload"]) for p in to_hub),
                           sum(len(t) for t in texts) // 2)

    # -- 6. join through discovery ---------------------------------------------

    def test_6_join_through_discovery_with_the_token(self):
        self.lan_on(self.A, self.B)
        room = self.A.ok("room", "create", "r3", "--lan")
        rid = room["id"]
        token = parse_cs(room["connection_string"])[3]["token"]
        self.lan_peer(self.B, "hostA")

        err = self.B.fail("room", "join", rid, "--lan", "--token", other_hex64(token))
        self.assertIn("token", err.lower())
        self.assertNotIn(rid, [r["id"] for r in self.B.ok("room", "list")["rooms"]])

        data = self.B.ok("room", "join", rid, "--lan", "--token", token)
        self.assertEqual(data["joined"], rid)
        from_b = "found you by beacon " + secrets.token_hex(3)
        self.assertNotIn("warning", self.B.ok("chat", rid, from_b))
        self.assert_arrives(self.A, rid, from_b)
        from_a = "welcome " + secrets.token_hex(3)
        self.A.ok("chat", rid, from_a)
        self.assert_arrives(self.B, rid, from_a)

        missing = "room-%s" % secrets.token_hex(6)
        self.B.fail("room", "join", missing, "--lan", "--token", token, timeout=40)

    def test_6b_password_room_joined_with_id_token_and_password(self):
        """The original's form for an aip1 room: the hub's lan.info carries
        the room's public key parameters (never the key)."""
        self.lan_on(self.A, self.B)
        password = "pw-" + secrets.token_hex(4)
        room = self.A.ok("room", "create", "r6", "--lan", "--password", password)
        rid = room["id"]
        token = parse_cs(room["connection_string"])[3]["token"]
        first = "sealed before the join " + secrets.token_hex(3)
        self.A.ok("chat", rid, first)
        self.lan_peer(self.B, "hostA")

        err = self.B.fail("room", "join", rid, "--lan", "--token", token, "--password", "wrong")
        self.assertIn("Wrong password", err)
        self.assertNotIn(rid, [r["id"] for r in self.B.ok("room", "list")["rooms"]])

        data = self.B.ok("room", "join", rid, "--lan", "--token", token, "--password", password)
        self.assertEqual(data["joined"], rid)
        self.assertEqual(data["remote_info"].get("cipher"), "aip1", data)
        self.assertIn("&kdf=" + data["remote_info"]["kdf"],
                      urllib.parse.unquote(room["connection_string"]))
        self.assertNotIn("key", data["remote_info"])
        self.assertIn(first, self.contents(self.B, rid))
        reply = "read you " + secrets.token_hex(3)
        self.B.ok("chat", rid, reply)
        self.assert_arrives(self.A, rid, reply)

    # -- 7. a member with the token, misbehaving ------------------------------

    def test_7_a_hostile_client_with_the_token_gets_nothing_more(self):
        """A raw CURVE client on C that knows r1's token and the hub's key: it
        may not speak as anyone who joined before it, nor call anything but
        the lan.* operations, nor pass the size limits."""
        A, B = self.A, self.B
        r1 = self.shared_room()
        rid = r1["id"]
        _, _, _, q = parse_cs(r1["connection_string"])
        marker = "B speaks first " + secrets.token_hex(3)
        B.ok("chat", rid, marker)            # B's own signature is on the hub now
        self.assert_arrives(A, rid, marker)
        before = self.contents(A, rid)
        now = "2026-11-24T00:00:00.000000+00:00"

        def post(peer_id, text, signature="00" * 32, token=q["token"]):
            return {"op": "lan.post", "a": {
                "room_id": rid, "token": token, "peer_signature": signature,
                "message": {"id": "msg-" + secrets.token_hex(8), "content": text,
                            "created_at": now, "type": "message",
                            "peer": {"id": peer_id, "name": peer_id, "type": "human"}}}}
        requests = [
            post(B.identity_id, "forged as B"),
            post(A.identity_id, "forged as the hub's own user"),
            post("hostC-human-carol", "x" * (300 * 1024)),
            {"op": "msg.list", "a": {"room_id": rid}},
            {"op": "room.list", "a": {}},
            {"op": "lan.fetch", "a": {"room_id": rid, "token": other_hex64(q["token"])}},
            {"op": "lan.info", "a": {"room_id": rid}},
        ]
        replies = self.raw_client(self.C, q["key"], requests)
        errors = [r.get("error", {}).get("message", "") if r else None for r in replies]
        self.assertIn("identity mismatch", errors[0], replies[0])
        self.assertIn("member of this room on its hub", errors[1], replies[1])
        self.assertTrue(replies[2] and not replies[2]["ok"], replies[2])
        self.assertIn("limit", errors[2])
        self.assertIn("not allowed from another machine", errors[3], replies[3])
        self.assertIn("not allowed from another machine", errors[4], replies[4])
        self.assertIn("Invalid join token", errors[5], replies[5])
        self.assertTrue(replies[6] and replies[6]["ok"], replies[6])
        self.assertEqual(set(replies[6]["data"]), {"room_id", "name", "created_at",
                                                   "encrypted", "has_token"},
                         "lan.info says nothing more (no token)")
        #  nothing got in, and the hub still serves its members
        self.assertEqual(self.contents(A, rid), before)
        after = "B still welcome " + secrets.token_hex(3)
        B.ok("chat", rid, after)
        self.assert_arrives(A, rid, after)

    def raw_client(self, host, key_hex, requests):
        """Send requests from host through a CURVE DEALER of its own to the
        hub; the decoded replies (None: no answer)."""
        script = r'''
import json, sys, zmq, zmq.utils.z85, msgpack
key, requests = sys.argv[1], json.load(sys.stdin)
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
pub, sec = zmq.curve_keypair()
s.curve_publickey, s.curve_secretkey = pub, sec
s.curve_serverkey = zmq.utils.z85.encode(bytes.fromhex(key))
s.linger = 0
s.connect("tcp://%s:%d" % (sys.argv[3], int(sys.argv[4])))   # argv[2]: "-", stdin
out = []
for i, r in enumerate(requests):
    body = {"v": 1, "id": i + 1, "op": r["op"], "a": r["a"]}
    s.send(msgpack.packb(body, use_bin_type=True))
    got = None
    while s.poll(10000):
        rep = msgpack.unpackb(s.recv(), raw=False)
        if rep.get("id") == i + 1:
            got = rep
            break
    out.append(got)
print(json.dumps(out))
'''
        p = host.run("/usr/bin/python3", "-c", script, key_hex, "-", self.A.addr, str(PORT),
                     input=json.dumps(requests).encode(), timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        return json.loads(p.stdout)

    # -- 8. a peer that went quiet ---------------------------------------------

    def test_8_a_silent_peer_is_marked_gone(self):
        self.lan_on(self.A, self.C)
        self.assertEqual(self.lan_peer(self.A, "hostC").get("status"), "active")
        self.C.stop_daemons()
        #  ~30 s without a beacon (AIP_LAN_GONE_MS)
        gone = wait_for("A to mark C gone", lambda: next(
            (p for p in self.A.ok("discover")["lan_peers"]
             if p.get("machine") == "hostC" and p.get("status") == "gone"), None),
            timeout=60, interval=1.0)
        self.assertEqual(gone.get("address"), self.C.addr)
        peers = self.A.ok("list")["peers"]
        self.assertIn("gone", [p.get("status") for p in peers
                               if p.get("type") == "lan" and p.get("machine") == "hostC"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
