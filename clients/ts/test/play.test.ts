// The browser demo, played in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) against a real stack with bots: log in, move,
// see a bot, chat and see it echoed, attack, cross into the next zone, and
// save a screenshot.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { chromium, type Browser, type Page } from "playwright-core";

import { repoRoot, startStack, type Stack } from "./stack.js";

const chromiumPath = "/usr/bin/chromium";

let stack: Stack;
let browser: Browser;

before(async () => {
  assert.ok(existsSync(chromiumPath), `headless Chromium not found at ${chromiumPath}: apt-get install -y chromium`);
  // 45 bots: five per zone of the default 3x3 map, so one is soon in view.
  [stack, browser] = await Promise.all([
    startStack({ bots: 45 }),
    chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
      ],
    }),
  ]);
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** artifacts is where the screenshot goes: $REALM_TEST_ARTIFACTS or <tmp>/realmstream-test-artifacts. */
function artifacts(): string {
  const dir = join(process.env.REALM_TEST_ARTIFACTS || join(tmpdir(), "realmstream-test-artifacts"), "play");
  mkdirSync(dir, { recursive: true });
  return dir;
}

interface PlayState {
  placed: boolean;
  zone: string;
  me: { x: number; y: number };
  stats: { sent: number; acked: number; rejected: number; crossings: number };
  bots: number;
  entities: number;
  chat: string[];
  obstacles: Array<{ minX: number; minY: number; maxX: number; maxY: number }>;
  zoneSize: number;
}

function read(page: Page): Promise<PlayState> {
  return page.evaluate(() => {
    const s = (window as any).__play;
    return {
      placed: s.placed,
      zone: s.zone,
      me: { ...s.me },
      stats: { ...s.stats },
      bots: Number(document.body.dataset.bots || 0),
      entities: s.entities.size,
      chat: s.chat.map((l: { text: string }) => l.text),
      obstacles: s.world.obstacles,
      zoneSize: s.world.zoneSize,
    };
  });
}

