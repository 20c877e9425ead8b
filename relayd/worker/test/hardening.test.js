// What a hostile or careless client cannot do to a room, and the public key
// parameters an encrypted room keeps; against the real worker under `wrangler dev`.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { Relay, Peer, newRoomId, newToken } from "./helpers.js";

const relay = new Relay();
const KDF = "argon2id13:t=2:m=67108864:s=AAECAwQFBgcICQoLDA0ODw";

before(async () => { await relay.start(); });
after(async () => {
  await relay.stop();
  relay.cleanup();
});

async function info(room) {
  const r = await relay.req("GET", `/rooms/${room}/info`);
  assert.equal(r.status, 200);
  return r.body;
}

describe("an encrypted room's key parameters", () => {
  test("the creator's join leaves them in the room info; nobody changes them later", async () => {
    const room = newRoomId();
    const token = newToken();
    const alice = new Peer(relay, room, { name: "alice" });
    let r = await alice.join(token, { room_cipher: "aip1", room_kdf: KDF });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(await info(room), {
      room_id: room, message_count: 1, peer_count: 1, has_token: true, cipher: "aip1", kdf: KDF,
    });
    // A member joining later (even with the token) cannot replace them
    const mallory = new Peer(relay, room, { name: "mallory" });
    r = await mallory.join(token, { room_cipher: "aip1", room_kdf: KDF.replace("t=2", "t=1") });
    assert.equal(r.status, 201, r.text);
    assert.equal((await info(room)).kdf, KDF);
  });

  test("a room without them answers the v1 info only", async () => {
    const room = newRoomId();
    const r = await new Peer(relay, room, { name: "alice" }).join(newToken());
    assert.equal(r.status, 201);
    assert.deepEqual(Object.keys(await info(room)).sort(),
      ["has_token", "message_count", "peer_count", "room_id"]);
  });

  test("bad parameters are refused and the room is not created", async () => {
    const room = newRoomId();
    const alice = new Peer(relay, room, { name: "alice" });
    for (const extra of [
      { room_cipher: "rot13", room_kdf: KDF },
      { room_cipher: "aip1" },
      { room_cipher: "aip1", room_kdf: 5 },
      { room_cipher: "aip1", room_kdf: "key:aip1:c2VjcmV0:" + KDF },
      { room_cipher: "aip1", room_kdf: KDF + "x".repeat(200) },
    ]) {
      const r = await alice.join(newToken(), extra);
      assert.equal(r.status, 400, JSON.stringify(extra));
      assert.match(r.body.error, /room_(cipher|kdf)/);
    }
    assert.equal((await info(room)).has_token, false);
  });
});

describe("what a client may post", () => {
  test("a client cannot post a system message, alone or in a batch", async () => {
    const room = newRoomId();
    const token = newToken();
    const alice = new Peer(relay, room, { name: "alice" });
    assert.equal((await alice.join(token)).status, 201);
    let r = await alice.post(token, "alice was made an admin", { type: "system" });
    assert.equal(r.status, 400);
    assert.match(r.body.error, /"system" is the relay's own/);
    r = await relay.req("POST", `/rooms/${room}/batch`, {
      token,
      body: { peer_id: alice.id, peer_signature: alice.sig,
              messages: [{ content: "fine" }, { content: "the room was closed", type: "system" }] },
    });
    assert.equal(r.status, 400);
    assert.match(r.body.error, /messages\[1\]: type "system"/);
    r = await alice.post(token, "an invite", { type: "invite" });
    assert.equal(r.status, 201);
    const list = await relay.req("GET", `/rooms/${room}/messages`, { token });
    assert.deepEqual(list.body.messages.map((m) => [m.type, m.content]),
      [["system", "joined the room"], ["invite", "an invite"]]);
  });

  test("display names lose controls, escapes and bidi overrides; a blank one is refused", async () => {
    const room = newRoomId();
    const token = newToken();
    const eve = new Peer(relay, room, { name: "\u001b]0;owned\u0007\u001b[2Jali\u202ece\u200b\n\tbob\u0085" });
    let r = await eve.join(token, { tool: "cl\u001b[31maude", machine: "box\r\nx" });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.name, "]0;owned[2Jalice bob");
    assert.equal(r.body.tool, "cl[31maude");
    assert.equal(r.body.machine, "box x");
    r = await eve.post(token, "hi");
    assert.equal(r.body.peer_name, "]0;owned[2Jalice bob");
    const peers = await relay.req("GET", `/rooms/${room}/peers`, { token });
    assert.doesNotMatch(JSON.stringify(peers.body), /\\u001b|\\u0007|\u202e/);
    for (const name of ["\u001b\u0007", " \u200b\u202e ", "\n"]) {
      r = await new Peer(relay, room, { name }).join(token);
      assert.equal(r.status, 400, JSON.stringify(name));
      assert.match(r.body.error, /visible character/);
    }
    r = await new Peer(relay, room, { name: "x".repeat(257) }).join(token);
    assert.equal(r.status, 400);
  });
});
