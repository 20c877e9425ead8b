// ai-peer relay — Cloudflare Worker entry point.
//
// Serves the v1 relay protocol (DESIGN.md §7) and routes every /rooms/{room}/… request
// to the room's Durable Object (src/room.js). The Worker itself checks only what needs
// no room state: the route, the room id syntax, the method and the declared body size.

import {
  ID_RE, ID_RULE, RELAY_NAME, RELAY_VERSION, MAX_PAGE, MAX_BATCH, BATCH_BODY_FACTOR,
  config, HttpError, json, errorResponse, cors204, readBodyBytes,
} from "./util.js";

export { Room } from "./room.js";

const ROUTE = /^\/rooms\/([^/]+)\/(messages|batch|join|peers|info|ws)$/;
const METHODS = { messages: ["GET", "POST"], batch: ["POST"], join: ["POST"], peers: ["GET"], info: ["GET"], ws: ["GET"] };

async function handle(request, env) {
  if (request.method === "OPTIONS") return cors204();
  const url = new URL(request.url);
  const path = url.pathname;
  const cfg = config(env);

  if (path === "/health") {
    return json({
      ok: true,
      relay: RELAY_NAME,
      version: RELAY_VERSION,
      protocol: 1,
      features: ["seq", "after_seq", "dedup", "ws_bearer", "hibernation", "batch"],
      limits: {
        max_content_bytes: cfg.MAX_CONTENT_BYTES,
        max_body_bytes: cfg.MAX_BODY_BYTES,
        max_peers: cfg.MAX_PEERS,
        max_messages: cfg.MAX_MESSAGES,
        max_page: MAX_PAGE,
        max_batch: MAX_BATCH,
        max_batch_body_bytes: BATCH_BODY_FACTOR * cfg.MAX_BODY_BYTES,
        rate_limit_burst: cfg.RATE_LIMIT_BURST,
        rate_limit_per_sec: cfg.RATE_LIMIT_PER_SEC,
      },
    });
  }
  if (path === "/" || path === "") {
    return new Response("ai-peer relay — see /health\n", {
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }

  const m = path.match(ROUTE);
  if (!m) return json({ error: "not found" }, 404);
  let roomId;
  try {
    roomId = decodeURIComponent(m[1]);
  } catch {
    roomId = "";
  }
  if (!ID_RE.test(roomId)) throw new HttpError(400, `invalid room id: ${ID_RULE}`);
  const allowed = METHODS[m[2]];
  if (!allowed.includes(request.method)) {
    throw new HttpError(405, `method not allowed: use ${allowed.join(" or ")}`, { Allow: allowed.join(", ") });
  }
  const stub = env.ROOM.get(env.ROOM.idFromName(roomId));
  // Canonical path for the Durable Object (it parses the room id from the URL).
  const u = new URL(request.url);
  u.pathname = `/rooms/${roomId}/${m[2]}`;
  if (request.method === "POST") {
    // Bound and buffer the body here, so the object gets a complete body and may
    // answer (401, 403, ...) without reading it: a streamed body left unread by the
    // object breaks the forwarded request in workerd.
    const limit = m[2] === "batch" ? BATCH_BODY_FACTOR * cfg.MAX_BODY_BYTES : cfg.MAX_BODY_BYTES;
    const body = await readBodyBytes(request, limit);
    const headers = new Headers(request.headers);
    headers.delete("Content-Length");
    headers.delete("Transfer-Encoding");
    return stub.fetch(new Request(u.toString(), { method: "POST", headers, body }));
  }
  return stub.fetch(new Request(u.toString(), request));
}

export default {
  async fetch(request, env) {
    try {
      return await handle(request, env);
    } catch (e) {
      return errorResponse(e);
    }
  },
};
