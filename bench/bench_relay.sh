#!/usr/bin/env bash
#  bench/bench_relay.sh — public rooms through our relay under `wrangler dev`
#  on loopback, two users in separate AI_PEERS_HOMEs. Prints a Markdown
#  report; record it, with the machine, in bench/RESULTS-relay.md.
#
#    push latency   alice runs `ai-peer chat` → the message is in bob's
#                   peers.db (relayd → relay → WebSocket → bob's relayd →
#                   bob's storaged); measured by polling bob's database
#    chat           wall time of `ai-peer chat` in a public room (it waits
#                   for the relay's acknowledgement) vs one HTTP round trip
#                   (POST /messages on a kept-alive connection)
#    backlog        1000 messages queued while the relay is down; time from
#                   the relay answering /health again until alice's outbox is
#                   empty and until bob has them all
#
#  Usage: bench/bench_relay.sh [build-dir]   (needs node/npm, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
src=$(pwd)
work=$(mktemp -d /tmp/aiprb.XXXXXX)
trap 'for u in alice bob; do AI_PEERS_HOME=$work/$u "$build/ai-peer" daemon stop >/dev/null 2>&1 || true; done
      rm -rf "$work"' EXIT

[ -x relayd/worker/node_modules/.bin/wrangler ] || (cd relayd/worker && npm ci --no-audit --no-fund >&2)

echo "## Machine"
echo
echo "- $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
echo "- $(uname -sr), $(head -1 /etc/os-release)"
echo "- relay: relayd/worker under wrangler dev (workerd) on 127.0.0.1; $(date -u +%F)"
echo

BUILD=$build SRC=$src WORK=$work python3 - <<'EOF'
import atexit, hashlib, hmac, http.client, json, os, signal, socket, sqlite3, statistics
import subprocess, time

build, src, work = os.environ["BUILD"], os.environ["SRC"], os.environ["WORK"]
peer = os.path.join(build, "ai-peer")
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]; sock.close()
relay_url = f"http://127.0.0.1:{port}"
persist = os.path.join(work, "relay-state")
relay = None

def healthy():
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/health"); ok = c.getresponse().status == 200; c.close(); return ok
    except OSError:
        return False

