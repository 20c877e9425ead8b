// Identities as the v1 clients make them (tests/fixtures/v1-interop.json): a human and
// its AI peers, each with its own signature, share a room on the relay.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createHmac } from "node:crypto";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Relay, Peer, WsClient, newToken, signature } from "./helpers.js";

const fixture = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "tests", "fixtures", "v1-interop.json");
const vectors = JSON.parse(readFileSync(fixture, "utf8")).peer_signatures;
const relay = new Relay();

before(async () => { await relay.start(); });
after(async () => { await relay.stop(); relay.cleanup(); });

test("the vectors' signatures are what the test peers compute", () => {
  for (const v of vectors) {
    assert.equal(signature(v.human_secret, v.room_id), v.human_signature);
    const aiSecret = createHmac("sha256", v.human_secret).update(v.tool).digest("hex");
    assert.equal(aiSecret, v.ai_secret);
    assert.equal(signature(v.ai_secret, v.room_id), v.ai_signature);
  }
});

test("human and AI peers join and post with their own signatures; neither can use the other's", async () => {
  for (const v of vectors) {
    const token = newToken();
    const human = new Peer(relay, v.room_id, { id: `box-human-alice`, name: "alice", type: "human", tool: "cli", secret: v.human_secret });
    const ai = new Peer(relay, v.room_id, { id: `box-${v.tool}`, name: v.tool, type: "ai", tool: v.tool, secret: v.ai_secret });
    assert.equal(human.sig, v.human_signature);
    assert.equal(ai.sig, v.ai_signature);
    assert.equal((await human.join(token)).status, 201);
    const ws = new WsClient(relay.wsUrl(v.room_id), { headers: { Authorization: `Bearer ${token}` } });
    await ws.opened();
    assert.equal((await ai.join(token)).status, 201);
    let r = await ai.post(token, "an answer", { type: "invite", id: "msg-0123456789ab" });
    assert.equal(r.status, 201);
    assert.equal(r.body.peer_name, v.tool);
    assert.equal(r.body.peer_tool, v.tool);
    await ws.waitMessage((f) => f.data && f.data.id === "msg-0123456789ab");
    r = await human.post(token, "thanks", { id: "msg-0195f3a1b2c3d4e5" });
    assert.equal(r.status, 201);
    // Impersonation: the AI's id with the human's signature and vice versa.
    r = await ai.post(token, "fake", { peer_signature: v.human_signature });
    assert.equal(r.status, 403);
    r = await human.post(token, "fake", { peer_signature: v.ai_signature });
    assert.equal(r.status, 403);
    r = await relay.req("POST", `/rooms/${v.room_id}/join`, {
      body: { id: ai.id, name: "evil", token, peer_signature: v.human_signature },
    });
    assert.equal(r.status, 403);
    r = await relay.req("GET", `/rooms/${v.room_id}/messages`, { token });
    assert.deepEqual(r.body.messages.map((m) => [m.peer_id, m.type]), [
      [human.id, "system"], [ai.id, "system"], [ai.id, "invite"], [human.id, "message"],
    ]);
    assert.ok(!JSON.stringify(r.body).includes(v.ai_signature));
    ws.close();
  }
});
