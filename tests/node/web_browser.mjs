// web_browser.mjs — the web view in a real browser: headless Chromium
// driven by playwright-core, against real daemons (tests/test_web.py starts
// them and runs this script). Every wait is on the DOM with a deadline.
//
// env: WEB_URL (the URL ai-peer web printed), AIP_CLI (ai-peer), AI_PEERS_HOME,
//      ROOM, ROOM2 (rooms made by the test), OUT_DIR (screenshots),
//      FAKE_AI_DIR (fake tools' modes), CHROMIUM (default /usr/bin/chromium),
//      WEB_STEPS (comma list, default all)
// Prints one JSON line {ok, steps, latencies_ms, screenshots}; exits 1 with
// the failed check on stderr.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";

const env = process.env;
const url = env.WEB_URL;
const base = new URL(url).origin;
const room = env.ROOM, room2 = env.ROOM2;
const out = env.OUT_DIR;
const result = { ok: false, steps: [], latencies_ms: [], screenshots: [] };

function cli(...args) {
  const text = execFileSync(env.AIP_CLI, args, { env: env, encoding: "utf8" });
  const doc = JSON.parse(text);
  assert.ok(doc.ok, "ai-peer " + args.join(" ") + ": " + text);
  return doc.data;
}

function fakeMode(tool, mode) {
  writeFileSync(join(env.FAKE_AI_DIR, tool + ".mode"), mode);
}

// A message whose body contains text, in the open room
function messageWith(page, text, timeout) {
  return page.waitForFunction((t) => {
    for (const b of document.querySelectorAll("#messages .msg .body"))
      if (b.textContent.includes(t)) return true;
    return false;
  }, text, { timeout: timeout, polling: "raf" });
}

async function step(name, fn) {
  await fn();
  result.steps.push(name);
}

