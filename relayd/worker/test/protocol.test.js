// v1 protocol + hardening, against the real worker under `wrangler dev` with the
// default configuration of wrangler.toml.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import {
  Relay, Peer, WsClient, seenBodies, newRoomId, newToken, hex, ISO_MS_Z, waitFor,
} from "./helpers.js";

const relay = new Relay();
const secrets = new Set(); // every token and signature used: none may come back

before(async () => {
  await relay.start();
  console.log(`# wrangler dev ready in ${relay.startupMs} ms`);
});
after(async () => {
  await relay.stop();
  relay.cleanup();
});

// A room with a token and one joined peer.
async function setupRoom() {
  const room = newRoomId();
  const token = newToken();
  const alice = new Peer(relay, room, { name: "alice" });
  secrets.add(token).add(alice.sig).add(alice.secret);
  const r = await alice.join(token);
  assert.equal(r.status, 201, r.text);
  return { room, token, alice };
}

function track(peer) {
  secrets.add(peer.sig).add(peer.secret);
  return peer;
}

describe("health and routing", () => {
  test("GET /health", async () => {
    const r = await relay.req("GET", "/health");
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, true);
    assert.equal(r.body.protocol, 1);
    assert.equal(r.body.limits.max_content_bytes, 262144);
    assert.equal(r.body.limits.max_peers, 200);
    assert.equal(r.body.limits.max_messages, 1000);
    assert.ok(r.body.features.includes("after_seq"));
  });

  test("unknown paths are 404, wrong methods 405, bad room ids 400", async () => {
    let r = await relay.req("GET", "/nope");
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: "not found" });
    r = await relay.req("GET", "/rooms/abc/whatever");
    assert.equal(r.status, 404);
    r = await relay.req("GET", "/rooms/abc/join");
    assert.equal(r.status, 405);
    assert.match(r.body.error, /method not allowed/);
    assert.equal(r.headers.get("allow"), "POST");
    r = await relay.req("POST", "/rooms/abc/peers", { body: {} });
    assert.equal(r.status, 405);
    r = await relay.req("GET", "/rooms/bad.room/info");
    assert.equal(r.status, 400);
    assert.match(r.body.error, /invalid room id/);
    r = await relay.req("GET", `/rooms/${"a".repeat(65)}/info`);
    assert.equal(r.status, 400);
    r = await relay.req("GET", "/rooms/a%20b/info");
    assert.equal(r.status, 400);
  });

  test("CORS preflight", async () => {
    const r = await relay.req("OPTIONS", "/rooms/abc/messages");
    assert.equal(r.status, 204);
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
  });
});

