// Test helpers: run the real relay under `wrangler dev` (workerd) and talk to it.
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, openSync, readFileSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import WebSocket from "ws";

const WORKER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

// Wait until cond() returns a truthy value (sync or async), polling, with a deadline.
export async function waitFor(cond, { timeout = 10000, interval = 25, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${lastErr ? `: ${lastErr.message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Relays still running: killed (whole process group) if the test process exits early.
const live = new Set();
process.on("exit", () => { for (const r of live) r.killGroup("SIGKILL"); });
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    for (const r of live) r.killGroup("SIGKILL");
    process.exit(130);
  });
}

// Everything the relay sent back during the tests, to check that no secret leaks.
export const seenBodies = [];

export class Relay {
  constructor({ vars = {}, persistDir, args = [] } = {}) {
    this.vars = vars;
    this.extraArgs = args;
    this.ownDir = !persistDir;
    this.persistDir = persistDir || mkdtempSync(join(tmpdir(), "ai-peer-relay-test-"));
    this.logPath = join(this.persistDir, "..", `${this.persistDir.split("/").pop()}.log`);
  }

  async start() {
    this.port = await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    const args = [String(this.port), this.persistDir];
    for (const [k, v] of Object.entries(this.vars)) args.push("--var", `${k}:${v}`);
    args.push(...this.extraArgs);
    const fd = openSync(this.logPath, "a");
    // Own process group, so wrangler's workerd children can be killed with it.
    this.proc = spawn(join(WORKER_DIR, "start-dev.sh"), args, {
      cwd: WORKER_DIR,
      stdio: ["ignore", fd, fd],
      env: { ...process.env },
      detached: true,
    });
    closeSync(fd);
    this.exited = false;
    live.add(this);
    this.proc.on("exit", () => { this.exited = true; live.delete(this); });
    const t0 = Date.now();
    await waitFor(async () => {
      if (this.exited) throw new Error(`wrangler dev exited early:\n${this.log()}`);
      const r = await fetch(`${this.base}/health`);
      return r.status === 200;
    }, { timeout: 90000, interval: 100, what: `relay on ${this.base}` }).catch((e) => {
      throw new Error(`${e.message}\n--- wrangler log ---\n${this.log()}`);
    });
    this.startupMs = Date.now() - t0;
    return this;
  }

  log() {
    try { return readFileSync(this.logPath, "utf8"); } catch { return ""; }
  }

  killGroup(signal) {
    try { process.kill(-this.proc.pid, signal); } catch {}
  }

  async stop() {
    if (!this.proc || this.exited) return;
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
    if (!this.exited) {
      this.killGroup("SIGKILL");
      await exited;
    }
    // The port must be free again before a restart reuses the directory.
    await waitFor(async () => {
      try { await fetch(`${this.base}/health`); return false; } catch { return true; }
    }, { timeout: 10000, what: "relay to stop listening" });
  }

  cleanup() {
    if (this.ownDir) {
      rmSync(this.persistDir, { recursive: true, force: true });
      rmSync(this.logPath, { force: true });
    }
  }

  // HTTP request; returns {status, headers, body (parsed JSON or null), text}.
  async req(method, path, { body, token, headers = {}, raw } = {}) {
    const h = { ...headers };
    if (token !== undefined) h.Authorization = `Bearer ${token}`;
    const init = { method, headers: h };
    if (raw !== undefined) {
      init.body = raw;
      if (raw instanceof ReadableStream) init.duplex = "half";
    } else if (body !== undefined) {
      h["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(this.base + path, init);
    const text = await r.text();
    seenBodies.push(text);
    let parsed = null;
    try { parsed = JSON.parse(text); } catch {}
    return { status: r.status, headers: r.headers, body: parsed, text };
  }

  wsUrl(room, token) {
    const q = token === undefined ? "" : `?token=${encodeURIComponent(token)}`;
    return `ws://127.0.0.1:${this.port}/rooms/${room}/ws${q}`;
  }
}

export const hex = (n) => randomBytes(n).toString("hex");
export const newRoomId = () => `room-${hex(6)}`;
export const newToken = () => hex(32);
export const signature = (secret, roomId) => createHmac("sha256", secret).update(roomId).digest("hex");

// A peer with its own secret; join() and post() talk to the relay.
export class Peer {
  constructor(relay, room, { id, name, tool = "cli", type = "human", secret } = {}) {
    this.relay = relay;
    this.room = room;
    this.id = id || `host-${hex(4)}`;
    this.name = name || this.id;
    this.tool = tool;
    this.type = type;
    this.secret = secret || hex(32);
    this.sig = signature(this.secret, room);
  }

  join(token, extra = {}) {
    return this.relay.req("POST", `/rooms/${this.room}/join`, {
      body: { id: this.id, name: this.name, type: this.type, tool: this.tool, machine: "testbox", token, peer_signature: this.sig, ...extra },
    });
  }

  post(token, content, extra = {}) {
    return this.relay.req("POST", `/rooms/${this.room}/messages`, {
      token,
      body: { peer_id: this.id, peer_name: this.name, peer_tool: this.tool, content, type: "message", peer_signature: this.sig, ...extra },
    });
  }
}

// WebSocket client that queues what it receives.
export class WsClient {
  constructor(url, options = {}) {
    this.frames = [];
    this.ws = new WebSocket(url, options);
    this.ws.on("message", (data) => {
      const text = data.toString();
      seenBodies.push(text);
      this.frames.push(text);
    });
    this.closed = false;
    this.ws.on("close", () => { this.closed = true; });
  }

  // Resolves on open; rejects with the HTTP status when the upgrade is refused.
  opened() {
    return new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("unexpected-response", (req, res) => {
        let text = "";
        res.on("data", (c) => { text += c; });
        res.on("end", () => {
          seenBodies.push(text);
          const e = new Error(`upgrade refused: ${res.statusCode} ${text}`);
          e.status = res.statusCode;
          e.body = text;
          reject(e);
        });
      });
      this.ws.once("error", reject);
    });
  }

  messages() {
    const out = [];
    for (const f of this.frames) {
      try { out.push(JSON.parse(f)); } catch {} // plain-text frames ("pong") are not JSON
    }
    return out;
  }

  async waitMessage(pred, timeout = 5000) {
    return waitFor(() => this.messages().find(pred), { timeout, what: "a WebSocket frame" });
  }

  close() {
    if (!this.closed) this.ws.close();
  }
}

export const ISO_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
