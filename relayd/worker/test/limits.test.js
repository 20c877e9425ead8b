// Configurable limits (retention, peers per room, rate limits, content size),
// against the real worker under `wrangler dev` started with small limits via --var.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Relay, Peer, WsClient, newRoomId, newToken, waitFor } from "./helpers.js";

const relay = new Relay({
  vars: {
    MAX_MESSAGES: 10,
    MAX_PEERS: 3,
    RATE_LIMIT_BURST: 30,
    RATE_LIMIT_PER_SEC: 1,
    MAX_CONTENT_BYTES: 1000,
    MAX_BODY_BYTES: 8000,
    DEDUP_WINDOW: 5,
    MAX_SOCKETS: 2,
  },
});

before(async () => {
  await relay.start();
  console.log(`# wrangler dev ready in ${relay.startupMs} ms`);
});
after(async () => {
  await relay.stop();
  relay.cleanup();
});

async function setupRoom() {
  const room = newRoomId();
  const token = newToken();
  const alice = new Peer(relay, room, { name: "alice" });
  const r = await alice.join(token);
  assert.equal(r.status, 201, r.text);
  return { room, token, alice };
}

test("health reports the configured limits", async () => {
  const r = await relay.req("GET", "/health");
  assert.equal(r.body.limits.max_messages, 10);
  assert.equal(r.body.limits.max_peers, 3);
  assert.equal(r.body.limits.max_content_bytes, 1000);
});

test("retention keeps the newest N messages; seq keeps counting", async () => {
  const { room, token, alice } = await setupRoom();
  const bob = new Peer(relay, room, { name: "bob" });
  await bob.join(token);
  const posted = [];
  for (let i = 0; i < 15; i++) {
    const r = await (i % 2 ? bob : alice).post(token, `m${i}`, { id: `keep-${i}` });
    assert.equal(r.status, 201, r.text);
    posted.push(r.body);
  }
  // 2 system + 15 messages = seq 1..17; newest 10 are seq 8..17.
  let r = await relay.req("GET", `/rooms/${room}/messages?limit=1000`, { token });
  assert.deepEqual(r.body.messages.map((m) => m.seq), [8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
  assert.equal(r.body.first_seq, 8);
  assert.equal(r.body.last_seq, 17);
  r = await relay.req("GET", `/rooms/${room}/messages?after_seq=0&limit=3`, { token });
  assert.deepEqual(r.body.messages.map((m) => m.seq), [8, 9, 10]);
  r = await relay.req("GET", `/rooms/${room}/info`);
  assert.equal(r.body.message_count, 10);

  // A retry of a retained or pruned message is still recognised: 200, nothing re-inserted.
  r = await alice.post(token, "m14", { id: "keep-14" });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, posted[14]);
  // seq 1..7 were pruned (2 system + keep-0..keep-4); DEDUP_WINDOW=5 remembers seq 3..7.
  r = await alice.post(token, "m4", { id: "keep-4" });
  assert.equal(r.status, 200);
  assert.equal(r.body.pruned, true);
  assert.equal(r.body.seq, 7);
  assert.equal(r.body.id, "keep-4");
  assert.equal(r.body.content, "");
  r = await alice.post(token, "m0", { id: "keep-0" });
  assert.equal(r.status, 200);
  assert.equal(r.body.seq, 3);
  r = await relay.req("GET", `/rooms/${room}/messages?after_seq=17`, { token });
  assert.deepEqual(r.body.messages, []);
  // Three more messages prune seq 8..10, so the window now holds seq 6..10 and
  // keep-0 (seq 3) is forgotten: it is accepted as new.
  for (let i = 15; i < 18; i++) assert.equal((await alice.post(token, `m${i}`)).status, 201);
  r = await alice.post(token, "m0 again", { id: "keep-0" });
  assert.equal(r.status, 201);
  assert.equal(r.body.seq, 21);
  r = await bob.post(token, "m5", { id: "keep-5" });
  assert.equal(r.status, 200, "seq 8 is still remembered");
  assert.equal(r.body.seq, 8);
  r = await alice.post(token, "m5", { id: "keep-5" });
  assert.equal(r.status, 409, "another peer's pruned id");
});

test("peer limit: the (MAX_PEERS+1)th peer gets 429", async () => {
  const { room, token, alice } = await setupRoom();
  const p2 = new Peer(relay, room);
  const p3 = new Peer(relay, room);
  assert.equal((await p2.join(token)).status, 201);
  assert.equal((await p3.join(token)).status, 201);
  const p4 = new Peer(relay, room);
  const r = await p4.join(token);
  assert.equal(r.status, 429);
  assert.deepEqual(r.body, { error: "room peer limit reached (3 peers)" });
  assert.equal((await alice.join(token)).status, 201, "members may re-join");
});

test("per-peer rate limit: 429 with Retry-After, other peers unaffected, retries still de-duplicated", async () => {
  const { room, token, alice } = await setupRoom();
  const bob = new Peer(relay, room, { name: "bob" });
  await bob.join(token);
  const first = await alice.post(token, "first", { id: "rl-first" });
  assert.equal(first.status, 201);
  let limited = null;
  let accepted = 1;
  let last = first;
  for (let i = 0; i < 40 && !limited; i++) {
    const r = await alice.post(token, `flood ${i}`);
    if (r.status === 429) limited = r;
    else {
      assert.equal(r.status, 201);
      accepted++;
      last = r;
    }
  }
  assert.ok(limited, "a flood is limited");
  assert.ok(accepted >= 28 && accepted <= 31, `burst of ~30 accepted (${accepted})`);
  assert.match(limited.body.error, /rate limit exceeded/);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  // A retry of an accepted message is answered even while limited.
  const again = await alice.post(token, last.body.content, { id: last.body.id });
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, last.body);
  assert.equal((await bob.post(token, "bob is fine")).status, 201);
  // The bucket refills (1/s): wait for the next accepted post, with a deadline.
  await waitFor(async () => (await alice.post(token, "later")).status === 201, {
    timeout: 5000, interval: 250, what: "the rate limit to refill",
  });
});

