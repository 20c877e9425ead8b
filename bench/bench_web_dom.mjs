// bench_web_dom.mjs — CLI send -> in the page's DOM, in headless Chromium.
// Then, with PAGES > 0: that many Chromium pages open on the room, M messages
// sent by the CLI, webd's CPU (utime+stime of WEBD_PID) until every page
// shows every message.
// env: WEB_URL, ROOM, AIP_CLI, AI_PEERS_HOME, N (messages), AIP_SOURCE_DIR,
//      PAGES, M, WEBD_PID, TOKEN_CMD (prints a fresh login URL)
// Prints {start_to_dom_ms: [...], exit_to_dom_ms: [...], cli_ms: [...], pages?}.
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const env = process.env;
const require = createRequire(join(env.AIP_SOURCE_DIR, "tests", "node", "package.json"));
const { chromium } = require("playwright-core");
const n = Number(env.N || 50);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const out = { start_to_dom_ms: [], exit_to_dom_ms: [], cli_ms: [] };
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(env.WEB_URL);
  await page.waitForSelector('#rooms li[data-room="' + env.ROOM + '"]', { timeout: 10000 });
  await page.click('#rooms li[data-room="' + env.ROOM + '"]');
  await page.waitForSelector("#conn.live");
  // The page notes when each message's body enters the DOM (wall clock, as node's)
  await page.evaluate(() => {
    window.__seen = {};
    new MutationObserver((records) => {
      const now = Date.now();
      for (const r of records)
        for (const node of r.addedNodes) {
          const m = node.querySelector && /bench-(\d+)-end/.exec(node.textContent || "");
          if (m && !(m[1] in window.__seen)) window.__seen[m[1]] = now;
        }
    }).observe(document.getElementById("messages"), { childList: true });
  });
  for (let i = 0; i < n; i++) {
    const t0 = Date.now();
    execFileSync(env.AIP_CLI, ["chat", env.ROOM, "bench-" + i + "-end"], { env: env });
    const t1 = Date.now();
    await page.waitForFunction((k) => k in window.__seen, String(i), { timeout: 10000, polling: 5 });
    const seen = await page.evaluate((k) => window.__seen[k], String(i));
    out.start_to_dom_ms.push(seen - t0);
    out.exit_to_dom_ms.push(seen - t1);
    out.cli_ms.push(t1 - t0);
  }
  const pages = Number(env.PAGES || 0), m = Number(env.M || 100);
  if (pages > 0) {
    // one context: the pages share the session of the first login
    const ctx = page.context();
    const all = [page];
    for (let i = 1; i < pages; i++) {
      const p = await ctx.newPage();
      await p.goto(new URL(env.WEB_URL).origin + "/");
      await p.waitForSelector('#rooms li[data-room="' + env.ROOM + '"]', { timeout: 30000 });
      await p.click('#rooms li[data-room="' + env.ROOM + '"]');
      await p.waitForSelector("#conn.live");
      all.push(p);
    }
    const cpu = () => {
      const f = readFileSync("/proc/" + env.WEBD_PID + "/stat", "utf8").split(")").pop().trim().split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;    // USER_HZ
    };
    const before = cpu();
    const t0 = Date.now();
    for (let i = 0; i < m; i++)
      execFileSync(env.AIP_CLI, ["chat", env.ROOM, "fan-" + i + "-out"], { env: env });
    for (const p of all)
      await p.waitForFunction((k) => {
        for (const b of document.querySelectorAll("#messages .msg .body"))
          if (b.textContent.includes("fan-" + k + "-out")) return true;
        return false;
      }, String(m - 1), { timeout: 60000 });
    const used = cpu() - before;
    const counts = await Promise.all(all.map((p) => p.evaluate(() =>
      Array.from(document.querySelectorAll("#messages .msg .body")).filter((b) => /fan-\d+-out/.test(b.textContent)).length)));
    out.pages = { pages: pages, messages: m, webd_cpu_ms_per_message: used * 1000 / m,
                  wall_s: (Date.now() - t0) / 1000, min_shown: Math.min(...counts) };
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
