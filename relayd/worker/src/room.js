// Room — one Durable Object (SQLite storage) per relay room.
//
// Tables:
//   meta(k, v)          token_hash (hex SHA-256 of the room token), next_seq, last_ms,
//                       cipher + kdf (an encrypted room's public key parameters)
//   peers               one row per joined peer; sig_hash = hex SHA-256 of its signature
//   messages            seq INTEGER PRIMARY KEY (per-room, monotonic, never reused), id UNIQUE
//   pruned_ids          ids of messages dropped by retention, so a late retry is still de-duplicated
//
// Concurrency: every await (body read, hashing) happens before the synchronous
// check-and-write section, so no other request can interleave between a check and
// the write that depends on it.

import { DurableObject } from "cloudflare:workers";
import {
  ID_RE, ID_RULE, MAX_PAGE, DEFAULT_PAGE, MAX_NAME, MAX_FIELD, MAX_BATCH, BATCH_BODY_FACTOR,
  config, HttpError, json, errorResponse, cors204, bearer, readJsonBody,
  utf8Length, sha256, toHex, fromHex, digestEqual, randomHexId, optString, cleanName,
} from "./util.js";

const SCHEMA_VERSION = 1;
// Public Argon2id parameters of an aip1 room, as ai-peer encodes them
const KDF_RE = /^argon2id13:t=[0-9]{1,10}:m=[0-9]{1,20}:s=[A-Za-z0-9_-]{22}$/;
const MESSAGE_COLUMNS = "id, peer_id, peer_name, peer_tool, content, type, created_at, seq";

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.ctx = ctx;
    this.env = env;
    this.cfg = config(env);
    this.sql = ctx.storage.sql;
    this.buckets = new Map(); // peer id -> {tokens, t}; in memory, reset by hibernation/eviction
    this.migrate();
    // Keep-alive pings are answered without waking a hibernated object.
    try {
      ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    } catch {}
  }

  migrate() {
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v)");
    const v = this.getMeta("schema_version", 0);
    if (v >= SCHEMA_VERSION) return;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS peers (
      id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, tool TEXT NOT NULL,
      machine TEXT NOT NULL, sig_hash TEXT NOT NULL, joined_at TEXT NOT NULL, last_seen TEXT NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS messages (
      seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, peer_id TEXT NOT NULL,
      peer_name TEXT NOT NULL, peer_tool TEXT NOT NULL, content TEXT NOT NULL,
      type TEXT NOT NULL, created_at TEXT NOT NULL)`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS messages_time ON messages(created_at, id)");
    this.sql.exec(`CREATE TABLE IF NOT EXISTS pruned_ids (
      id TEXT PRIMARY KEY, peer_id TEXT NOT NULL, peer_name TEXT NOT NULL, peer_tool TEXT NOT NULL,
      type TEXT NOT NULL, created_at TEXT NOT NULL, seq INTEGER NOT NULL)`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS pruned_seq ON pruned_ids(seq)");
    this.setMeta("schema_version", SCHEMA_VERSION);
  }

  getMeta(k, def = null) {
    const rows = this.sql.exec("SELECT v FROM meta WHERE k = ?", k).toArray();
    return rows.length ? rows[0].v : def;
  }

  setMeta(k, v) {
    this.sql.exec("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", k, v);
  }

  async fetch(request) {
    if (request.method === "OPTIONS") return cors204();
    const url = new URL(request.url);
    const parts = url.pathname.split("/");
    const roomId = parts[2] || "";
    const action = parts[3] || "";
    try {
      if (!ID_RE.test(roomId)) throw new HttpError(400, `invalid room id: ${ID_RULE}`);
      const m = request.method;
      if (action === "ws" && m === "GET") return await this.handleWebSocket(request, url);
      if (action === "join" && m === "POST") return await this.join(request);
      if (action === "info" && m === "GET") return this.info(roomId);
      if (action === "messages" && m === "POST") return await this.postMessage(request);
      if (action === "batch" && m === "POST") return await this.postBatch(request);
      if (action === "messages" && m === "GET") return await this.getMessages(request, url);
      if (action === "peers" && m === "GET") return await this.getPeers(request);
      return json({ error: "not found" }, 404);
    } catch (e) {
      return errorResponse(e);
    }
  }

  // ---- authentication -------------------------------------------------------

  tokenHash() {
    const h = this.getMeta("token_hash");
    return h ? fromHex(h) : null;
  }

  async tokenMatches(candidates) {
    const stored = this.tokenHash();
    if (!stored) return false;
    let ok = false;
    for (const c of candidates) {
      if (typeof c !== "string" || c === "" || c.length > MAX_FIELD) continue;
      // Evaluate every candidate: no early exit, so timing does not depend on which matched.
      if (digestEqual(await sha256(c), stored)) ok = true;
    }
    return ok;
  }

  async requireToken(request) {
    if (!(await this.tokenMatches([bearer(request)]))) throw new HttpError(401, "Unauthorized");
  }

  // Token bucket per verified peer; throws 429 when empty.
  rateLimit(peerId) {
    const { RATE_LIMIT_BURST: burst, RATE_LIMIT_PER_SEC: rate } = this.cfg;
    const now = Date.now();
    let b = this.buckets.get(peerId);
    if (!b) {
      b = { tokens: burst, t: now };
      this.buckets.set(peerId, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.t) / 1000) * rate);
    b.t = now;
    if (b.tokens < 1) {
      const wait = Math.max(1, Math.ceil((1 - b.tokens) / rate));
      throw new HttpError(429, `rate limit exceeded for peer ${peerId}: at most ${rate} requests/s (burst ${burst}); retry in ${wait}s`, { "Retry-After": String(wait) });
    }
    b.tokens -= 1;
  }

  // ---- time and ids -----------------------------------------------------------

  // Server time, never going backwards within the room, ISO with milliseconds and Z.
  stamp() {
    const last = Number(this.getMeta("last_ms", 0));
    const ms = Math.max(Date.now(), last);
    if (ms !== last) this.setMeta("last_ms", ms);
    return new Date(ms).toISOString();
  }

  newMessageId() {
    for (;;) {
      const id = randomHexId(4); // 8 hex chars, like the original relay
      if (!this.findMessage(id) && !this.findPruned(id)) return id;
    }
  }

  findMessage(id) {
    const rows = this.sql.exec(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE id = ?`, id).toArray();
    return rows.length ? rows[0] : null;
  }

  findPruned(id) {
    const rows = this.sql.exec("SELECT id, peer_id, peer_name, peer_tool, type, created_at, seq FROM pruned_ids WHERE id = ?", id).toArray();
    return rows.length ? rows[0] : null;
  }

  // Insert a message (synchronous) and prune to the retention limit; callers push it
  // to the sockets once the transaction has committed.
  insertMessage(msg) {
    const seq = Number(this.getMeta("next_seq", 1));
    this.setMeta("next_seq", seq + 1);
    const row = { ...msg, seq };
    this.sql.exec(
      `INSERT INTO messages (${MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      row.id, row.peer_id, row.peer_name, row.peer_tool, row.content, row.type, row.created_at, row.seq,
    );
    this.prune();
    return row;
  }

  prune() {
    const cut = this.sql.exec("SELECT seq FROM messages ORDER BY seq DESC LIMIT 1 OFFSET ?", this.cfg.MAX_MESSAGES).toArray();
    if (!cut.length) return;
    const upTo = cut[0].seq;
    this.sql.exec(
      `INSERT OR REPLACE INTO pruned_ids (id, peer_id, peer_name, peer_tool, type, created_at, seq)
       SELECT id, peer_id, peer_name, peer_tool, type, created_at, seq FROM messages WHERE seq <= ?`, upTo);
    this.sql.exec("DELETE FROM messages WHERE seq <= ?", upTo);
    const pcut = this.sql.exec("SELECT seq FROM pruned_ids ORDER BY seq DESC LIMIT 1 OFFSET ?", this.cfg.DEDUP_WINDOW).toArray();
    if (pcut.length) this.sql.exec("DELETE FROM pruned_ids WHERE seq <= ?", pcut[0].seq);
  }

  seqRange() {
    const r = this.sql.exec("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM messages").one();
    return { first: r.lo ?? 0, last: r.hi ?? 0 };
  }

  // ---- handlers -----------------------------------------------------------------

  async join(request) {
    const body = await readJsonBody(request, this.cfg.MAX_BODY_BYTES);
    if (!body.id || !body.name) throw new HttpError(400, "missing id or name");
    if (typeof body.id !== "string" || !ID_RE.test(body.id)) throw new HttpError(400, `invalid peer id: ${ID_RULE}`);
    const name = cleanName(body, "name", MAX_NAME);
    if (!name) throw new HttpError(400, "name must have at least one visible character");
    const type = cleanName(body, "type", MAX_FIELD, "ai") || "ai";
    const tool = cleanName(body, "tool", MAX_FIELD);
    const machine = cleanName(body, "machine", MAX_FIELD);
    const bodyToken = optString(body, "token", MAX_FIELD);
    const sig = optString(body, "peer_signature", MAX_FIELD);
    const headerToken = bearer(request);
    // Extension: the public key parameters of an encrypted room (never the key,
    // never the password), left by its creator so that a member who joins with
    // only the room id, token and password can derive the key.
    const roomCipher = body.room_cipher === undefined ? "" : body.room_cipher;
    const roomKdf = body.room_kdf === undefined ? "" : body.room_kdf;
    if (roomCipher !== "" && roomCipher !== "aip1") throw new HttpError(400, "room_cipher must be \"aip1\"");
    if (roomCipher && (typeof roomKdf !== "string" || !KDF_RE.test(roomKdf))) {
      throw new HttpError(400, "room_kdf must be the room's key parameters (argon2id13:t=N:m=N:s=SALT, at most 128 characters)");
    }

    // All awaits happen here, before the synchronous check-and-write below.
    const sigHash = await sha256(sig);
    const stored = this.tokenHash();
    let newTokenHash = null;
    if (stored) {
      if (!(await this.tokenMatches([bodyToken, headerToken]))) throw new HttpError(403, "Invalid join token");
    } else {
      const first = bodyToken || headerToken;
      if (!first) throw new HttpError(401, "room has no token yet: the first join must carry the room token");
      if (first.length > MAX_FIELD) throw new HttpError(400, `token too long: limit ${MAX_FIELD} characters`);
      newTokenHash = toHex(await sha256(first));
    }

    // Synchronous from here on.
    if (newTokenHash && this.getMeta("token_hash")) {
      // Another first join won the race while we were hashing: check against it.
      if (!digestEqual(fromHex(newTokenHash), this.tokenHash())) throw new HttpError(403, "Invalid join token");
      newTokenHash = null;
    }
    const existing = this.sql.exec("SELECT sig_hash, joined_at FROM peers WHERE id = ?", body.id).toArray()[0];
    if (existing && !digestEqual(fromHex(existing.sig_hash), sigHash)) {
      throw new HttpError(403, "peer signature mismatch — cannot re-register");
    }
    if (!existing) {
      const n = this.sql.exec("SELECT COUNT(*) AS n FROM peers").one().n;
      if (n >= this.cfg.MAX_PEERS) throw new HttpError(429, `room peer limit reached (${this.cfg.MAX_PEERS} peers)`);
    }
    this.rateLimit(body.id);

    // All or nothing: token, peer and its "joined the room" message.
    const { now, joinedAt, sys } = this.ctx.storage.transactionSync(() => {
      if (newTokenHash) this.setMeta("token_hash", newTokenHash);
      // Only the join that sets the token (the room's creator) says how it is encrypted
      if (newTokenHash && roomCipher) {
        this.setMeta("cipher", roomCipher);
        this.setMeta("kdf", roomKdf);
      }
      const now = this.stamp();
      const joinedAt = existing ? existing.joined_at : now;
      this.sql.exec(
        `INSERT INTO peers (id, name, type, tool, machine, sig_hash, joined_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, type = excluded.type, tool = excluded.tool,
           machine = excluded.machine, last_seen = excluded.last_seen`,
        body.id, name, type, tool, machine, toHex(sigHash), joinedAt, now,
      );
      const sys = existing ? null : this.insertMessage({
        id: this.newMessageId(), peer_id: body.id, peer_name: name, peer_tool: tool,
        content: "joined the room", type: "system", created_at: now,
      });
      return { now, joinedAt, sys };
    });
    if (sys) this.broadcast(sys);
    return json({ id: body.id, name, type, tool, machine, joined_at: joinedAt, last_seen: now }, 201);
  }

  // Validate one message item (content, optional id); throws 400/413.
  checkItem(item, where = "") {
    if (!item.content || typeof item.content !== "string") {
      throw new HttpError(400, `${where}missing or invalid peer_id/content`);
    }
    const size = utf8Length(item.content);
    if (size > this.cfg.MAX_CONTENT_BYTES) {
      throw new HttpError(413, `${where}content too large: ${size} bytes, limit ${this.cfg.MAX_CONTENT_BYTES} bytes`);
    }
    // "system" messages are the relay's own ("joined the room"): a client
    // posting one would speak for the room
    // (other unknown types are stored as "message", as v1 always did)
    if (item.type === "system") {
      throw new HttpError(400, `${where}type "system" is the relay's own: a client may post "message" or "invite"`);
    }
    if (item.id !== undefined && item.id !== null && item.id !== "") {
      if (typeof item.id !== "string" || !ID_RE.test(item.id)) throw new HttpError(400, `${where}invalid message id: ${ID_RULE}`);
      return item.id;
    }
    return null;
  }

  // Check the sender (after its signature digest has been computed). Synchronous.
  checkSender(peerId, sig, sigHash) {
    const peer = this.sql.exec("SELECT id, name, tool, sig_hash FROM peers WHERE id = ?", peerId).toArray()[0];
    if (!peer) throw new HttpError(403, "peer not registered — join room first");
    if (sig.length > MAX_FIELD || !digestEqual(fromHex(peer.sig_hash), sigHash)) {
      throw new HttpError(403, "invalid peer signature — identity mismatch");
    }
    return peer;
  }

  // Store one message from a verified peer (synchronous). Returns [status, message].
  acceptOne(peer, item, clientId) {
    if (clientId) {
      // De-duplication: a retry of an accepted message returns the stored copy.
      const dup = this.findMessage(clientId);
      if (dup) {
        if (dup.peer_id !== peer.id) throw new HttpError(409, "message id already used by another peer");
        return [200, dup];
      }
      const gone = this.findPruned(clientId);
      if (gone) {
        if (gone.peer_id !== peer.id) throw new HttpError(409, "message id already used by another peer");
        return [200, { ...gone, content: "", pruned: true }];
      }
    }
    this.rateLimit(peer.id);
    // All or nothing, even if SQLite throws half-way.
    const msg = this.ctx.storage.transactionSync(() => {
      const now = this.stamp();
      const row = this.insertMessage({
        id: clientId || this.newMessageId(),
        peer_id: peer.id,
        peer_name: peer.name,
        peer_tool: peer.tool,
        content: item.content,
        type: item.type === "invite" ? "invite" : "message",
        created_at: now,
      });
      this.sql.exec("UPDATE peers SET last_seen = ? WHERE id = ?", now, peer.id);
      return row;
    });
    this.broadcast(msg);
    return [201, msg];
  }

  async postMessage(request) {
    await this.requireToken(request);
    const body = await readJsonBody(request, this.cfg.MAX_BODY_BYTES);
    if (!body.peer_id || typeof body.peer_id !== "string") throw new HttpError(400, "missing or invalid peer_id/content");
    const clientId = this.checkItem(body);
    const sig = typeof body.peer_signature === "string" ? body.peer_signature : "";
    const sigHash = await sha256(sig.length > MAX_FIELD ? "" : sig);
    // Synchronous from here on.
    const peer = this.checkSender(body.peer_id, sig, sigHash);
    const [status, msg] = this.acceptOne(peer, body, clientId);
    return json(msg, status);
  }

  // Extension: several messages of one peer in one request, stored in the given order
  // (an outbox drains in order without one round trip per message).
  async postBatch(request) {
    await this.requireToken(request);
    const body = await readJsonBody(request, BATCH_BODY_FACTOR * this.cfg.MAX_BODY_BYTES);
    if (!body.peer_id || typeof body.peer_id !== "string") throw new HttpError(400, "missing or invalid peer_id");
    const items = body.messages;
    if (!Array.isArray(items) || items.length === 0 || items.length > MAX_BATCH) {
      throw new HttpError(400, `messages must be an array of 1 to ${MAX_BATCH} messages`);
    }
    const ids = items.map((it, i) => {
      if (it === null || typeof it !== "object" || Array.isArray(it)) throw new HttpError(400, `messages[${i}]: must be an object`);
      return this.checkItem(it, `messages[${i}]: `);
    });
    const sig = typeof body.peer_signature === "string" ? body.peer_signature : "";
    const sigHash = await sha256(sig.length > MAX_FIELD ? "" : sig);
    // Synchronous from here on.
    const peer = this.checkSender(body.peer_id, sig, sigHash);
    const results = [];
    let stopped = null;
    for (let i = 0; i < items.length; i++) {
      if (stopped) {
        results.push({ status: stopped.status, error: stopped.message });
        continue;
      }
      try {
        const [status, message] = this.acceptOne(peer, items[i], ids[i]);
        results.push({ status, message });
      } catch (e) {
        if (!(e instanceof HttpError)) throw e;
        results.push({ status: e.status, error: e.message });
        // After a rate limit the rest is refused too, so the stored order has no holes.
        if (e.status === 429) stopped = e;
      }
    }
    return json({ results });
  }

  async getMessages(request, url) {
    await this.requireToken(request);
    const p = url.searchParams;
    let limit = parseInt(p.get("limit") || "", 10);
    if (!Number.isFinite(limit) || limit <= 0) limit = DEFAULT_PAGE;
    limit = Math.min(limit, MAX_PAGE);
    let messages;
    const afterSeq = p.get("after_seq");
    const since = p.get("since");
    if (afterSeq !== null && afterSeq !== "") {
      if (!/^\d{1,15}$/.test(afterSeq)) throw new HttpError(400, "after_seq must be a non-negative integer");
      messages = this.sql.exec(
        `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE seq > ? ORDER BY seq LIMIT ?`, Number(afterSeq), limit).toArray();
    } else if (since) {
      // v1 semantics, exactly as the original's key range "msg:{created_at}:{id}" >= "msg:{since}:\x01":
      // messages at the same timestamp as `since` are included (clients de-duplicate by id).
      const start = `${since}:\x01`;
      messages = this.sql.exec(
        `SELECT ${MESSAGE_COLUMNS} FROM messages
         WHERE created_at >= ? AND (created_at || ':' || id) >= ?
         ORDER BY created_at, id LIMIT ?`, start.slice(0, 24), start, limit).toArray();
    } else {
      messages = this.sql.exec(
        `SELECT ${MESSAGE_COLUMNS} FROM messages ORDER BY created_at DESC, id DESC LIMIT ?`, limit).toArray();
      messages.reverse();
    }
    const { first, last } = this.seqRange();
    return json({ messages, first_seq: first, last_seq: last });
  }

  async getPeers(request) {
    await this.requireToken(request);
    const peers = this.sql.exec(
      "SELECT id, name, type, tool, machine, joined_at, last_seen FROM peers ORDER BY joined_at, id").toArray();
    return json({ peers });
  }

  info(roomId) {
    const { first, last } = this.seqRange();
    const peerCount = this.sql.exec("SELECT COUNT(*) AS n FROM peers").one().n;
    return json({
      room_id: roomId,
      message_count: last ? last - first + 1 : 0,
      peer_count: peerCount,
      has_token: !!this.getMeta("token_hash"),
      ...(this.getMeta("cipher") ? { cipher: this.getMeta("cipher"), kdf: this.getMeta("kdf") } : {}),
    });
  }

  // ---- WebSocket push (hibernation API) ------------------------------------------

  async handleWebSocket(request, url) {
    if ((request.headers.get("Upgrade") || "").toLowerCase() !== "websocket") {
      throw new HttpError(426, "Expected WebSocket upgrade");
    }
    if (!this.getMeta("token_hash")) throw new HttpError(403, "Room not initialized — join first");
    const candidates = [url.searchParams.get("token") || "", bearer(request)];
    if (!(await this.tokenMatches(candidates))) throw new HttpError(401, "Unauthorized");
    if (this.ctx.getWebSockets().length >= this.cfg.MAX_SOCKETS) {
      throw new HttpError(429, `too many WebSocket connections to this room (limit ${this.cfg.MAX_SOCKETS})`);
    }
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair);
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ connected_at: Date.now() });
    return new Response(null, { status: 101, webSocket: client });
  }

  broadcast(msg) {
    const payload = JSON.stringify({ type: "message", data: msg });
    for (const ws of this.ctx.getWebSockets()) {
      try { ws.send(payload); } catch {}
    }
  }

  // Clients do not send over the socket (they POST); answer pings, ack anything else.
  async webSocketMessage(ws, data) {
    let reply = { type: "ack" };
    if (typeof data === "string" && data.length < 1024) {
      try {
        const m = JSON.parse(data);
        if (m && m.type === "ping") reply = { type: "pong" };
      } catch {}
    }
    try { ws.send(JSON.stringify(reply)); } catch {}
  }

  async webSocketClose(ws, code, reason) {
    // 1005/1006 are reserved and cannot be sent back.
    const c = code === 1005 || code === 1006 || !code ? 1000 : code;
    try { ws.close(c, reason || ""); } catch {}
  }

  async webSocketError(ws) {
    try { ws.close(1011, "error"); } catch {}
  }
}
