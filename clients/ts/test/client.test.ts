// SDK tests against a real one-process stack (embedded NATS, gateway, world,
// persist on Pebble, monitor), started by this file.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";

import {
  ErrorCode,
  RealmClient,
  RejectedError,
  ServerError,
  ClosedError,
  LoginError,
  PROTOCOL_VERSION,
  login,
  type ClientEvent,
  type CommandResult,
  type ZoneUpdate,
} from "../src/index.js";
import { eventually, startStack, type Stack } from "./stack.js";

let stack: Stack;
const clients: RealmClient[] = [];

before(async () => {
  stack = await startStack({ bots: 0 });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

let n = 0;
async function player(opts: Partial<Parameters<typeof RealmClient.connect>[0]> = {}): Promise<RealmClient> {
  const c = await RealmClient.connect({ url: stack.wsUrl, name: `ts${process.pid}x${++n}`, ...opts });
  clients.push(c);
  return c;
}

/** located joins zone and waits until an update shows the player's own entity. */
async function located(c: RealmClient, zone = "z1_1"): Promise<void> {
  const r = await c.join(zone);
  assert.ok(r.streamSeq > 0n, "join acked with a stream seq");
  await eventually("own entity in an update", () => c.self !== undefined, 10000);
}

describe("RealmClient against a real stack", () => {
  test("connect, join, move, chat: one promise per command resolved by its Ack; updates stream", async () => {
    const c = await player();
    assert.equal(c.state, "open");
    assert.ok(c.sessionId, "session id");
    assert.ok(c.playerId, "player id");
    assert.ok(c.welcome?.token, "resume token");
    // Protocol 3: each zone tick's cells arrive in one Updates frame, emitted one "update" per cell.
    assert.equal(c.welcome?.protocolVersion, 3);
    assert.equal(PROTOCOL_VERSION, 3);

    const updates: ZoneUpdate[] = [];
    c.on("update", (ev) => updates.push(ev.update));
    await located(c);
    assert.equal(c.zone, "z1_1");
    const me = c.self!;

    // Move a few units: Ack, then an update with our position and last_input_seq.
    const x = me.x + 3, y = me.y;
    const r = await c.move(x, y);
    assert.ok(r.seq > 0n && r.streamSeq > 0n && !r.duplicate);
    await eventually("move applied", () => (c.self?.lastInputSeq ?? 0n) >= r.seq);
    assert.ok(Math.abs(c.self!.x - x) < 0.01 && Math.abs(c.self!.y - y) < 0.01, `at ${c.self!.x},${c.self!.y}`);

    // Chat: Ack, then the line arrives in an update of our zone.
    const text = `hello from ts ${Date.now()}`;
    await c.chat(text);
    await eventually("chat echoed", () => updates.some((u) => u.chat.some((l) => l.text === text)));
    assert.ok(updates.every((u) => u.zone === "z1_1"));
  });

  test("events() async iterator yields updates in order and ends on close", async () => {
    const c = await RealmClient.connect({ url: stack.wsUrl, name: `it${process.pid}` });
    const it = c.events();
    await c.join("z0_0");
    let ticks = 0;
    let last = -1n;
    for await (const ev of it) {
      if (ev.type !== "update") continue;
      if (ev.update.tick < last) assert.fail("ticks went backwards within a cell stream");
      last = ev.update.tick;
      if (++ticks === 3) break;
    }
    assert.equal(ticks, 3);
    const it2 = c.events();
    await c.close();
    const rest: ClientEvent[] = [];
    for await (const ev of it2) rest.push(ev);
    assert.equal(c.state, "closed");
    await assert.rejects(c.move(1, 1), ClosedError);
  });

  test("typed errors: gateway refusals reject the command's promise with the wire code", async () => {
    const c = await player();
    await assert.rejects(c.move(10, 10), (e: unknown) => e instanceof ServerError && e.code === ErrorCode.NOT_IN_ZONE);
    await assert.rejects(c.join("z99_99"), (e: unknown) => e instanceof ServerError && e.codeName === "UNKNOWN_ZONE");
    await located(c, "z0_1");
    await assert.rejects(c.chat(""), (e: unknown) => e instanceof ServerError && e.code === ErrorCode.INVALID && !e.retryable);
    await assert.rejects(c.move(NaN, 1), (e: unknown) => e instanceof ServerError && e.code === ErrorCode.INVALID);
  });

  test("world rejections: a too-fast move is acked, then reported as rejected (RejectedError)", async () => {
    const c = await player();
    await located(c, "z2_2");
    const rejected: Array<{ seq: bigint; kind: string; error: RejectedError }> = [];
    c.on("rejected", (ev) => rejected.push(ev));
    const me = c.self!;
    const far = me.x < 500 ? me.x + 400 : me.x - 400;
    let seq: bigint;
    try {
      const r = await c.move(far, me.y); // 400 units at once: too fast
      seq = r.seq;
    } catch (e) {
      // The rejection may (rarely) overtake the Ack: then it rejects the promise.
      assert.ok(e instanceof RejectedError, `got ${e}`);
      seq = e.seq;
    }
    await eventually("rejected event", () => rejected.some((r) => r.seq === seq));
    const ev = rejected.find((r) => r.seq === seq)!;
    assert.equal(ev.kind, "move");
    assert.equal(ev.error.code, ErrorCode.REJECTED);
    assert.match(ev.error.serverMessage, /too fast/);

    // Attack a player that is not there: rejected by the world's rules too.
    let aseq: bigint;
    try {
      aseq = (await c.attack("p-nobody-here")).seq;
    } catch (e) {
      assert.ok(e instanceof RejectedError, `got ${e}`);
      aseq = e.seq;
    }
    await eventually("attack rejected", () => rejected.some((r) => r.seq === aseq && r.kind === "attack"));
  });

  test("attack: two players walk to one spot, the hit shows in the target's combat lines", async () => {
    const a = await player();
    const b = await player();
    await located(a, "z0_2");
    await located(b, "z0_2");
    const [pa, pb] = await Promise.all([walkToMeeting(a, 150), walkToMeeting(b, 170)]);
    assert.ok(Math.hypot(pa.x - pb.x, pa.y - pb.y) < 60, `within attack range: ${JSON.stringify([pa, pb])}`);
    const combat: string[] = [];
    a.on("update", (ev) => ev.update.combat.forEach((l) => combat.push(`${l.attacker}>${l.target}:${l.damage}`)));
    const r = await b.attack(a.playerId);
    assert.ok(r.streamSeq > 0n);
    await eventually("hit seen by the target", () => combat.some((l) => l.startsWith(`${b.playerId}>${a.playerId}:`)));
  });

  test("ping measures a round trip; a flood is rate limited with a retryable typed error", async () => {
    const c = await player();
    const rtt = await c.ping();
    assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
    const results = await Promise.allSettled(Array.from({ length: 400 }, () => c.ping()));
    const limited = results.filter(
      (r) => r.status === "rejected" && r.reason instanceof ServerError && r.reason.code === ErrorCode.RATE_LIMITED,
    );
    assert.ok(limited.length > 0, "some pings rate limited");
    assert.ok((limited[0] as PromiseRejectedResult).reason.retryable);
    assert.ok(results.some((r) => r.status === "fulfilled"));
  });

  test("reconnect and resume: unanswered commands are resent with their seqs and deduplicated", async () => {
    const proxy = await startProxy(stack.wsPort);
    try {
      const c = await player({ url: `ws://127.0.0.1:${proxy.port}/`, reconnect: { initialDelayMs: 50 } });
      await located(c, "z2_0");
      const session = c.sessionId;
      const welcomes: boolean[] = [];
      c.on("welcome", (ev) => welcomes.push(ev.resumed));
      const states: string[] = [];
      c.on("state", (ev) => states.push(ev.state));

      // Swallow the gateway's answers: the commands reach the gateway and are
      // accepted, but the client never sees their Acks.
      proxy.holdDownstream = true;
      const me = c.self!;
      const sent: Array<Promise<CommandResult>> = [];
      for (let i = 1; i <= 5; i++) sent.push(c.move(me.x + i * 0.5, me.y));
      sent.push(c.chat(`resume check ${Date.now()}`));
      const lastBefore = c.lastSeq;
      await new Promise((r) => setTimeout(r, 500)); // let the gateway accept them
      assert.equal(c.inFlight, 6, "all six unanswered");
      proxy.cut(); // drop every connection; the proxy stays up for the reconnect
      proxy.holdDownstream = false;

      const results = await Promise.all(sent);
      assert.equal(c.resumes, 1);
      assert.equal(c.sessionId, session, "same session after resume");
      assert.deepEqual(welcomes, [true]);
      assert.ok(states.includes("reconnecting") && states.at(-1) === "open", states.join(","));
      for (const r of results) assert.ok(r.streamSeq > 0n);
      // Accepted before the cut: JetStream already had them under the same command id.
      assert.ok(results.every((r) => r.duplicate), `duplicates: ${results.map((r) => r.duplicate)}`);

      // New commands continue above every seq used, and are accepted normally.
      const r = await c.move(me.x + 3, me.y);
      assert.ok(r.seq > lastBefore && r.seq > c.welcome!.lastSeq - 1n);
      assert.equal(r.duplicate, false);
      await eventually("move after resume applied", () => (c.self?.lastInputSeq ?? 0n) >= r.seq);
      assert.equal(c.zone, "z2_0");
    } finally {
      proxy.close();
    }
  });

  test("a drop with reconnect disabled closes the client and fails pending commands", async () => {
    const proxy = await startProxy(stack.wsPort);
    try {
      const c = await player({ url: `ws://127.0.0.1:${proxy.port}/`, reconnect: false });
      await located(c, "z1_0");
      proxy.holdDownstream = true;
      const p = c.move(c.self!.x + 1, c.self!.y);
      await new Promise((r) => setTimeout(r, 200));
      proxy.cut();
      await assert.rejects(p, ClosedError);
      assert.equal(c.state, "closed");
    } finally {
      proxy.close();
    }
  });

  test("login: POST /v1/session mints a token the gateway accepts; bad requests are typed LoginErrors", async (t) => {
    const deviceId = `ts-device-${process.pid}-${Date.now()}`;
    let s;
    try {
      s = await login(stack.wsUrl, { deviceId, name: "Tessa" });
    } catch (e) {
      // A gateway from before the login endpoint answers 404: the SDK reports it as such.
      assert.ok(e instanceof LoginError && e.status === 404, `got ${e}`);
      t.diagnostic("this gateway serves no POST /v1/session (404)");
      return;
    }
    assert.ok(s.token && s.playerId && s.created, JSON.stringify(s));
    assert.equal(s.name, "Tessa");
    assert.ok(s.expiresAt.getTime() > Date.now());
    const again = await login(stack.wsUrl, { deviceId });
    assert.equal(again.playerId, s.playerId, "same device, same account");
    assert.equal(again.created, false);

    const c = await RealmClient.connect({ url: stack.wsUrl, token: s.token });
    clients.push(c);
    assert.equal(c.playerId, s.playerId);
    await located(c, "z0_0");
    await c.chat("logged in with a token");

    await assert.rejects(login(stack.wsUrl, { deviceId: "short" }), (e: unknown) => e instanceof LoginError && e.status === 400 && e.code === "invalid_argument");
    await assert.rejects(
      login(stack.wsUrl, { customId: `nobody-${Date.now()}`, create: false }),
      (e: unknown) => e instanceof LoginError && e.status === 404 && e.code === "not_found",
    );
    await assert.rejects(
      RealmClient.connect({ url: stack.wsUrl, token: s.token.slice(0, -4) + "AAAA", reconnect: false }),
      (e: unknown) => e instanceof ServerError && e.code === ErrorCode.UNAUTHENTICATED,
    );
  });

  test("WorldInfo: the world description arrives with the Welcome when the gateway sends it", async (t) => {
    const c = await player();
    if (!c.welcome?.world) {
      // Gateways before the versioned handshake send no world; the demo falls back to the default map.
      t.diagnostic(`gateway ${c.welcome?.serverVersion || "(no version)"} sent no WorldInfo`);
      assert.equal(c.welcome?.protocolVersion ?? 0, 0, "a versioned gateway must send the world when asked");
      return;
    }
    assert.equal(c.welcome.protocolVersion, PROTOCOL_VERSION, "the gateway serves the SDK's protocol");
    const w = c.world!;
    assert.ok(w.cols > 0 && w.rows > 0 && w.zoneSize > 0 && w.cellSize > 0);
    assert.equal(w.zones.length, w.cols * w.rows);
    const again = await c.worldInfo();
    assert.equal(again.zones.length, w.zones.length);
  });
});

/**
 * walkToMeeting walks c to (x, 900) at 200 units/s along lanes clear of the
 * default obstacles (libs rules.DefaultObstacles: a wall at x 300..340,
 * y 300..700; a bar at x 600..800, y 200..230; a rock at 650..720 x 650..720):
 * first sideways out of an obstacle's column, then along y, then along x at
 * y = 900, where nothing stands.
 */
async function walkToMeeting(c: RealmClient, x: number): Promise<{ x: number; y: number }> {
  const pos = { x: c.self!.x, y: c.self!.y };
  const legs: Array<{ x: number; y: number }> = [];
  if (pos.x >= 295 && pos.x <= 345) legs.push({ x: pos.x < 320 ? 285 : 355, y: pos.y });
  else if (pos.x >= 595 && pos.x <= 805) {
    const right = pos.x > 800 || (pos.x >= 645 && pos.y >= 645 && pos.y <= 725);
    legs.push({ x: right ? 815 : 585, y: pos.y });
  }
  legs.push({ x: legs.at(-1)?.x ?? pos.x, y: 900 }, { x, y: 900 });
  for (const leg of legs) {
    for (;;) {
      const dx = leg.x - pos.x, dy = leg.y - pos.y;
      const d = Math.hypot(dx, dy);
      if (d < 0.01) break;
      const step = Math.min(d, 20);
      pos.x += (dx / d) * step;
      pos.y += (dy / d) * step;
      await c.move(pos.x, pos.y);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const last = c.lastSeq;
  await eventually("walk applied", () => (c.self?.lastInputSeq ?? 0n) >= last - 1n);
  return pos;
}

/** startProxy is a TCP proxy that can cut its connections and hold the downstream. */
async function startProxy(targetPort: number): Promise<{
  port: number;
  holdDownstream: boolean;
  cut: () => void;
  close: () => void;
}> {
  const socks = new Set<Socket>();
  const state = { holdDownstream: false };
  const server: Server = createServer((down) => {
    const up = netConnect(targetPort, "127.0.0.1");
    socks.add(down);
    socks.add(up);
    down.on("data", (b) => up.write(b));
    up.on("data", (b) => {
      if (!state.holdDownstream) down.write(b);
    });
    const end = () => {
      down.destroy();
      up.destroy();
      socks.delete(down);
      socks.delete(up);
    };
    down.on("close", end).on("error", end);
    up.on("close", end).on("error", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    port,
    get holdDownstream() {
      return state.holdDownstream;
    },
    set holdDownstream(v: boolean) {
      state.holdDownstream = v;
    },
    cut: () => {
      for (const s of socks) s.destroy();
      socks.clear();
    },
    close: () => {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}
