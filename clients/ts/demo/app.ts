// The browser demo: a canvas view of the player's zone, built on the SDK.
// Served by `realmstream run` at http://127.0.0.1:8084/play/ (see docs/clients.md).
import {
  LoginError,
  RealmClient,
  RejectedError,
  ServerError,
  login,
  type EntityView,
  type WorldInfo,
  type ZoneUpdate,
} from "../src/index.js";

interface Rect { minX: number; minY: number; maxX: number; maxY: number }
interface World { cols: number; rows: number; zoneSize: number; cellSize: number; obstacles: Rect[]; maxSpeed: number; fromServer: boolean }
interface Seen { view: EntityView; seen: number }
interface Config { ws_port?: number; ws_path?: string; ws_url?: string; default_zone?: string }

// defaultWorld is the stack's default map (libs/worldmap.Default, world rules'
// DefaultObstacles), drawn until the gateway sends a WorldInfo.
const defaultWorld: World = {
  cols: 3, rows: 3, zoneSize: 1000, cellSize: 100, maxSpeed: 250, fromServer: false,
  obstacles: [
    { minX: 300, minY: 300, maxX: 340, maxY: 700 },
    { minX: 600, minY: 200, maxX: 800, maxY: 230 },
    { minX: 650, minY: 650, maxX: 720, maxY: 720 },
  ],
};
const attackRange = 60;
const stepMs = 100;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const canvas = $<HTMLCanvasElement>("canvas");
const ctx = canvas.getContext("2d")!;
const mini = $<HTMLCanvasElement>("minimap");
const mctx = mini.getContext("2d")!;

const state = {
  client: undefined as RealmClient | undefined,
  world: defaultWorld,
  zone: "",
  me: { x: 0, y: 0 },
  placed: false,
  resync: false,
  target: undefined as { x: number; y: number } | undefined,
  keys: new Set<string>(),
  entities: new Map<string, Seen>(),
  bubbles: new Map<string, { text: string; until: number }>(),
  flashes: [] as Array<{ from: string; to: string; until: number; killed: boolean }>,
  chat: [] as Array<{ from: string; text: string }>,
  stats: { sent: 0, acked: 0, rejected: 0, errors: 0, crossings: 0, rtt: 0 },
  login: "",
  name: "",
  lastMoveAt: 0,
};
(window as any).__play = state;

function setStatus(text: string, on = false): void {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("on", on);
}

function logEvent(text: string, bad = false): void {
  const ul = $("event-log");
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (bad) li.className = "bad";
  ul.prepend(li);
  while (ul.children.length > 40) ul.lastChild!.remove();
}

function adoptWorld(w: WorldInfo | undefined): void {
  if (!w || !w.cols) return;
  state.world = {
    cols: w.cols, rows: w.rows, zoneSize: w.zoneSize, cellSize: w.cellSize,
    maxSpeed: w.maxSpeed || defaultWorld.maxSpeed,
    obstacles: w.obstacles.length ? w.obstacles.map((r) => ({ minX: r.minX, minY: r.minY, maxX: r.maxX, maxY: r.maxY })) : defaultWorld.obstacles,
    fromServer: true,
  };
  fillZones();
}

function zoneIds(): string[] {
  const out: string[] = [];
  for (let r = 0; r < state.world.rows; r++) for (let c = 0; c < state.world.cols; c++) out.push(`z${c}_${r}`);
  return out;
}

function fillZones(selected?: string): void {
  const sel = $<HTMLSelectElement>("zone");
  const cur = selected ?? sel.value;
  sel.innerHTML = "";
  for (const z of zoneIds()) {
    const o = document.createElement("option");
    o.value = o.textContent = z;
    sel.appendChild(o);
  }
  if (cur && zoneIds().includes(cur)) sel.value = cur;
}

function deviceId(): string {
  let id = localStorage.getItem("realmstream.device");
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem("realmstream.device", id);
  }
  return id;
}