describe("join", () => {
  test("info of an unknown room", async () => {
    const room = newRoomId();
    const r = await relay.req("GET", `/rooms/${room}/info`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { room_id: room, message_count: 0, peer_count: 0, has_token: false });
  });

  test("first join sets the token; the stored peer comes back without secrets", async () => {
    const room = newRoomId();
    const token = newToken();
    const alice = track(new Peer(relay, room, { name: "alice", tool: "cli", type: "human" }));
    secrets.add(token);
    let r = await alice.join(undefined);
    assert.equal(r.status, 401, "a room cannot be initialised without a token");
    assert.match(r.body.error, /token/);
    r = await alice.join(token);
    assert.equal(r.status, 201);
    assert.deepEqual(Object.keys(r.body).sort(), ["id", "joined_at", "last_seen", "machine", "name", "tool", "type"]);
    assert.equal(r.body.id, alice.id);
    assert.equal(r.body.name, "alice");
    assert.equal(r.body.machine, "testbox");
    assert.match(r.body.last_seen, ISO_MS_Z);
    r = await relay.req("GET", `/rooms/${room}/info`);
    assert.deepEqual(r.body, { room_id: room, message_count: 1, peer_count: 1, has_token: true });
    r = await relay.req("GET", `/rooms/${room}/messages`, { token });
    assert.equal(r.body.messages.length, 1);
    const sys = r.body.messages[0];
    assert.equal(sys.type, "system");
    assert.equal(sys.content, "joined the room");
    assert.equal(sys.peer_id, alice.id);
    assert.equal(sys.peer_name, "alice");
    assert.equal(sys.seq, 1);
    assert.match(sys.id, /^[0-9a-f]{8}$/);
  });

  test("token rules: wrong token 403, bearer accepted, missing 403", async () => {
    const { room, token } = await setupRoom();
    const bob = track(new Peer(relay, room, { name: "bob" }));
    let r = await bob.join(newToken());
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, { error: "Invalid join token" });
    r = await bob.join(undefined);
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, { error: "Invalid join token" });
    r = await bob.join(token.slice(0, -1) + (token.endsWith("0") ? "1" : "0"));
    assert.equal(r.status, 403);
    r = await relay.req("POST", `/rooms/${room}/join`, {
      token, body: { id: bob.id, name: "bob", peer_signature: bob.sig },
    });
    assert.equal(r.status, 201, "token in the Authorization header");
    r = await relay.req("GET", `/rooms/${room}/info`);
    assert.equal(r.body.peer_count, 2);
  });

  test("signature rules: a registered id with another signature is refused", async () => {
    const { room, token, alice } = await setupRoom();
    const thief = track(new Peer(relay, room, { id: alice.id, name: "mallory" }));
    let r = await thief.join(token);
    assert.equal(r.status, 403);
    assert.match(r.body.error, /signature/);
    r = await thief.join(token, { peer_signature: "" });
    assert.equal(r.status, 403);
    // Re-join with the right signature: 201, profile updated, no second system message.
    r = await alice.join(token, { name: "alice2" });
    assert.equal(r.status, 201);
    assert.equal(r.body.name, "alice2");
    r = await relay.req("GET", `/rooms/${room}/messages`, { token });
    assert.equal(r.body.messages.length, 1);
    r = await relay.req("GET", `/rooms/${room}/peers`, { token });
    assert.equal(r.body.peers.length, 1);
    assert.equal(r.body.peers[0].name, "alice2");
  });

  test("bad join bodies are 400", async () => {
    const { room, token } = await setupRoom();
    let r = await relay.req("POST", `/rooms/${room}/join`, { body: { name: "x", token } });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: "missing id or name" });
    r = await relay.req("POST", `/rooms/${room}/join`, { body: { id: "x", token } });
    assert.equal(r.status, 400);
    r = await relay.req("POST", `/rooms/${room}/join`, { body: { id: "bad id!", name: "x", token } });
    assert.equal(r.status, 400);
    assert.match(r.body.error, /invalid peer id/);
    r = await relay.req("POST", `/rooms/${room}/join`, { body: { id: "a".repeat(65), name: "x", token } });
    assert.equal(r.status, 400);
    r = await relay.req("POST", `/rooms/${room}/join`, { body: { id: "ok", name: 5, token } });
    assert.equal(r.status, 400);
    r = await relay.req("POST", `/rooms/${room}/join`, { raw: "{not json", headers: { "Content-Type": "application/json" } });
    assert.equal(r.status, 400);
    assert.match(r.body.error, /JSON/);
    r = await relay.req("POST", `/rooms/${room}/join`, { body: [1, 2] });
    assert.equal(r.status, 400);
  });

  test("200 peers per room, the 201st gets 429, members can still re-join", async () => {
    const { room, token, alice } = await setupRoom();
    const peers = [];
    for (let i = 0; i < 199; i++) peers.push(track(new Peer(relay, room, { id: `p${i}` })));
    for (let i = 0; i < peers.length; i += 20) {
      const rs = await Promise.all(peers.slice(i, i + 20).map((p) => p.join(token)));
      for (const r of rs) assert.equal(r.status, 201, r.text);
    }
    let r = await relay.req("GET", `/rooms/${room}/info`);
    assert.equal(r.body.peer_count, 200);
    const late = track(new Peer(relay, room, { id: "late" }));
    r = await late.join(token);
    assert.equal(r.status, 429);
    assert.match(r.body.error, /peer limit/);
    r = await alice.join(token);
    assert.equal(r.status, 201);
    r = await relay.req("GET", `/rooms/${room}/peers`, { token });
    assert.equal(r.body.peers.length, 200);
  });
});

