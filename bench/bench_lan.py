#!/usr/bin/python3
"""bench_lan.py — LAN mode across two hosts (network namespaces, as in tests).

Measures, on real separate daemon sets joined by veth through a bridge:
  discovery  time from `daemon start --lan` on host B returning until host A
             has heard B's beacon (A polls its broker's lan.peers)
  latency    a message sent on one host (msg.send on its broker) until it is
             committed in the other host's local copy (the event storaged
             publishes after the commit, read on that host's PUB socket):
             B -> A (joiner to hub: outbox, lan.post) and A -> B (hub to
             joiner: the held lan.fetch)
  hub post   the store work one lan.post costs the hub: a raw CURVE client on
             host C posts to a room on A that nobody else joined, one post at
             a time; A's storaged counts the requests it processed (daemon
             status), and the client times each post's round trip
  hub fetch  the same for lan.fetch (wait_ms 0: answered at once, the page
             after the cursor), which relayd answers with store calls

Needs root and `ip netns` (like tests/test_lan.py). Prints a Markdown table.
Usage: bench/bench_lan.py [messages] [discovery rounds]
"""
import json
import os
import statistics
import urllib.parse
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
os.environ.setdefault("AIP_BIN_DIR", os.path.join(HERE, "..", "build"))

import msgpack  # noqa: E402
import zmq  # noqa: E402

import aiptest  # noqa: E402
import lanhosts  # noqa: E402


def peers_heard(host):
    c = aiptest.ProtoClient(host.home)
    try:
        rep = c.call("lan.peers", {}, timeout_ms=2000)
        return [p["machine"] for p in (rep or {}).get("data", {}).get("peers", [])]
    finally:
        c.close()


def discovery(net, rounds):
    a, b = net.hosts[:2]
    times = []
    for _ in range(rounds):
        a.stop_daemons()
        b.stop_daemons()
        a.ok("daemon", "start", "--lan")
        b.ok("daemon", "start", "--lan")
        t0 = time.monotonic()
        aiptest.wait_until(lambda: b.name in peers_heard(a), timeout=10,
                           what="A hears B", interval=0.01)
        times.append((time.monotonic() - t0) * 1000)
    return times


def latency(sender, receiver, room_id, count):
    """ms from msg.send on sender to the commit event on receiver."""
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.connect("ipc://%s/run/events.ipc" % receiver.home)
    sub.setsockopt(zmq.SUBSCRIBE, ("room." + room_id).encode())
    time.sleep(0.3)                 # the subscription reaches the PUB socket
    client = aiptest.ProtoClient(sender.home)
    peer = {"id": sender.identity_id, "name": sender.user, "type": "human", "tool": "cli"}
    samples = []
    try:
        for i in range(count):
            content = "bench %s->%s %d" % (sender.letter, receiver.letter, i)
            t0 = time.monotonic()
            rep = client.call("msg.send", {"room_id": room_id, "content": content,
                                           "peer": peer})
            assert rep and rep.get("ok"), rep
            while True:
                if not sub.poll(10000):
                    raise AssertionError("message %d never reached %s" % (i, receiver.name))
                _topic, body = sub.recv_multipart()
                event = msgpack.unpackb(body, raw=False)
                if event.get("data", {}).get("content") == content:
                    samples.append((time.monotonic() - t0) * 1000)
                    break
            time.sleep(0.02)
    finally:
        client.close()
        sub.close(0)
    return samples


#  Runs on host C: N lan.post from a peer of its own, one at a time; prints the
#  round trips in ms as JSON
POSTER = r'''
import json, secrets, sys, time, zmq, zmq.utils.z85, msgpack
key, addr, port, room, token, count = sys.argv[1:7]
s = zmq.Context().socket(zmq.DEALER)
s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
s.curve_serverkey = zmq.utils.z85.encode(bytes.fromhex(key))
s.linger = 0
s.connect("tcp://%s:%s" % (addr, port))
peer = {"id": "hostC-human-bench", "name": "bench", "type": "human"}
out = []
for i in range(int(count) + 1):
    body = {"v": 1, "id": i + 1, "op": "lan.post", "a": {
        "room_id": room, "token": token, "peer_signature": "ab" * 32,
        "message": {"id": "msg-" + secrets.token_hex(8), "content": "hub post %d" % i,
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime()),
                    "type": "message", "peer": peer}}}
    t0 = time.monotonic()
    s.send(msgpack.packb(body, use_bin_type=True))
    while True:
        if not s.poll(10000):
            sys.exit("no answer to lan.post %d" % i)
        rep = msgpack.unpackb(s.recv(), raw=False)
        if rep.get("id") == i + 1:
            break
    if not rep.get("ok"):
        sys.exit("lan.post refused: %r" % rep)
    if i:                       # the first claims the peer id: not counted
        out.append((time.monotonic() - t0) * 1000)
print(json.dumps(out))
'''