async function start(cfg: Config): Promise<void> {
  const url = cfg.ws_url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:${cfg.ws_port ?? 7001}${cfg.ws_path ?? "/"}`;
  const name = $<HTMLInputElement>("name").value.trim();
  const zone = $<HTMLSelectElement>("zone").value;
  $("login-error").textContent = "";
  setStatus("logging in…");
  let token: string | undefined;
  try {
    const s = await login(url, { deviceId: deviceId(), name });
    token = s.token;
    state.login = `token (${s.created ? "new" : "existing"} account ${s.playerId})`;
  } catch (err) {
    // A gateway without the login endpoint (or not reachable over HTTP): dev-mode name.
    if (err instanceof LoginError && (err.status === 0 || err.status === 404 || err.status === 405)) state.login = "dev name";
    else {
      $("login-error").textContent = String((err as Error).message);
      setStatus("login failed");
      return;
    }
  }
  let c: RealmClient;
  try {
    c = await RealmClient.connect({ url, token, name, clientName: "realmstream-play" });
  } catch (err) {
    $("login-error").textContent = String((err as Error).message);
    setStatus("connect failed");
    return;
  }
  state.client = c;
  state.name = c.welcome?.playerName || name;
  adoptWorld(c.world);
  wire(c);
  $("login").classList.add("hidden");
  $("game").classList.remove("hidden");
  canvas.focus();
  try {
    await c.join(zone);
    state.zone = zone;
    logEvent(`joined ${zone} as ${c.playerId} (${state.login})`);
  } catch (err) {
    logEvent(`join ${zone}: ${(err as Error).message}`, true);
  }
  document.body.dataset.state = "playing";
  setInterval(tick, stepMs);
  setInterval(() => c.ping().then((ms) => (state.stats.rtt = ms)).catch(() => {}), 2000);
  requestAnimationFrame(draw);
}

function wire(c: RealmClient): void {
  c.on("update", (ev) => onUpdate(c, ev.update));
  c.on("zoneChanged", (ev) => {
    const z = ev.zoneChanged;
    logEvent(`crossed into ${z.zone} at ${z.x.toFixed(0)},${z.y.toFixed(0)}`);
    state.zone = z.zone;
    state.me = { x: z.x, y: z.y };
    state.placed = true;
    state.target = undefined;
    state.entities.clear();
    state.stats.crossings++;
    document.body.dataset.crossings = String(state.stats.crossings);
  });
  c.on("rejected", (ev) => {
    state.stats.rejected++;
    if (ev.kind === "move") state.resync = true; // walk on from where the world says we are
    logEvent(`${ev.kind} rejected: ${ev.error.serverMessage}`, true);
  });
  c.on("error", (ev) => logEvent(`error: ${ev.error.message}`, true));
  c.on("world", (ev) => adoptWorld(ev.world));
  c.on("state", (ev) => {
    if (ev.state === "open") setStatus(`${c.playerId} · session ${c.sessionId.slice(0, 8)} · ${c.welcome?.serverVersion || "gateway"}`, true);
    else setStatus(ev.state + (ev.error ? `: ${ev.error.message}` : ""));
    if (ev.state === "reconnecting") logEvent("connection lost; resuming…", true);
  });
  c.on("welcome", (ev) => ev.resumed && logEvent(`session resumed (last seq ${ev.welcome.lastSeq})`));
  setStatus(`${c.playerId} · session ${c.sessionId.slice(0, 8)} · ${c.welcome?.serverVersion || "gateway"}`, true);
}

function onUpdate(c: RealmClient, u: ZoneUpdate): void {
  if (state.zone && u.zone !== state.zone) return;
  const now = performance.now();
  for (const e of u.entities) {
    state.entities.set(e.id, { view: e, seen: now });
    if (e.id === c.playerId && (!state.placed || state.resync)) {
      state.me = { x: e.x, y: e.y };
      state.placed = true;
      state.resync = false;
    }
  }
  for (const id of u.removed) state.entities.delete(id);
  for (const l of u.chat) {
    state.chat.push({ from: l.from, text: l.text });
    state.bubbles.set(l.from, { text: l.text, until: now + 4000 });
    const li = document.createElement("li");
    // ChatLine.from is the speaker's name.
    if (l.from === state.name) li.className = "mine";
    const b = document.createElement("b");
    b.textContent = l.from + ": ";
    li.append(b, document.createTextNode(l.text));
    const ul = $("chat-log");
    ul.append(li);
    while (ul.children.length > 60) ul.firstChild!.remove();
    ul.scrollTop = ul.scrollHeight;
    document.body.dataset.chat = String(state.chat.length);
  }
  for (const h of u.combat) {
    state.flashes.push({ from: h.attacker, to: h.target, until: now + 350, killed: h.killed });
    if (h.attacker === c.playerId || h.target === c.playerId) {
      logEvent(`${nameOf(h.attacker)} hit ${nameOf(h.target)} for ${h.damage}${h.killed ? " (killed)" : ""}`);
    }
  }
  const bots = [...state.entities.values()].filter((s) => isBot(s.view)).length;
  document.body.dataset.entities = String(state.entities.size);
  document.body.dataset.bots = String(bots);
  document.body.dataset.zone = state.zone;
}

function nameOf(id: string): string {
  return state.entities.get(id)?.view.name || id;
}

function isBot(e: EntityView): boolean {
  return e.name.startsWith("bot") || e.id.startsWith("p-bot");
}

function segmentHits(ax: number, ay: number, bx: number, by: number, r: Rect): boolean {
  // Sample the segment: the world refuses a step whose path crosses an obstacle.
  const n = Math.max(1, Math.ceil(Math.hypot(bx - ax, by - ay) / 2));
  for (let i = 0; i <= n; i++) {
    const x = ax + ((bx - ax) * i) / n, y = ay + ((by - ay) * i) / n;
    if (x >= r.minX && x < r.maxX && y >= r.minY && y < r.maxY) return true;
  }
  return false;
}

/** tick sends one move per 100 ms toward the keys' direction or the click target. */
function tick(): void {
  const c = state.client;
  if (!c || !state.placed || state.resync || c.state !== "open") return;
  let dx = 0, dy = 0;
  const k = state.keys;
  if (k.has("ArrowLeft") || k.has("a")) dx -= 1;
  if (k.has("ArrowRight") || k.has("d")) dx += 1;
  if (k.has("ArrowUp") || k.has("w")) dy -= 1;
  if (k.has("ArrowDown") || k.has("s")) dy += 1;
  // The world checks speed against the gateway's receive times: the step is
  // what 60% of the top speed covers since the last move: the slack absorbs
  // the jitter between the browser's timer and the gateway's receive times.
  const t = performance.now();
  const elapsed = state.lastMoveAt ? Math.min(t - state.lastMoveAt, 2 * stepMs) : stepMs;
  const speed = state.world.maxSpeed * 0.6 * (elapsed / 1000);
  let step = speed;
  if (dx || dy) state.target = undefined;
  else if (state.target) {
    dx = state.target.x - state.me.x;
    dy = state.target.y - state.me.y;
    step = Math.min(speed, Math.hypot(dx, dy));
    if (step < 0.5) {
      state.target = undefined;
      return;
    }
  } else return;
  const d = Math.hypot(dx, dy);
  const nx = state.me.x + (dx / d) * step, ny = state.me.y + (dy / d) * step;
  if (state.world.obstacles.some((r) => segmentHits(state.me.x, state.me.y, nx, ny, r))) {
    state.target = undefined;
    return;
  }
  state.me = { x: nx, y: ny };
  state.lastMoveAt = t;
  state.stats.sent++;
  c.move(nx, ny).then(
    () => state.stats.acked++,
    (err) => {
      state.stats.errors++;
      if (!(err instanceof RejectedError)) logEvent(`move: ${(err as Error).message}`, true);
      state.resync = true;
    },
  );
}

function attack(targetId?: string): void {
  const c = state.client;
  if (!c) return;
  let id = targetId;
  if (!id) {
    let best = Infinity;
    for (const [eid, s] of state.entities) {
      if (eid === c.playerId || s.view.dead) continue;
      const d = Math.hypot(s.view.x - state.me.x, s.view.y - state.me.y);
      if (d < best) { best = d; id = eid; }
    }
  }
  if (!id) {
    logEvent("nobody to attack");
    return;
  }
  const who = nameOf(id);
  c.attack(id).then(
    () => logEvent(`attack on ${who} sent`),
    (err) => logEvent(`attack on ${who}: ${err instanceof ServerError ? err.serverMessage : (err as Error).message}`, true),
  );
}

function scale(): number {
  return canvas.width / state.world.zoneSize;
}

function draw(): void {
  const c = state.client;
  const s = scale();
  const w = state.world;
  const now = performance.now();
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#0b1118";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  // Cells (area of interest).
  ctx.strokeStyle = "#17232f";
  ctx.lineWidth = 1;
  for (let v = 0; v <= w.zoneSize; v += w.cellSize) {
    ctx.beginPath(); ctx.moveTo(v * s + 0.5, 0); ctx.lineTo(v * s + 0.5, canvas.height); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, v * s + 0.5); ctx.lineTo(canvas.width, v * s + 0.5); ctx.stroke();
  }
  // Edges that lead to a neighbour zone.
  const [col, row] = parseZone(state.zone);
  ctx.lineWidth = 4;
  ctx.strokeStyle = "#1e3a5f";
  if (col > 0) line(2, 0, 2, canvas.height);
  if (col < w.cols - 1) line(canvas.width - 2, 0, canvas.width - 2, canvas.height);
  if (row > 0) line(0, 2, canvas.width, 2);
  if (row < w.rows - 1) line(0, canvas.height - 2, canvas.width, canvas.height - 2);
  // Obstacles.
  ctx.fillStyle = "#3b4b5c";
  for (const r of w.obstacles) ctx.fillRect(r.minX * s, r.minY * s, (r.maxX - r.minX) * s, (r.maxY - r.minY) * s);
  // Click target.
  if (state.target) {
    ctx.strokeStyle = "#4ade8088"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(state.target.x * s, state.target.y * s, 7, 0, Math.PI * 2); ctx.stroke();
  }
  // Entities (stale ones fade out after a second unseen).
  for (const [id, e] of state.entities) {
    if (now - e.seen > 1500) { state.entities.delete(id); continue; }
    if (c && id === c.playerId) continue;
    drawEntity(e.view, isBot(e.view) ? "#f59e0b" : "#60a5fa", e.view.x, e.view.y);
  }
  if (c && state.placed) {
    const mine = state.entities.get(c.playerId)?.view;
    drawEntity(mine ?? ({ id: c.playerId, name: c.welcome?.playerName || "you", hp: 100, dead: false } as EntityView), "#4ade80", state.me.x, state.me.y, true);
    ctx.strokeStyle = "#4ade8033"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.arc(state.me.x * s, state.me.y * s, attackRange * s, 0, Math.PI * 2); ctx.stroke();
  }
  // Combat flashes.
  state.flashes = state.flashes.filter((f) => f.until > now);
  for (const f of state.flashes) {
    const a = posOf(f.from), b = posOf(f.to);
    if (!a || !b) continue;
    ctx.strokeStyle = f.killed ? "#f87171" : "#fca5a5"; ctx.lineWidth = 2;
    line(a.x * s, a.y * s, b.x * s, b.y * s);
  }
  // Chat bubbles.
  ctx.font = "12px system-ui, sans-serif";
  for (const [id, b] of state.bubbles) {
    if (b.until < now) { state.bubbles.delete(id); continue; }
    const p = speakerPos(id);
    if (!p) continue;
    const text = b.text.length > 40 ? b.text.slice(0, 39) + "…" : b.text;
    const tw = ctx.measureText(text).width;
    const x = Math.min(Math.max(p.x * s - tw / 2 - 6, 2), canvas.width - tw - 14), y = Math.max(p.y * s - 44, 2);
    ctx.fillStyle = "#e2e8f0ee"; roundRect(x, y, tw + 12, 20, 6); ctx.fill();
    ctx.fillStyle = "#0f1720"; ctx.fillText(text, x + 6, y + 14);
  }
  ctx.fillStyle = "#8aa0b3"; ctx.font = "13px ui-monospace, monospace";
  ctx.fillText(`${state.zone || "—"}  (${state.me.x.toFixed(0)}, ${state.me.y.toFixed(0)})`, 10, 20);
  drawMinimap();
  drawFacts();
  requestAnimationFrame(draw);
}

function posOf(id: string): { x: number; y: number } | undefined {
  if (state.client && id === state.client.playerId) return state.me;
  const e = state.entities.get(id);
  return e ? { x: e.view.x, y: e.view.y } : undefined;
}

function speakerPos(name: string): { x: number; y: number } | undefined {
  if (name === state.name) return state.me;
  for (const e of state.entities.values()) if (e.view.name === name) return { x: e.view.x, y: e.view.y };
  return undefined;
}

function drawEntity(e: EntityView, color: string, x: number, y: number, me = false): void {
  const s = scale();
  const px = x * s, py = y * s;
  ctx.globalAlpha = e.dead ? 0.35 : 1;
  ctx.fillStyle = color;
  ctx.beginPath(); ctx.arc(px, py, me ? 8 : 6, 0, Math.PI * 2); ctx.fill();
  if (me) { ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2; ctx.stroke(); }
  // HP bar.
  const hp = Math.max(0, Math.min(100, e.hp));
  ctx.fillStyle = "#33414f"; ctx.fillRect(px - 12, py - 16, 24, 3);
  ctx.fillStyle = hp > 50 ? "#4ade80" : hp > 20 ? "#facc15" : "#f87171"; ctx.fillRect(px - 12, py - 16, (24 * hp) / 100, 3);
  ctx.font = me ? "bold 12px system-ui, sans-serif" : "11px system-ui, sans-serif";
  ctx.fillStyle = "#cbd5e1";
  const label = e.name || e.id;
  ctx.fillText(label, px - ctx.measureText(label).width / 2, py + 20);
  ctx.globalAlpha = 1;
}

function drawMinimap(): void {
  const w = state.world;
  const cw = mini.width / w.cols, ch = mini.height / w.rows;
  mctx.clearRect(0, 0, mini.width, mini.height);
  const [col, row] = parseZone(state.zone);
  for (let r = 0; r < w.rows; r++) {
    for (let c = 0; c < w.cols; c++) {
      mctx.fillStyle = c === col && r === row ? "#1d4ed8" : "#0b1118";
      mctx.fillRect(c * cw + 1, r * ch + 1, cw - 2, ch - 2);
      mctx.fillStyle = "#8aa0b3"; mctx.font = "10px ui-monospace, monospace";
      mctx.fillText(`z${c}_${r}`, c * cw + 4, r * ch + 13);
    }
  }
  if (state.placed && col >= 0) {
    mctx.fillStyle = "#4ade80";
    mctx.beginPath();
    mctx.arc(col * cw + (state.me.x / w.zoneSize) * cw, row * ch + (state.me.y / w.zoneSize) * ch, 3, 0, Math.PI * 2);
    mctx.fill();
  }
}

let factsAt = 0;
function drawFacts(): void {
  const now = performance.now();
  if (now - factsAt < 250) return;
  factsAt = now;
  const c = state.client;
  const bots = [...state.entities.values()].filter((s) => isBot(s.view)).length;
  const rows: Array<[string, string]> = [
    ["zone", state.zone],
    ["position", `${state.me.x.toFixed(1)}, ${state.me.y.toFixed(1)}`],
    ["in view", `${state.entities.size} (${bots} bots)`],
    ["moves", `${state.stats.sent} sent, ${state.stats.acked} acked, ${state.stats.rejected} rejected`],
    ["last seq", String(c?.lastSeq ?? 0n)],
    ["rtt", `${state.stats.rtt.toFixed(1)} ms`],
    ["crossings", String(state.stats.crossings)],
    ["login", state.login],
    ["world", state.world.fromServer ? "from WorldInfo" : "default map"],
    ["protocol", String(c?.welcome?.protocolVersion || "unversioned")],
  ];
  const dl = $("facts");
  dl.innerHTML = "";
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v; dd.title = v;
    dl.append(dt, dd);
  }
}

function parseZone(z: string): [number, number] {
  const m = /^z(\d+)_(\d+)$/.exec(z);
  return m ? [Number(m[1]), Number(m[2])] : [-1, -1];
}

function line(x1: number, y1: number, x2: number, y2: number): void {
  ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
}

function roundRect(x: number, y: number, w: number, h: number, r: number): void {
  ctx.beginPath();
  ctx.moveTo(x + r, y); ctx.arcTo(x + w, y, x + w, y + h, r); ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r); ctx.arcTo(x, y, x + w, y, r); ctx.closePath();
}

// ---- input ----

const moveKeys = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "w", "a", "s", "d"]);
window.addEventListener("keydown", (ev) => {
  if (document.activeElement === $("chat-input") || document.activeElement === $("name")) return;
  const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  if (moveKeys.has(key)) { state.keys.add(key); ev.preventDefault(); }
  else if (key === " ") { attack(); ev.preventDefault(); }
  else if (key === "Enter" && state.client) { $<HTMLInputElement>("chat-input").focus(); ev.preventDefault(); }
});
window.addEventListener("keyup", (ev) => state.keys.delete(ev.key.length === 1 ? ev.key.toLowerCase() : ev.key));
window.addEventListener("blur", () => state.keys.clear());

canvas.addEventListener("click", (ev) => {
  const r = canvas.getBoundingClientRect();
  const s = scale();
  const x = ((ev.clientX - r.left) * (canvas.width / r.width)) / s;
  const y = ((ev.clientY - r.top) * (canvas.height / r.height)) / s;
  for (const [id, e] of state.entities) {
    if (id === state.client?.playerId) continue;
    if (Math.hypot(e.view.x - x, e.view.y - y) * s < 10) { attack(id); return; }
  }
  // A click just outside an edge walks over it, into the next zone.
  const z = state.world.zoneSize;
  state.target = { x: Math.min(Math.max(x, -5), z + 5), y: Math.min(Math.max(y, -5), z + 5) };
  if (x < 4) state.target.x = -2; else if (x > z - 4) state.target.x = z + 2;
  if (y < 4) state.target.y = -2; else if (y > z - 4) state.target.y = z + 2;
});

$<HTMLFormElement>("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>("chat-input");
  const text = input.value.trim();
  if (!text || !state.client) return;
  input.value = "";
  state.client.chat(text).catch((err) => logEvent(`chat: ${(err as Error).message}`, true));
  canvas.focus();
});

async function main(): Promise<void> {
  let cfg: Config = {};
  try {
    cfg = await (await fetch("config.json")).json();
  } catch {
    /* defaults */
  }
  fillZones(cfg.default_zone || "z1_1");
  const params = new URLSearchParams(location.search);
  $<HTMLInputElement>("name").value = params.get("name") || `guest${Math.floor(Math.random() * 9000 + 1000)}`;
  if (params.get("zone")) fillZones(params.get("zone")!);
  $<HTMLFormElement>("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void start(cfg);
  });
  document.body.dataset.state = "login";
}

void main();