describe("messages", () => {
  test("auth: 401 without or with a wrong token, 403 for unknown peers or bad signatures", async () => {
    const { room, token, alice } = await setupRoom();
    let r = await alice.post(undefined, "hi");
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { error: "Unauthorized" });
    r = await alice.post(newToken(), "hi");
    assert.equal(r.status, 401);
    r = await relay.req("GET", `/rooms/${room}/messages`);
    assert.equal(r.status, 401);
    r = await relay.req("GET", `/rooms/${room}/peers`, { token: "x" });
    assert.equal(r.status, 401);
    const ghost = track(new Peer(relay, room));
    r = await ghost.post(token, "hi");
    assert.equal(r.status, 403);
    assert.match(r.body.error, /join room first/);
    r = await alice.post(token, "hi", { peer_signature: "0".repeat(64) });
    assert.equal(r.status, 403);
    assert.match(r.body.error, /signature/);
    r = await alice.post(token, "hi", { peer_signature: undefined });
    assert.equal(r.status, 403);
  });

  test("bad bodies are 400", async () => {
    const { room, token, alice } = await setupRoom();
    for (const content of [undefined, "", 42, null, ["x"]]) {
      const r = await alice.post(token, content);
      assert.equal(r.status, 400, `content ${JSON.stringify(content)}`);
      assert.deepEqual(r.body, { error: "missing or invalid peer_id/content" });
    }
    let r = await alice.post(token, "hi", { peer_id: undefined });
    assert.equal(r.status, 400);
    r = await alice.post(token, "hi", { id: "not valid!" });
    assert.equal(r.status, 400);
    assert.match(r.body.error, /invalid message id/);
    r = await alice.post(token, "hi", { id: 12 });
    assert.equal(r.status, 400);
    r = await relay.req("POST", `/rooms/${room}/messages`, { token, raw: "nope" });
    assert.equal(r.status, 400);
  });

  test("a posted message is stored with the stored peer's name and tool", async () => {
    const { room, token, alice } = await setupRoom();
    const r = await alice.post(token, "hello world", { peer_name: "fake", peer_tool: "fake", extra: "dropped", created_at: "1999" });
    assert.equal(r.status, 201);
    assert.deepEqual(Object.keys(r.body).sort(), ["content", "created_at", "id", "peer_id", "peer_name", "peer_tool", "seq", "type"]);
    assert.match(r.body.id, /^[0-9a-f]{8}$/);
    assert.equal(r.body.peer_id, alice.id);
    assert.equal(r.body.peer_name, "alice");
    assert.equal(r.body.peer_tool, "cli");
    assert.equal(r.body.content, "hello world");
    assert.equal(r.body.type, "message");
    assert.match(r.body.created_at, ISO_MS_Z);
    assert.ok(Math.abs(Date.parse(r.body.created_at) - Date.now()) < 60000);
    assert.equal(r.body.seq, 2);
    let t = await alice.post(token, "an invite", { type: "invite" });
    assert.equal(t.body.type, "invite");
    t = await alice.post(token, "sys", { type: "system" });
    assert.equal(t.status, 400, "a client cannot post as the relay");
    assert.match(t.body.error, /"system" is the relay's own/);
    t = await alice.post(token, "odd", { type: "weird" });
    assert.equal(t.body.type, "message");
    t = await alice.post(token, "unicode ✓ 中文 🎉");
    assert.equal(t.body.content, "unicode ✓ 中文 🎉");
    const list = await relay.req("GET", `/rooms/${room}/messages`, { token });
    assert.deepEqual(list.body.messages[1], r.body);
  });

  test("client ids are kept and de-duplicated", async () => {
    const { room, token, alice } = await setupRoom();
    const id = `msg-${hex(8)}`;
    const r1 = await alice.post(token, "once", { id });
    assert.equal(r1.status, 201);
    assert.equal(r1.body.id, id);
    const r2 = await alice.post(token, "once", { id });
    assert.equal(r2.status, 200);
    assert.deepEqual(r2.body, r1.body);
    const r3 = await alice.post(token, "changed content", { id });
    assert.equal(r3.status, 200);
    assert.equal(r3.body.content, "once");
    // Concurrent retries of one id: exactly one message.
    const id2 = `msg-${hex(8)}`;
    const rs = await Promise.all(Array.from({ length: 10 }, () => alice.post(token, "burst", { id: id2 })));
    assert.equal(rs.filter((r) => r.status === 201).length, 1);
    assert.ok(rs.every((r) => r.status === 201 || r.status === 200));
    const bob = track(new Peer(relay, room, { name: "bob" }));
    await bob.join(token);
    const r4 = await bob.post(token, "steal", { id });
    assert.equal(r4.status, 409);
    const list = await relay.req("GET", `/rooms/${room}/messages?limit=100`, { token });
    assert.equal(list.body.messages.filter((m) => m.id === id).length, 1);
    assert.equal(list.body.messages.filter((m) => m.id === id2).length, 1);
  });

  test("listing: latest N, limit, since (v1) and after_seq (exact cursor)", async () => {
    const { room, token, alice } = await setupRoom();
    const posted = [];
    for (let i = 0; i < 60; i++) {
      const r = await alice.post(token, `m${i}`);
      assert.equal(r.status, 201);
      posted.push(r.body);
    }
    const all = [/* system */ null, ...posted];
    // seq is 1 + position, strictly increasing, created_at never decreasing.
    posted.forEach((m, i) => assert.equal(m.seq, i + 2));
    for (let i = 1; i < posted.length; i++) assert.ok(posted[i].created_at >= posted[i - 1].created_at);

    let r = await relay.req("GET", `/rooms/${room}/messages`, { token });
    assert.equal(r.status, 200);
    assert.equal(r.body.messages.length, 50, "default limit 50");
    assert.deepEqual(r.body.messages.map((m) => m.content), posted.slice(10).map((m) => m.content));
    assert.equal(r.body.first_seq, 1);
    assert.equal(r.body.last_seq, 61);
    r = await relay.req("GET", `/rooms/${room}/messages?limit=5`, { token });
    assert.deepEqual(r.body.messages.map((m) => m.content), ["m55", "m56", "m57", "m58", "m59"]);
    r = await relay.req("GET", `/rooms/${room}/messages?limit=abc`, { token });
    assert.equal(r.body.messages.length, 50);

    // since: everything at or after that timestamp, ascending (the since message itself included).
    const pivot = posted[40];
    r = await relay.req("GET", `/rooms/${room}/messages?since=${encodeURIComponent(pivot.created_at)}&limit=100`, { token });
    const expected = all.slice(1).filter((m) => m.created_at >= pivot.created_at);
    assert.deepEqual(r.body.messages.map((m) => m.id).sort(), expected.map((m) => m.id).sort());
    assert.ok(r.body.messages.some((m) => m.id === pivot.id));
    for (let i = 1; i < r.body.messages.length; i++) {
      const a = r.body.messages[i - 1], b = r.body.messages[i];
      assert.ok(a.created_at < b.created_at || (a.created_at === b.created_at && a.id < b.id));
    }
    r = await relay.req("GET", `/rooms/${room}/messages?since=${encodeURIComponent(posted[0].created_at)}&limit=3`, { token });
    assert.equal(r.body.messages.length, 3);
    r = await relay.req("GET", `/rooms/${room}/messages?since=2999-01-01T00:00:00.000Z`, { token });
    assert.deepEqual(r.body.messages, []);
    r = await relay.req("GET", `/rooms/${room}/messages?since=2000-01-01T00:00:00.000000%2B00:00&limit=1000`, { token });
    assert.equal(r.body.messages.length, 61, "python-style timestamps compare as strings, like the original");

    // after_seq: exact cursor in seq order.
    r = await relay.req("GET", `/rooms/${room}/messages?after_seq=41&limit=5`, { token });
    assert.deepEqual(r.body.messages.map((m) => m.seq), [42, 43, 44, 45, 46]);
    r = await relay.req("GET", `/rooms/${room}/messages?after_seq=0&limit=1000`, { token });
    assert.equal(r.body.messages.length, 61);
    assert.deepEqual(r.body.messages.map((m) => m.seq), Array.from({ length: 61 }, (_, i) => i + 1));
    r = await relay.req("GET", `/rooms/${room}/messages?after_seq=61`, { token });
    assert.deepEqual(r.body.messages, []);
    r = await relay.req("GET", `/rooms/${room}/messages?after_seq=58&since=2999-01-01T00:00:00.000Z`, { token });
    assert.equal(r.body.messages.length, 3, "after_seq wins over since");
    for (const bad of ["-1", "x", "1.5"]) {
      r = await relay.req("GET", `/rooms/${room}/messages?after_seq=${bad}`, { token });
      assert.equal(r.status, 400);
      assert.match(r.body.error, /after_seq/);
    }
    r = await relay.req("GET", `/rooms/${room}/info`);
    assert.equal(r.body.message_count, 61);
  });

  test("size limits: content over 256 KiB and bodies over 1 MiB get 413", async () => {
    const { room, token, alice } = await setupRoom();
    let r = await alice.post(token, "x".repeat(262144));
    assert.equal(r.status, 201);
    assert.equal(r.body.content.length, 262144);
    r = await alice.post(token, "x".repeat(262145));
    assert.equal(r.status, 413);
    assert.match(r.body.error, /content too large: 262145 bytes, limit 262144 bytes/);
    r = await alice.post(token, "é".repeat(131073)); // 262146 UTF-8 bytes
    assert.equal(r.status, 413);
    r = await alice.post(token, "y", { padding: "z".repeat(1024 * 1024) });
    assert.equal(r.status, 413);
    assert.match(r.body.error, /request body too large/);
    // Chunked body without Content-Length, over the limit.
    const chunk = new TextEncoder().encode(" ".repeat(64 * 1024));
    let n = 0;
    const stream = new ReadableStream({
      pull(c) {
        if (n++ < 20) c.enqueue(chunk); else c.close();
      },
    });
    r = await relay.req("POST", `/rooms/${room}/messages`, { token, raw: stream, headers: { "Content-Type": "application/json" } });
    assert.equal(r.status, 413);
    // Early answers (401/403/413) before the body is read leave the relay healthy.
    for (let i = 0; i < 10; i++) {
      const bad = await alice.post(i % 2 ? newToken() : token, "q".repeat(200000), { peer_signature: "bad" });
      assert.equal(bad.status, i % 2 ? 401 : 403);
      const big = await alice.post(token, "q", { pad: "p".repeat(1100000) });
      assert.equal(big.status, 413);
      const ok = await relay.req("GET", `/rooms/${room}/info`);
      assert.equal(ok.status, 200);
    }
    r = await relay.req("POST", `/rooms/${room}/join`, { body: { id: "big", name: "n".repeat(2000), token } });
    assert.equal(r.status, 400);
    r = await relay.req("GET", `/rooms/${room}/info`);
    assert.equal(r.body.message_count, 2);
  });

  test("batch: messages of one peer stored in order, de-duplicated, pushed; bad batches refused whole", async () => {
    const { room, token, alice } = await setupRoom();
    const ws = new WsClient(relay.wsUrl(room, token));
    await ws.opened();
    const batch = (messages, extra = {}) => relay.req("POST", `/rooms/${room}/batch`, {
      token, body: { peer_id: alice.id, peer_signature: alice.sig, messages, ...extra },
    });
    const items = Array.from({ length: 100 }, (_, i) => ({ id: `b-${i}`, content: `batched ${i}`, type: i === 5 ? "invite" : "message" }));
    let r = await batch(items);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.results.length, 100);
    assert.ok(r.body.results.every((x) => x.status === 201));
    assert.deepEqual(r.body.results.map((x) => x.message.seq), Array.from({ length: 100 }, (_, i) => i + 2));
    assert.equal(r.body.results[5].message.type, "invite");
    assert.equal(r.body.results[0].message.peer_name, "alice");
    // Retry of most of the batch plus two new messages: 98 × 200, 2 × 201, in order.
    r = await batch([...items.slice(0, 98), { id: "b-new", content: "new" }, { content: "no id" }]);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.results.map((x) => x.status), [...Array(98).fill(200), 201, 201]);
    assert.deepEqual(r.body.results[3].message, (await relay.req("GET", `/rooms/${room}/messages?after_seq=4&limit=1`, { token })).body.messages[0]);
    assert.match(r.body.results[99].message.id, /^[0-9a-f]{8}$/);
    const list = await relay.req("GET", `/rooms/${room}/messages?after_seq=0&limit=1000`, { token });
    assert.equal(list.body.messages.length, 103);
    assert.deepEqual(list.body.messages.slice(1, 101).map((m) => m.content), items.map((m) => m.content));
    await ws.waitMessage((f) => f.data && f.data.id === "b-new");
    const pushed = ws.messages().filter((f) => f.data && /^b-\d+$/.test(f.data.id)).map((f) => f.data.id);
    assert.deepEqual(pushed, items.map((m) => m.id), "each pushed once, in order");
    ws.close();
    // Errors refuse the whole batch before anything is stored.
    r = await batch([]);
    assert.equal(r.status, 400);
    r = await batch(Array.from({ length: 101 }, (_, i) => ({ content: `x${i}` })));
    assert.equal(r.status, 400);
    assert.match(r.body.error, /1 to 100/);
    r = await batch([{ content: "ok" }, { content: "" }]);
    assert.equal(r.status, 400);
    assert.match(r.body.error, /^messages\[1\]: /);
    r = await batch([{ content: "ok" }, { id: "bad id", content: "x" }]);
    assert.equal(r.status, 400);
    r = await batch([{ content: "x".repeat(262145) }]);
    assert.equal(r.status, 413);
    r = await batch([{ content: "ok" }], { peer_signature: "f".repeat(64) });
    assert.equal(r.status, 403);
    r = await relay.req("POST", `/rooms/${room}/batch`, { body: { peer_id: alice.id, peer_signature: alice.sig, messages: [{ content: "x" }] } });
    assert.equal(r.status, 401);
    // 4 × 256 KiB of content fits the 4 MiB batch body; 5 MiB does not.
    r = await batch(Array.from({ length: 4 }, () => ({ content: "z".repeat(262144) })));
    assert.equal(r.status, 200);
    r = await batch(Array.from({ length: 20 }, () => ({ content: "z".repeat(262144) })));
    assert.equal(r.status, 413);
    const info = await relay.req("GET", `/rooms/${room}/info`);
    assert.equal(info.body.message_count, 107);
  });

  test("peers never carry a signature or token", async () => {
    const { room, token, alice } = await setupRoom();
    const bob = track(new Peer(relay, room, { name: "bob", tool: "codex", type: "ai" }));
    await bob.join(token);
    const r = await relay.req("GET", `/rooms/${room}/peers`, { token });
    assert.equal(r.status, 200);
    assert.equal(r.body.peers.length, 2);
    for (const p of r.body.peers) {
      assert.deepEqual(Object.keys(p).sort(), ["id", "joined_at", "last_seen", "machine", "name", "tool", "type"]);
    }
    const b = r.body.peers.find((p) => p.id === bob.id);
    assert.equal(b.tool, "codex");
    assert.equal(b.type, "ai");
    assert.ok(!r.text.includes(alice.sig) && !r.text.includes(bob.sig) && !r.text.includes(token));
  });
});