async function until(page: Page, what: string, cond: (s: PlayState) => boolean, timeoutMs: number, each?: (s: PlayState) => Promise<void>): Promise<PlayState> {
  const end = Date.now() + timeoutMs;
  let s = await read(page);
  while (!cond(s)) {
    if (Date.now() > end) {
      const events = await page.evaluate(() => document.getElementById("event-log")!.innerText);
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify({ ...s, chat: s.chat.slice(-3) })}\nevents:\n${events}`);
    }
    if (each) await each(s);
    await new Promise((r) => setTimeout(r, 100));
    s = await read(page);
  }
  return s;
}

/** clickAt clicks the canvas at zone coordinates (x, y). */
async function clickAt(page: Page, s: PlayState, x: number, y: number): Promise<void> {
  const box = (await page.locator("#canvas").boundingBox())!;
  const px = Math.min(Math.max((x / s.zoneSize) * box.width, 1), box.width - 1);
  const py = Math.min(Math.max((y / s.zoneSize) * box.height, 1), box.height - 1);
  await page.mouse.click(box.x + px, box.y + py);
}

function clear(s: PlayState, x: number, y: number): boolean {
  const n = Math.ceil(Math.hypot(x - s.me.x, y - s.me.y) / 2);
  for (let i = 0; i <= n; i++) {
    const px = s.me.x + ((x - s.me.x) * i) / n, py = s.me.y + ((y - s.me.y) * i) / n;
    if (s.obstacles.some((r) => px >= r.minX - 3 && px < r.maxX + 3 && py >= r.minY - 3 && py < r.maxY + 3)) return false;
  }
  return true;
}

test("the browser demo: log in, move, see a bot, chat, attack, cross a zone edge", async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 880 } });
  const consoleErrors: string[] = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("console", (m) => {
    // The login probe: a gateway without POST /v1/session answers it with an
    // error the browser logs; the page then logs in with a dev-mode name.
    if (m.type() === "error" && !m.location().url.includes("/v1/session") && !m.text().includes("/v1/session")) consoleErrors.push(m.text());
  });

  const t0 = Date.now();
  const phase = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);
  await page.goto(`${stack.playUrl}?name=tsplay${process.pid}&zone=z1_1`);
  await page.click("#play");
  await page.waitForSelector('body[data-state="playing"]', { timeout: 20000 });
  let s = await until(page, "the world to place the player", (s) => s.placed, 10000);
  assert.equal(s.zone, "z1_1");
  const start = s.me;

  // Move with the keyboard: hold a key whose way is clear for ~60 units.
  const dirs: Array<[string, number, number]> = [["d", 60, 0], ["a", -60, 0], ["s", 0, 60], ["w", 0, -60]];
  const [key] = dirs.find(([, dx, dy]) => clear(s, s.me.x + dx, s.me.y + dy)) ?? dirs[0];
  await page.locator("#canvas").focus();
  await page.keyboard.down(key);
  await new Promise((r) => setTimeout(r, 1200));
  await page.keyboard.up(key);
  s = await until(page, "keyboard moves acked", (s) => s.stats.acked >= 3 && Math.hypot(s.me.x - start.x, s.me.y - start.y) > 20, 10000);
  phase(`moved from ${start.x.toFixed(0)},${start.y.toFixed(0)} to ${s.me.x.toFixed(0)},${s.me.y.toFixed(0)}`);

  // See a bot: walk to random clear spots (click to move) until one is in view.
  let goal: { x: number; y: number } | undefined;
  let goalAt = 0;
  const seekBot = (timeoutMs: number) =>
    until(page, "a bot in view", (s) => s.bots > 0, timeoutMs, async (s) => {
      // Keep walking to the goal; pick another when there, or after 4 s (stuck).
      if (goal && Math.hypot(goal.x - s.me.x, goal.y - s.me.y) > 5 && Date.now() - goalAt < 4000) return;
      goalAt = Date.now();
      for (let i = 0; i < 50; i++) {
        const g = { x: 60 + Math.random() * (s.zoneSize - 120), y: 60 + Math.random() * (s.zoneSize - 120) };
        if (clear(s, g.x, g.y)) {
          goal = g;
          await clickAt(page, s, g.x, g.y);
          return;
        }
      }
    });
  s = await seekBot(45000);
  phase(`${s.bots} bots and ${s.entities} entities in view`);

  // Chat: type, Enter, and the line comes back in an update of the zone.
  const text = `hello from chromium ${Date.now() % 100000}`;
  await page.fill("#chat-input", text);
  await page.press("#chat-input", "Enter");
  await until(page, "chat echoed", (s) => s.chat.includes(text), 10000);
  await page.waitForFunction((t) => document.getElementById("chat-log")!.textContent!.includes(t), text, { timeout: 5000 });

  // Attack the nearest one (Space) while one is in view: the world answers with a hit or a reason.
  const attacked = () => page.evaluate(() => /attack on|hit /.test(document.getElementById("event-log")!.textContent!));
  for (let i = 0; i < 20 && !(await attacked()); i++) {
    await until(page, "someone in view to attack", (s) => s.entities > 1, 30000);
    await page.locator("#canvas").focus();
    await page.keyboard.press("Space");
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(await attacked(), await page.evaluate(() => document.getElementById("event-log")!.innerText));
  phase("attacked");

  // The screenshot: the zone with a bot in view (and the chat bubble, if still up).
  goal = undefined;
  await seekBot(30000);
  const shot = join(artifacts(), "play.png");
  await page.screenshot({ path: shot });
  if (process.env.UPDATE_SCREENSHOTS) await page.screenshot({ path: join(repoRoot, "docs/img/play.png") });
  phase(`screenshot ${shot}`);

  // Zone crossing: walk over the nearest edge with a clear way (z1_1 has four neighbours).
  s = await read(page);
  const z = s.zoneSize;
  const edges = [
    { x: -2, y: s.me.y, d: s.me.x },
    { x: z + 2, y: s.me.y, d: z - s.me.x },
    { x: s.me.x, y: -2, d: s.me.y },
    { x: s.me.x, y: z + 2, d: z - s.me.y },
  ].sort((a, b) => a.d - b.d);
  const edge = edges.find((e) => clear(s, e.x, e.y)) ?? edges[0];
  await clickAt(page, s, edge.x, edge.y);
  s = await until(page, "a zone crossing", (s) => s.stats.crossings >= 1 && s.zone !== "z1_1", 15000);
  phase(`crossed into ${s.zone}`);
  await page.waitForFunction((z) => document.body.dataset.zone === z, s.zone, { timeout: 10000 });
  // Still playing there: a move in the new zone is acked.
  const acked = s.stats.acked;
  await page.locator("#canvas").focus();
  const back = edge.x < 0 ? "a" : edge.x > z ? "d" : edge.y < 0 ? "w" : "s"; // onward, away from the edge
  await page.keyboard.down(back);
  await new Promise((r) => setTimeout(r, 400));
  await page.keyboard.up(back);
  await until(page, "moves acked in the new zone", (s) => s.stats.acked > acked, 10000);

  phase("moved on in the new zone");
  assert.deepEqual(consoleErrors, [], "no errors in the page");
  await page.close();
});