// playwright gives every launch a fresh, temporary --user-data-dir of its own
// (it refuses one passed in args), so no profile is shared with anything
const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = null;
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  await step("login with the printed URL", async () => {
    await page.goto(url);
    await page.waitForSelector('#rooms li[data-room="' + room + '"]', { timeout: 10000 });
    // The token left the address bar; the cookie is HttpOnly and Strict
    assert.ok(!page.url().includes("#t="), "the token stayed in the URL: " + page.url());
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "aip_session");
    assert.ok(session, "no session cookie");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.equal(await page.evaluate(() => document.cookie), "", "the cookie is readable by script");
  });

  await step("see the rooms", async () => {
    await page.waitForSelector('#rooms li[data-room="' + room2 + '"]', { timeout: 5000 });
    const enc = await page.textContent('#rooms li[data-room="' + room2 + '"]');
    assert.ok(enc.includes("encrypted"), "the encrypted room is not marked: " + enc);
    await page.waitForSelector("#conn.live", { timeout: 5000 });
  });

  await step("open a room and see its history", async () => {
    await page.click('#rooms li[data-room="' + room + '"]');
    await messageWith(page, "history before the page", 5000);
  });

  await step("post as yourself", async () => {
    await page.fill("#text", "hello from **the page**");
    await page.click("#send");
    await page.waitForFunction(() => {
      for (const b of document.querySelectorAll("#messages .msg.mine .body strong"))
        if (b.textContent === "the page") return true;
      return false;
    }, null, { timeout: 5000 });
    const msgs = cli("chat", room, "-n", "5").messages;
    const mine = msgs.find((m) => m.content === "hello from **the page**");
    assert.ok(mine, "the post is not in the room");
    assert.equal(mine.peer_type, "human");
  });

  await step("a message sent by the CLI appears within 1 s, without a reload", async () => {
    const marker = await page.evaluate(() => (window.__marker = Math.random()));
    for (let i = 0; i < 5; i++) {
      const text = "live from the cli " + i;
      cli("chat", room, text, "--as", "cli-user");
      const t0 = Date.now();
      await messageWith(page, text, 1000);
      result.latencies_ms.push(Date.now() - t0);
    }
    assert.equal(await page.evaluate(() => window.__marker), marker, "the page reloaded");
  });

  await step("unread counts of other rooms", async () => {
    cli("chat", room2, "a note for the other room", "--tool", "gemini");
    await page.waitForFunction((r) => {
      const b = document.querySelector('#rooms li[data-room="' + r + '"] .badge.unread');
      // the message, and gemini's "joined the room"
      return b && Number(b.textContent) >= 1;
    }, room2, { timeout: 5000 });
  });

  await step("an encrypted room: read and written in plaintext here", async () => {
    await page.click('#rooms li[data-room="' + room2 + '"]');
    await messageWith(page, "a note for the other room", 5000);
    await page.fill("#text", "secret from the page");
    await page.click("#send");
    await messageWith(page, "secret from the page", 5000);
    const msgs = cli("chat", room2, "-n", "5").messages;
    assert.ok(msgs.some((m) => m.content === "secret from the page"), "the CLI cannot read it");
    await page.click('#rooms li[data-room="' + room + '"]');
    await messageWith(page, "hello from", 5000);
  });

  await step("hostile messages are inert", async () => {
    await page.evaluate(() => { window.__pwned = 0; });
    const hostile = [
      "<script>window.__pwned = 1</script>",
      '<img src=x onerror="window.__pwned = 2">',
      "[click me](javascript:window.__pwned=3)",
      '<a href="javascript:window.__pwned=4">raw link</a>',
      "<svg onload=\"window.__pwned=5\"></svg> and <iframe src=\"javascript:parent.__pwned=6\"></iframe>",
    ];
    for (const h of hostile) cli("chat", room, h, "--tool", "mallory", "--type", "human", "--as", "mallory");
    await messageWith(page, "<script>window.__pwned = 1</script>", 5000);
    await messageWith(page, "onerror=", 5000);
    await messageWith(page, "click me", 5000);
    await messageWith(page, "<svg onload", 5000);
    // click the javascript: link: nothing runs
    await page.evaluate(() => {
      for (const a of document.querySelectorAll("#messages a")) if (a.textContent === "click me") a.click();
    });
    const dom = await page.evaluate(() => ({
      pwned: window.__pwned,
      scripts: document.querySelectorAll("#messages script").length,
      handlers: document.querySelectorAll("#messages [onerror], #messages [onload], #messages [onclick]").length,
      images: document.querySelectorAll("#messages img, #messages svg, #messages iframe").length,
      jsLinks: Array.from(document.querySelectorAll("#messages a")).filter((a) => /^\s*javascript:/i.test(a.getAttribute("href") || "")).length,
    }));
    assert.deepEqual(dom, { pwned: 0, scripts: 0, handlers: 0, images: 0, jsLinks: 0 });
  });

  await step("an AI answer from a (fake) tool arrives", async () => {
    await page.waitForFunction(() => document.querySelectorAll("#invite-tool option").length > 0,
                               null, { timeout: 10000 });
    await page.selectOption("#invite-tool", "codex");
    await page.click("#invite");
    await page.waitForSelector('#jobs .job[data-kind="invite"]', { timeout: 5000 });
    await page.waitForFunction(() => {
      for (const m of document.querySelectorAll("#messages .msg.peer-ai:not(.streaming) .body"))
        if (m.textContent.includes("codex answers")) return true;
      return false;
    }, null, { timeout: 60000 });
  });

  await step("an @mention starts an invite", async () => {
    fakeMode("claude", "stream");
    await page.fill("#text", "@claude what do you think?");
    await page.click("#send");
    await page.waitForSelector('#jobs .job[data-kind="invite"] .what >> text=claude', { timeout: 5000 });
    // While it streams, a progress line (or its text) grows in place
    await page.waitForSelector("#messages .msg.streaming", { timeout: 30000 });
    // ... with the answer so far (progress "text"), or at least its size
    result.streamed = await page.evaluate(() => {
      const s = document.querySelector("#messages .msg.streaming");
      return s ? { text: s.querySelector(".body").textContent, line: s.querySelector(".progress").textContent } : null;
    });
    assert.ok(result.streamed && (result.streamed.text.includes("streamed answer")
                                  || /writing… \d+ bytes/.test(result.streamed.line)),
              "nothing shown while streaming: " + JSON.stringify(result.streamed));
    await page.waitForFunction(() => {
      // claude is spawnd's alias of claude-code
      for (const m of document.querySelectorAll("#messages .msg.peer-ai:not(.streaming) .name"))
        if (m.textContent.startsWith("claude")) return true;
      return false;
    }, null, { timeout: 60000 });
    // per-answer usage and cost (metadata.usage)
    const usage = await page.textContent("#messages .msg.peer-ai .usage");
    assert.match(usage, /in \d+ · out \d+/);
    const streaming = await page.$$("#messages .msg.streaming");
    assert.equal(streaming.length, 0, "the streamed answer was not replaced by the message");
  });

  await step("quick and discuss with the tool picker", async () => {
    await page.click("#quick-box summary");
    await page.fill("#quick-question", "quick question from the page?");
    await page.check('#quick-tools input[value="codex"]');
    await page.click('#quick-form button[type="submit"]');
    await page.waitForSelector('#jobs .job-done[data-kind="quick"]', { timeout: 60000 });
    // the new room is opened, with the answer in it
    await messageWith(page, "quick question from the page?", 10000);
    await messageWith(page, "codex answers", 10000);
    const quickRoom = await page.evaluate(() => window.aipWeb.current);
    assert.notEqual(quickRoom, room);
    await page.click('#rooms li[data-room="' + room + '"]');
    await messageWith(page, "hello from", 5000);
    await page.click("#discuss-box summary");
    await page.check('#discuss-tools input[value="codex"]');
    await page.check('#discuss-tools input[value="gemini"]');
    await page.fill("#discuss-rounds", "1");
    await page.click('#discuss-form button[type="submit"]');
    await page.waitForSelector('#jobs .job-done[data-kind="discuss"]', { timeout: 90000 });
    await messageWith(page, "gemini", 10000);
    await page.click("#discuss-box summary");
  });

  await step("join by connection string: a clear error for a bad one", async () => {
    await page.click("#join-box summary");
    await page.fill("#join-link", "peer://127.0.0.1:9/room-000000000000?token=abc");
    await page.fill("#join-password", "join-secret-pw");
    await page.click('#join-form button[type="submit"]');
    await page.waitForSelector('#jobs .job-failed[data-kind="join"]', { timeout: 60000 });
    assert.equal(await page.inputValue("#join-password"), "", "the password stayed in the page");
    const said = await page.textContent("#status");
    assert.ok(said.length > 10 && !said.includes("join-secret-pw"), "the error: " + said);
    await page.click("#join-box summary");
  });

  await step("screenshot of the room view", async () => {
    const file = join(out, "room.png");
    await page.screenshot({ path: file, fullPage: false });
    result.screenshots.push(file);
  });

  await step("export md as a download", async () => {
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 15000 }),
                                          page.click("#export-md")]);
    assert.equal(download.suggestedFilename(), room + ".md");
    const text = readFileSync(await download.path(), "utf8");
    assert.ok(text.includes("hello from **the page**"), "the export lacks the post");
    const [json] = await Promise.all([page.waitForEvent("download", { timeout: 15000 }),
                                      page.click("#export-json")]);
    const doc = JSON.parse(readFileSync(await json.path(), "utf8"));
    assert.ok(doc.messages.some((m) => m.content === "hello from **the page**"));
  });

  await step("the token is unusable a second time", async () => {
    const other = await browser.newContext();
    const p2 = await other.newPage();
    await p2.goto(url);
    await p2.waitForSelector("#login:not([hidden])", { timeout: 5000 });
    assert.ok((await p2.textContent("#login-msg")).includes("used already"));
    assert.equal((await other.cookies()).length, 0);
    // ... and without the cookie: 401 and nothing else
    for (const path of ["/app.js", "/app.css", "/api/session", "/anything"]) {
      const r = await p2.request.get(base + path);
      assert.equal(r.status(), 401, path);
      assert.equal(await r.text(), "401 Unauthorized\n");
      assert.equal(r.headers()["access-control-allow-origin"], undefined);
    }
    const refused = await p2.evaluate((b) => new Promise((resolve) => {
      const ws = new WebSocket(b.replace("http", "ws") + "/ws");
      ws.onopen = () => resolve("opened");
      ws.onerror = () => resolve("refused");
    }), base);
    assert.equal(refused, "refused", "a WebSocket without the cookie");
    await other.close();
  });

  await step("a WebSocket from another origin is refused", async () => {
    // A page of another origin on this host: the browser sends the cookie
    // (same site), so only the Origin check stands in the way
    const evil = "http://127.0.0.1:9/";
    await context.route(evil, (r) => r.fulfill({ status: 200, contentType: "text/html",
                                                body: "<!doctype html><title>evil</title>" }));
    const p3 = await context.newPage();
    await p3.goto(evil);
    const refused = await p3.evaluate((b) => new Promise((resolve) => {
      const ws = new WebSocket(b.replace("http", "ws") + "/ws");
      ws.onopen = () => resolve("opened");
      ws.onerror = () => resolve("refused");
    }), base);
    assert.equal(refused, "refused", "a WebSocket from " + evil);
    await p3.close();
  });

  assert.deepEqual(pageErrors, [], "errors in the page");
  result.ok = true;
} catch (e) {
  failed = e;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
if (failed) {
  console.error("FAILED after steps " + JSON.stringify(result.steps) + ": " + (failed.stack || failed));
  process.exit(1);
}
