// Shared helpers for the ai-peer relay: JSON responses, limits, body reading,
// constant-time comparison and configuration parsing.

export const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const ID_RULE = "must match ^[A-Za-z0-9_-]{1,64}$";

export const RELAY_NAME = "ai-peer-relayd";
export const RELAY_VERSION = "1.1.0";

// Defaults for every configurable limit (wrangler.toml [vars] override them).
export const DEFAULTS = Object.freeze({
  MAX_MESSAGES: 1000, // retention: newest N messages per room
  MAX_PEERS: 200, // peers per room
  MAX_CONTENT_BYTES: 256 * 1024, // UTF-8 bytes of a message's content (same as the client)
  MAX_BODY_BYTES: 1024 * 1024, // raw request body (JSON escaping can inflate content 2-6x)
  RATE_LIMIT_BURST: 1200, // per-peer token bucket size (posts + joins)
  RATE_LIMIT_PER_SEC: 20, // per-peer refill rate
  DEDUP_WINDOW: 10000, // ids of pruned messages still remembered for de-duplication
  MAX_SOCKETS: 1000, // WebSockets per room
});

// Fixed limits (not configurable).
export const MAX_PAGE = 1000; // largest ?limit= honoured
export const DEFAULT_PAGE = 50; // ?limit= default (v1)
export const MAX_NAME = 256;
export const MAX_FIELD = 256; // type, tool, machine, token, signature
export const MAX_BATCH = 100; // messages per POST /rooms/{room}/batch
export const BATCH_BODY_FACTOR = 4; // a batch body may be 4 × MAX_BODY_BYTES

export function config(env) {
  const cfg = {};
  for (const [k, def] of Object.entries(DEFAULTS)) {
    const raw = env && env[k];
    const n = typeof raw === "number" ? raw : parseInt(String(raw ?? ""), 10);
    cfg[k] = Number.isFinite(n) && n > 0 ? n : def;
  }
  return cfg;
}

export class HttpError extends Error {
  constructor(status, message, headers) {
    super(message);
    this.status = status;
    this.headers = headers || {};
  }
}

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
  "Access-Control-Allow-Headers": "Content-Type, Authorization",
};

export function json(data, status = 200, extraHeaders = {}) {
  return new Response(JSON.stringify(data), {
    status,
    headers: {
      "Content-Type": "application/json",
      "Cache-Control": "no-store",
      ...CORS,
      ...extraHeaders,
    },
  });
}

export function errorResponse(err) {
  if (err instanceof HttpError) return json({ error: err.message }, err.status, err.headers);
  return json({ error: "internal error" }, 500);
}

export function cors204() {
  return new Response(null, { status: 204, headers: { ...CORS, "Access-Control-Max-Age": "86400" } });
}

export function bearer(request) {
  const auth = request.headers.get("Authorization") || "";
  const m = auth.match(/^Bearer\s+(.+)$/i);
  return m ? m[1].trim() : "";
}

// Read and discard the rest of a body. Answering while a request body is still
// unread (or cancelled) breaks the connection under wrangler dev / workerd ("Can't
// read from request stream after response has been sent", then 503s), so an
// oversized body is consumed without being kept. Cloudflare itself caps bodies at
// 100 MB or more depending on the plan.
async function discard(reader) {
  for (;;) {
    const { done } = await reader.read();
    if (done) return;
  }
}

// Read a request body into memory, never keeping more than maxBytes (chunked bodies too).
export async function readBodyBytes(request, maxBytes) {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const cl = request.headers.get("Content-Length");
  if (cl !== null && /^\d+$/.test(cl.trim()) && Number(cl) > maxBytes) {
    await discard(reader);
    throw new HttpError(413, `request body too large: ${cl} bytes, limit ${maxBytes} bytes`);
  }
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      chunks.length = 0;
      await discard(reader);
      throw new HttpError(413, `request body too large: more than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const buf = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { buf.set(c, off); off += c.byteLength; }
  return buf;
}

// Parse a JSON object body (the Worker has already bounded and buffered it).
export async function readJsonBody(request, maxBytes) {
  const buf = await readBodyBytes(request, maxBytes);
  let value;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(buf));
  } catch {
    throw new HttpError(400, "request body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpError(400, "request body must be a JSON object");
  }
  return value;
}

const enc = new TextEncoder();

export function utf8Length(s) {
  return enc.encode(s).byteLength;
}

// SHA-256 of a string, as bytes. Secrets are stored and compared only as digests,
// so comparisons are fixed-length and a storage dump reveals no token or signature.
export async function sha256(s) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(s)));
}

export function toHex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function fromHex(hex) {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

// Constant-time equality of two equal-length digests.
export function digestEqual(a, b) {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array) || a.length !== b.length) return false;
  if (crypto.subtle.timingSafeEqual) return crypto.subtle.timingSafeEqual(a, b);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function randomHexId(nbytes = 4) {
  const b = new Uint8Array(nbytes);
  crypto.getRandomValues(b);
  return toHex(b);
}

// Controls (C0, DEL, C1), zero-width and bidirectional formatting characters:
// in a display name they hide or repaint text on a terminal or a page.
const UNSAFE_NAME_CHARS = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/gu;

// A display name, tool or machine as others will see it: unsafe characters
// removed, runs of white space made one space, trimmed; the length bounded.
export function cleanName(body, key, max, def = "") {
  const v = optString(body, key, max, def);
  return v.replace(/[\s\u0085]+/gu, " ").replace(UNSAFE_NAME_CHARS, "").replace(/ +/gu, " ").trim();
}

export function optString(body, key, max, def = "") {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== "string") throw new HttpError(400, `${key} must be a string`);
  if (v.length > max) throw new HttpError(400, `${key} too long: limit ${max} characters`);
  return v;
}
