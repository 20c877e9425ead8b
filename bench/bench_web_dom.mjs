// bench_web_dom.mjs — CLI send -> in the page's DOM, in headless Chromium.
// env: WEB_URL, ROOM, AIP_CLI, AI_PEERS_HOME, N (messages), AIP_SOURCE_DIR
// Prints {start_to_dom_ms: [...], exit_to_dom_ms: [...], cli_ms: [...]}.
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
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
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