test("batch under the rate limit: accepted up to the limit, the rest 429 in order", async () => {
  const { room, token, alice } = await setupRoom();
  const items = Array.from({ length: 40 }, (_, i) => ({ id: `rb-${i}`, content: `r${i}` }));
  const r = await relay.req("POST", `/rooms/${room}/batch`, {
    token, body: { peer_id: alice.id, peer_signature: alice.sig, messages: items },
  });
  assert.equal(r.status, 200);
  const statuses = r.body.results.map((x) => x.status);
  const firstLimited = statuses.indexOf(429);
  assert.ok(firstLimited >= 25 && firstLimited <= 30, `limited from ${firstLimited}`);
  assert.ok(statuses.slice(0, firstLimited).every((s) => s === 201));
  assert.ok(statuses.slice(firstLimited).every((s) => s === 429));
  assert.match(r.body.results[39].error, /rate limit/);
});

test("configured content limit", async () => {
  const { token, alice } = await setupRoom();
  assert.equal((await alice.post(token, "a".repeat(1000))).status, 201);
  const r = await alice.post(token, "a".repeat(1001));
  assert.equal(r.status, 413);
  assert.equal(r.body.error, "content too large: 1001 bytes, limit 1000 bytes");
  const big = await alice.post(token, "a", { pad: "p".repeat(9000) });
  assert.equal(big.status, 413);
  assert.match(big.body.error, /request body too large: \d+ bytes, limit 8000 bytes/);
});

test("push still reaches sockets after retention prunes", async () => {
  const { room, token, alice } = await setupRoom();
  const ws = new WsClient(relay.wsUrl(room, token));
  await ws.opened();
  for (let i = 0; i < 12; i++) assert.equal((await alice.post(token, `p${i}`)).status, 201);
  await ws.waitMessage((f) => f.data && f.data.content === "p11");
  const seqs = ws.messages().filter((f) => f.type === "message").map((f) => f.data.seq);
  assert.deepEqual(seqs, Array.from({ length: 12 }, (_, i) => i + 2));
  ws.close();
});

test("socket limit: the (MAX_SOCKETS+1)th WebSocket gets 429; a freed slot can be reused", async () => {
  const { room, token } = await setupRoom();
  const a = new WsClient(relay.wsUrl(room, token));
  const b = new WsClient(relay.wsUrl(room, token));
  await Promise.all([a.opened(), b.opened()]);
  const c = new WsClient(relay.wsUrl(room, token));
  await assert.rejects(c.opened(), (e) => e.status === 429 && /too many WebSocket/.test(e.body));
  a.close();
  await waitFor(() => a.closed, { what: "socket close" });
  await waitFor(async () => {
    const d = new WsClient(relay.wsUrl(room, token));
    try {
      await d.opened();
      d.close();
      return true;
    } catch (e) {
      if (e.status !== 429) throw e;
      return false;
    }
  }, { timeout: 5000, interval: 100, what: "a free socket slot" });
  b.close();
});