describe("websocket push", () => {
  test("token in the query string: system and chat messages are pushed", async () => {
    const { room, token, alice } = await setupRoom();
    const ws = new WsClient(relay.wsUrl(room, token));
    await ws.opened();
    const bob = track(new Peer(relay, room, { name: "bob" }));
    await bob.join(token);
    const joined = await ws.waitMessage((f) => f.type === "message" && f.data.peer_id === bob.id);
    assert.equal(joined.data.type, "system");
    assert.equal(joined.data.content, "joined the room");
    const r = await alice.post(token, "pushed");
    const got = await ws.waitMessage((f) => f.data && f.data.content === "pushed");
    assert.deepEqual(got, { type: "message", data: r.body });
    // A de-duplicated retry is not pushed again.
    await alice.post(token, "again", { id: "dup-1" });
    await alice.post(token, "again", { id: "dup-1" });
    await alice.post(token, "marker");
    await ws.waitMessage((f) => f.data && f.data.content === "marker");
    assert.equal(ws.messages().filter((f) => f.data && f.data.id === "dup-1").length, 1);
    ws.close();
  });

  test("token in the Authorization header", async () => {
    const { room, token, alice } = await setupRoom();
    const ws = new WsClient(relay.wsUrl(room), { headers: { Authorization: `Bearer ${token}` } });
    await ws.opened();
    await alice.post(token, "via header");
    await ws.waitMessage((f) => f.data && f.data.content === "via header");
    ws.close();
  });

  test("refused upgrades: 401 wrong or missing token, 403 room without token, 426 without upgrade", async () => {
    const { room, token } = await setupRoom();
    let ws = new WsClient(relay.wsUrl(room, newToken()));
    await assert.rejects(ws.opened(), (e) => e.status === 401 && /Unauthorized/.test(e.body));
    ws = new WsClient(relay.wsUrl(room));
    await assert.rejects(ws.opened(), (e) => e.status === 401);
    ws = new WsClient(relay.wsUrl(room), { headers: { Authorization: "Bearer nope" } });
    await assert.rejects(ws.opened(), (e) => e.status === 401);
    ws = new WsClient(relay.wsUrl(newRoomId(), token));
    await assert.rejects(ws.opened(), (e) => e.status === 403);
    const r = await relay.req("GET", `/rooms/${room}/ws?token=${token}`);
    assert.equal(r.status, 426);
  });

  test("hibernation API: every accepted socket gets pushes, pings are answered, closed sockets are dropped", async () => {
    const { room, token, alice } = await setupRoom();
    const socks = [0, 1, 2].map(() => new WsClient(relay.wsUrl(room, token)));
    await Promise.all(socks.map((s) => s.opened()));
    await alice.post(token, "to all");
    await Promise.all(socks.map((s) => s.waitMessage((f) => f.data && f.data.content === "to all")));
    // Auto-response (answered without waking the object) and handler-level ping.
    socks[0].ws.send("ping");
    await waitFor(() => socks[0].frames.includes("pong"), { what: "auto-response pong" });
    socks[1].ws.send(JSON.stringify({ type: "ping" }));
    await socks[1].waitMessage((f) => f.type === "pong");
    socks[1].ws.send("hello");
    await socks[1].waitMessage((f) => f.type === "ack");
    socks[2].close();
    await waitFor(() => socks[2].closed, { what: "socket close" });
    await alice.post(token, "after close");
    await Promise.all(socks.slice(0, 2).map((s) => s.waitMessage((f) => f.data && f.data.content === "after close")));
    const r = await alice.post(token, "still ok");
    assert.equal(r.status, 201);
    socks.forEach((s) => s.close());
  });
});

describe("restart", () => {
  test("rooms, tokens, peers and seq survive a relay restart with the same state dir", async () => {
    const { room, token, alice } = await setupRoom();
    const first = await alice.post(token, "before restart", { id: "keep-1" });
    await relay.stop();
    await relay.start();
    let r = await relay.req("GET", `/rooms/${room}/info`);
    assert.deepEqual(r.body, { room_id: room, message_count: 2, peer_count: 1, has_token: true });
    r = await alice.post(token, "before restart", { id: "keep-1" });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, first.body);
    r = await alice.post(token, "after restart");
    assert.equal(r.status, 201);
    assert.equal(r.body.seq, 3);
    const bob = track(new Peer(relay, room));
    r = await bob.join(newToken());
    assert.equal(r.status, 403);
  });
});

describe("no secrets in responses", () => {
  test("no token, secret or signature appears in any response or frame", () => {
    assert.ok(seenBodies.length > 50);
    const all = seenBodies.join("\n");
    for (const s of secrets) assert.ok(!all.includes(s), `leaked ${s}`);
    assert.ok(!/signature"\s*:/.test(all), "no peer_signature field");
    assert.ok(!/"token"\s*:/.test(all), "no token field");
  });
});