#  Runs on host C: N lan.fetch (not held: wait_ms 0) of the first page, one
#  at a time, then ten bursts of up to 25 sent at once; prints the round trips in ms and the
#  bursts' times until their last answer, as JSON
FETCHER = r'''
import json, sys, time, zmq, zmq.utils.z85, msgpack
key, addr, port, room, token, count = sys.argv[1:7]
s = zmq.Context().socket(zmq.DEALER)
s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
s.curve_serverkey = zmq.utils.z85.encode(bytes.fromhex(key))
s.linger = 0
s.connect("tcp://%s:%s" % (addr, port))
out = []
for i in range(int(count) + 1):
    body = {"v": 1, "id": i + 1, "op": "lan.fetch", "a": {
        "room_id": room, "token": token, "after": 0, "limit": 20, "wait_ms": 0}}
    t0 = time.monotonic()
    s.send(msgpack.packb(body, use_bin_type=True))
    while True:
        if not s.poll(10000):
            sys.exit("no answer to lan.fetch %d" % i)
        rep = msgpack.unpackb(s.recv(), raw=False)
        if rep.get("id") == i + 1:
            break
    if not rep.get("ok") or not rep["data"]["messages"]:
        sys.exit("lan.fetch refused or empty: %r" % rep)
    if i:                       # the first connects: not counted
        out.append((time.monotonic() - t0) * 1000)
burst = min(int(count), 25)     # the broker lets a client have 32 pages in flight
bursts = []
for b in range(10):
    t0 = time.monotonic()
    for i in range(burst):
        s.send(msgpack.packb({"v": 1, "id": 100000 * (b + 1) + i, "op": "lan.fetch", "a": {
            "room_id": room, "token": token, "after": 0, "limit": 20, "wait_ms": 0}},
            use_bin_type=True))
    left = burst
    while left:
        if not s.poll(10000):
            sys.exit("no answer to the burst of lan.fetch")
        rep = msgpack.unpackb(s.recv(), raw=False)
        if rep.get("id", 0) >= 100000 * (b + 1):
            if not rep.get("ok"):
                sys.exit("lan.fetch refused: %r" % rep)
            left -= 1
    bursts.append((time.monotonic() - t0) * 1000)
print(json.dumps([out, [burst, bursts]]))
'''


def store_processed(host):
    """Requests host's storaged has processed (daemon status)."""
    c = aiptest.ProtoClient(host.home)
    try:
        rep = c.call("daemon.status", {}, timeout_ms=5000)
        return sum(d.get("processed", 0) for d in rep["data"]["daemons"]
                   if d.get("name") == "storaged")
    finally:
        c.close()


def hub_post(hub, poster, count):
    """(store requests per lan.post at the hub, round trips in ms)."""
    room = hub.ok("room", "create", "hub-bench", "--lan")
    u = urllib.parse.urlsplit(room["connection_string"])
    q = dict(urllib.parse.parse_qsl(u.query))
    before = store_processed(hub)
    p = poster.run("/usr/bin/python3", "-c", POSTER, q["key"], u.hostname, str(u.port),
                   room["id"], q["token"], str(count), timeout=600)
    if p.returncode != 0:
        raise SystemExit("hub post: %s" % p.stderr.decode(errors="replace"))
    processed = store_processed(hub) - before
    return processed / (count + 1), json.loads(p.stdout), room


def hub_fetch(hub, fetcher, count, room):
    """(store requests per lan.fetch at the hub, round trips in ms), in the
    room hub_post filled."""
    u = urllib.parse.urlsplit(room["connection_string"])
    q = dict(urllib.parse.parse_qsl(u.query))
    before = store_processed(hub)
    p = fetcher.run("/usr/bin/python3", "-c", FETCHER, q["key"], u.hostname, str(u.port),
                    room["id"], q["token"], str(count), timeout=600)
    if p.returncode != 0:
        raise SystemExit("hub fetch: %s" % p.stderr.decode(errors="replace"))
    processed = store_processed(hub) - before
    fetches, burst = json.loads(p.stdout)
    return processed / (count + 1 + 10 * burst [0]), fetches, burst


def row(name, samples, target):
    samples = sorted(samples)
    p90 = samples[int(len(samples) * 0.9) - 1] if len(samples) >= 10 else samples[-1]
    return "| %s | %d | %.1f | %.1f | %.1f | %s |" % (
        name, len(samples), statistics.median(samples), p90, samples[-1], target)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    why = lanhosts.unavailable()
    if why:
        sys.exit("bench_lan: %s" % why)
    net = lanhosts.LanNet("ABC").up()
    try:
        a, b, c = net.hosts
        found = discovery(net, rounds)
        room = a.ok("room", "create", "bench", "--lan")
        b.ok("room", "join", room["connection_string"])
        b_to_a = latency(b, a, room["id"], count)
        a_to_b = latency(a, b, room["id"], count)
        per_post, posts, hub_room = hub_post(a, c, count)
        per_fetch, fetches, burst = hub_fetch(a, c, count, hub_room)
    finally:
        net.down()
    print("| measure | n | median ms | p90 ms | max ms | target |")
    print("|---|---|---|---|---|---|")
    print(row("peer discovered after its daemon started", found, "≤ 2000 ms"))
    print(row("LAN message B→A (joiner to hub), in A's copy", b_to_a, "≤ 20 ms median"))
    print(row("LAN message A→B (hub to joiner), in B's copy", a_to_b, "≤ 20 ms median"))
    print(row("lan.post round trip at the hub (raw CURVE client)", posts, "—"))
    print(row("lan.fetch round trip at the hub (raw CURVE client, not held)", fetches, "—"))
    print(row("%d lan.fetch sent at once, until the last answer" % burst [0], burst [1], "—"))
    print()
    print("store requests per lan.post at the hub: %.2f (target: one)" % per_post)
    print("store requests per lan.fetch at the hub: %.2f" % per_fetch)


if __name__ == "__main__":
    main()