def wait(cond, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    raise SystemExit("timed out")

def relay_start():
    global relay
    log = open(os.path.join(work, "relay.log"), "ab")
    relay = subprocess.Popen([os.path.join(src, "relayd/worker/start-dev.sh"), str(port), persist],
                             stdout=log, stderr=log, start_new_session=True)
    wait(healthy)

def relay_kill():
    if relay and relay.poll() is None:
        os.killpg(relay.pid, signal.SIGTERM)
        relay.wait()

atexit.register(relay_kill)     # even when a measurement fails

def relay_stop():
    os.killpg(relay.pid, signal.SIGTERM); relay.wait()
    wait(lambda: not healthy())

def env(user, **extra):
    return dict(os.environ, AI_PEERS_HOME=os.path.join(work, user), USER=user,
                AI_PEER_RELAY=relay_url, **extra)

def cli(user, *args, **extra):
    r = subprocess.run([peer, *args], env=env(user, **extra), capture_output=True, text=True)
    d = json.loads(r.stdout)
    if not d["ok"]:
        raise SystemExit(f"{args}: {d['error']}")
    return d["data"]

def count(user, sql, *params):
    db = sqlite3.connect(f"file:{os.path.join(work, user, 'peers.db')}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchone()[0]
    finally:
        db.close()

def ms(xs):
    xs = sorted(xs)
    return f"{statistics.median(xs)*1e3:.1f} | {xs[int(len(xs)*0.9)]*1e3:.1f} | {statistics.mean(xs)*1e3:.1f}"

relay_start()
room = cli("alice", "room", "create", "bench", "--relay", "default")
rid, cs, token = room["id"], room["connection_string"], room["token"]
cli("bob", "room", "join", cs)

# push latency and chat wall time
local_room = cli("alice", "room", "create", "local-bench")["id"]

# one relay round trip: POST /messages on a kept-alive connection
secret = os.urandom(32).hex()
sig = hmac.new(secret.encode(), rid.encode(), hashlib.sha256).hexdigest()
c = http.client.HTTPConnection("127.0.0.1", port)
hdr = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
c.request("POST", f"/rooms/{rid}/join", json.dumps({"id": "bench-probe", "name": "probe",
          "type": "ai", "tool": "probe", "token": token, "peer_signature": sig}), hdr)
c.getresponse().read()

def relay_round_trip(i):
    t0 = time.monotonic()
    c.request("POST", f"/rooms/{rid}/messages", json.dumps({"peer_id": "bench-probe",
              "content": f"rtt {i}", "peer_signature": sig}), hdr)
    r = c.getresponse(); r.read()
    if r.status != 201:
        raise SystemExit(f"POST: {r.status}")
    return time.monotonic() - t0

# The three are measured in turn (public, local, relay round trip, public, ...)
# so that a busy machine slows all three alike: the overhead of a public room
# over a local one plus the relay's round trip is taken triple by triple
N = 50
push, chat, local, rtt, overhead = [], [], [], [], []
for i in range(N + 5):
    text = f"latency {i}"
    t0 = time.monotonic()
    cli("alice", "chat", rid, text)
    t1 = time.monotonic()
    wait(lambda: count("bob", "SELECT count(*) FROM messages WHERE content = ?", text) == 1, 30)
    t2 = time.monotonic()
    cli("alice", "chat", local_room, f"local {i}")
    t3 = time.monotonic()
    trip = relay_round_trip(i)
    if i >= 5:                                # warm-up
        chat.append(t1 - t0); push.append(t2 - t0); local.append(t3 - t2); rtt.append(trip)
        overhead.append((t1 - t0) - (t3 - t2) - trip)
c.close()

# What one public chat costs alice's storaged (msg.send, then relayd's work
# for it): requests processed, from daemon status
def store_processed(user):
    return sum(d.get("processed", 0) for d in cli(user, "daemon", "status")["daemons"]
               if d.get("name") == "storaged")
K = 50
before = store_processed("alice")
for i in range(K):
    text = f"count {i}"
    cli("alice", "chat", rid, text)
    wait(lambda: count("bob", "SELECT count(*) FROM messages WHERE content = ?", text) == 1, 30)
per_chat = (store_processed("alice") - before) / K

print("## Latency (ms, loopback relay)")
print()
print("| what | median | p90 | mean |")
print("|---|---|---|---|")
print(f"| push: alice `chat` → in bob's peers.db ({N} msgs) | {ms(push)} |")
print(f"| `ai-peer chat` in a public room (waits for the relay's ack) | {ms(chat)} |")
print(f"| `ai-peer chat` in a local room (no relay) | {ms(local)} |")
print(f"| one relay round trip (POST /messages, kept-alive) | {ms(rtt)} |")
print(f"| public `chat` − local `chat` − relay round trip, taken in turn | {ms(overhead)} |")
print()
print(f"- requests alice's storaged processed per public `chat` ({K} in a row): {per_chat:.2f}")
print()

# backlog: 1000 messages queued while the relay is down
B = 1000
relay_stop()
t0 = time.monotonic()
for i in range(B):
    cli("alice", "chat", rid, f"backlog {i}", AI_PEER_RELAY_WAIT_MS="0")
queue_s = time.monotonic() - t0
assert count("alice", "SELECT count(*) FROM outbox") == B
relay_start()
t0 = time.monotonic()
wait(lambda: count("alice", "SELECT count(*) FROM outbox") == 0, 300)
t1 = time.monotonic()
wait(lambda: count("bob", "SELECT count(*) FROM messages WHERE content LIKE 'backlog %'") == B, 300)
t2 = time.monotonic()
dups = count("bob", "SELECT count(*) - count(DISTINCT content) FROM messages WHERE content LIKE 'backlog %'")
print("## Backlog of 1000 queued messages")
print()
print("| what | seconds |")
print("|---|---|")
print(f"| queue 1000 `chat` commands while the relay is down | {queue_s:.2f} |")
print(f"| relay back → alice's outbox empty (all acknowledged) | {t1 - t0:.2f} |")
print(f"| relay back → all 1000 in bob's peers.db | {t2 - t0:.2f} |")
print(f"| duplicates at bob | {dups} |")
relay_stop()
EOF
