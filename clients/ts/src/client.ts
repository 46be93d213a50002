import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ChatScope,
  ClientPacketSchema,
  ErrorCode,
  ServerPacketSchema,
  type ClientPacket,
  type EntityView,
  type ServerPacket,
  type Welcome,
  type WorldInfo,
  type ZoneChanged,
  type ZoneUpdate,
} from "./gen/client_pb.js";
import {
  BusyError,
  ClosedError,
  ConnectError,
  ProtocolError,
  RejectedError,
  ServerError,
  SessionLostError,
  TimeoutError,
  serverError,
} from "./errors.js";
import { resolveWebSocket, toBytes, type SocketLike, type WebSocketCtor } from "./socket.js";

/**
 * PROTOCOL_VERSION is the wire protocol this SDK speaks (Hello.protocol_version; docs/clients.md).
 * Version 3: the gateway sends one Updates frame per zone tick carrying every cell view of the
 * player's area of interest; the SDK emits one "update" event per cell, as with version 2's
 * one Update frame per cell.
 */
export const PROTOCOL_VERSION = 3;
/** SDK_NAME and SDK_VERSION are sent in Hello (client_name, client_version). */
export const SDK_NAME = "realmstream-ts";
export const SDK_VERSION = "0.1.0";

/** ReconnectOptions tune the automatic reconnect (exponential backoff with jitter). */
export interface ReconnectOptions {
  /** first delay (default 100 ms), doubled per failed attempt up to maxDelayMs (default 5000 ms). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** attempts before the client gives up and closes (default unlimited). */
  maxAttempts?: number;
}

/** ClientOptions configure RealmClient.connect. */
export interface ClientOptions {
  /** the gateway's WebSocket URL, e.g. ws://127.0.0.1:7001/ */
  url: string;
  /** a token from login() (POST /v1/session) or a login service of your own. */
  token?: string;
  /** the player name; with no token, a dev-mode gateway logs the player in by name. */
  name?: string;
  /** the WebSocket implementation (default: the global one, else the `ws` package). */
  WebSocket?: WebSocketCtor;
  /**
   * how often a command answered Busy is resent (same seq) after the gateway's
   * retry_after_ms before its promise rejects with BusyError (default 0).
   */
  busyRetries?: number;
  /** how long a command may wait for its answer (default 15000 ms; 0 = forever). */
  commandTimeoutMs?: number;
  /** how long opening the socket and the Hello may take (default 10000 ms). */
  connectTimeoutMs?: number;
  /** reconnect and resume after a drop (default true). */
  reconnect?: boolean | ReconnectOptions;
  /** ask for the world description in the Welcome (default true). */
  wantWorld?: boolean;
  /** capacity of each events() iterator's buffer (default 10000; the oldest events are dropped beyond it). */
  eventBuffer?: number;
  /** client_name and client_version sent in Hello (default realmstream-ts and the SDK version). */
  clientName?: string;
  clientVersion?: string;
}

/** CommandResult is the Ack of a command: it is durably in the command stream. */
export interface CommandResult {
  seq: bigint;
  streamSeq: bigint;
  /** the gateway already had this command (a resend after a reconnect). */
  duplicate: boolean;
}

/** ConnState is the connection's state. */
export type ConnState = "connecting" | "open" | "reconnecting" | "closed";

/** CommandKind names the command a seq carried. */
export type CommandKind = "join" | "leave" | "move" | "chat" | "attack";

/** ClientEvent is one item of the update stream (on() and events()). */
export type ClientEvent =
  | { type: "update"; update: ZoneUpdate }
  | { type: "zoneChanged"; zoneChanged: ZoneChanged }
  | { type: "rejected"; seq: bigint; kind: CommandKind | "unknown"; error: RejectedError }
  | { type: "error"; error: ServerError | ProtocolError }
  | { type: "world"; world: WorldInfo }
  | { type: "welcome"; welcome: Welcome; resumed: boolean }
  | { type: "state"; state: ConnState; error?: Error };

type EventOf<T extends ClientEvent["type"]> = Extract<ClientEvent, { type: T }>;

type Body = ClientPacket["body"];

/** pending is a packet waiting for its answer. */
interface Pending {
  seq: bigint;
  kind: CommandKind | "hello" | "ping" | "world";
  body: Body;
  bytes: Uint8Array;
  sent: boolean;
  sentAt: number;
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
  zone?: string; // a join's zone
  retries?: number; // OUTCOME_UNKNOWN resends
  busy?: number; // Busy resends
}

const outcomeRetries = 3; // resends of a command whose outcome the gateway could not learn
const ackedMemory = 4096; // seqs remembered after their Ack, to name a later REJECTED

/**
 * RealmClient is one player's connection to a gateway. Each command (join,
 * move, chat, attack, leave) returns a promise that resolves with the Ack
 * (durably accepted) and rejects with BusyError, ServerError, RejectedError
 * (the world refused it before the Ack arrived), TimeoutError or ClosedError.
 * A REJECTED that arrives after the Ack (the usual order) is a "rejected"
 * event. Updates, zone changes and unsolicited errors arrive as events.
 *
 * Sequence numbers: every packet carries seq, strictly increasing. After a
 * drop the client reconnects, resumes the session (Hello with the resume
 * token and session id), continues above Welcome.last_seq, and resends the
 * commands still unanswered with their own seqs, in order, so the gateway and
 * JetStream deduplicate those that had been accepted (Ack.duplicate).
 */
export class RealmClient {
  private readonly opts: Required<Omit<ClientOptions, "token" | "name" | "WebSocket">> &
    Pick<ClientOptions, "token" | "name" | "WebSocket">;
  private readonly reconnectOpts: Required<ReconnectOptions> | undefined;
  private sock: SocketLike | undefined;
  private seq = 0n;
  private pending = new Map<bigint, Pending>();
  private acked = new Map<bigint, CommandKind>();
  private handlers = new Map<string, Set<(ev: any) => void>>();
  private sinks = new Set<EventSink>();
  private stateValue: ConnState = "connecting";
  private userClosed = false;
  private reconnecting = false;

  /** welcome is the latest Welcome (updated on every resume). */
  welcome: Welcome | undefined;
  /** world is the world description (from the Welcome or worldInfo()), when the gateway sends one. */
  world: WorldInfo | undefined;
  /** zone is the zone the player is in as far as the client knows (join Ack, ZoneChanged). */
  zone: string | undefined;
  /** self is the player's own entity from the latest update that showed it. */
  self: EntityView | undefined;
  /** resumes counts successful session resumes. */
  resumes = 0;

  private constructor(opts: ClientOptions) {
    this.opts = {
      busyRetries: 0,
      commandTimeoutMs: 15000,
      connectTimeoutMs: 10000,
      reconnect: true,
      wantWorld: true,
      eventBuffer: 10000,
      clientName: SDK_NAME,
      clientVersion: SDK_VERSION,
      ...opts,
    };
    const r = this.opts.reconnect;
    if (r) {
      const ro = typeof r === "object" ? r : {};
      this.reconnectOpts = {
        initialDelayMs: ro.initialDelayMs ?? 100,
        maxDelayMs: ro.maxDelayMs ?? 5000,
        maxAttempts: ro.maxAttempts ?? Infinity,
      };
    }
  }

  /** connect opens a session: it resolves after the Welcome. */
  static async connect(opts: ClientOptions): Promise<RealmClient> {
    if (!opts.token && !opts.name) throw new ConnectError("connect needs a token or (dev mode) a name");
    const c = new RealmClient(opts);
    try {
      await c.open(false);
    } catch (err) {
      c.finish(err as Error);
      throw err;
    }
    return c;
  }

  /** state is the connection state. */
  get state(): ConnState {
    return this.stateValue;
  }
  get sessionId(): string {
    return this.welcome?.sessionId ?? "";
  }
  get playerId(): string {
    return this.welcome?.playerId ?? "";
  }
  /** lastSeq is the last seq this client assigned. */
  get lastSeq(): bigint {
    return this.seq;
  }
  /** inFlight is the number of packets waiting for their answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  join(zone: string): Promise<CommandResult> {
    return this.command("join", { case: "join", value: { zone } as any }, zone);
  }
  leave(): Promise<CommandResult> {
    return this.command("leave", { case: "leave", value: {} as any });
  }
  move(x: number, y: number): Promise<CommandResult> {
    return this.command("move", { case: "move", value: { x, y } as any });
  }
  chat(text: string, scope: ChatScope = ChatScope.ZONE): Promise<CommandResult> {
    return this.command("chat", { case: "chat", value: { text, scope } as any });
  }
  attack(targetId: string): Promise<CommandResult> {
    return this.command("attack", { case: "attack", value: { targetId } as any });
  }

  /** ping resolves with the round trip to the gateway in milliseconds. */
  ping(): Promise<number> {
    const t0 = now();
    return this.request<unknown>("ping", { case: "ping", value: { clientTimeNs: BigInt(Date.now()) * 1000000n } as any }).then(
      () => now() - t0,
    );
  }

  /** worldInfo asks the gateway for the world description. */
  async worldInfo(): Promise<WorldInfo> {
    const w = await this.request<WorldInfo>("world", { case: "worldInfo", value: {} as any });
    this.world = w;
    return w;
  }

  /** on calls fn for every event of the type; it returns the function that stops it. */
  on<T extends ClientEvent["type"]>(type: T, fn: (ev: EventOf<T>) => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
  }

  /**
   * events is the update stream as an async iterator (every event, in order).
   * It ends when the client closes. Its buffer is bounded (eventBuffer): a
   * consumer that falls that far behind loses the oldest events (counted in
   * the iterator's dropped property).
   */
  events(): AsyncIterableIterator<ClientEvent> & { dropped: number } {
    const sink = new EventSink(this.opts.eventBuffer, () => this.sinks.delete(sink));
    if (this.stateValue === "closed") sink.end();
    else this.sinks.add(sink);
    return sink;
  }

  /** close ends the session's connection; pending commands fail with ClosedError. */
  async close(): Promise<void> {
    if (this.userClosed) return;
    this.userClosed = true;
    const s = this.sock;
    this.sock = undefined;
    if (s) {
      try {
        s.close(1000, "client closed");
      } catch {
        /* already closed */
      }
    }
    this.finish(new ClosedError("client closed"));
  }

  // ---- internals ----

  private command(kind: CommandKind, body: Body, zone?: string): Promise<CommandResult> {
    return this.request<CommandResult>(kind, body, zone);
  }

  private request<T>(kind: Pending["kind"], body: Body, zone?: string): Promise<T> {
    if (this.stateValue === "closed") return Promise.reject(new ClosedError("client is closed"));
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { seq, kind, body, bytes: encode(seq, body), sent: false, sentAt: 0, resolve, reject, zone };
      this.pending.set(seq, p);
      const ms = this.opts.commandTimeoutMs;
      if (ms > 0) {
        p.timer = setTimeout(() => {
          if (this.pending.get(seq) === p) {
            this.pending.delete(seq);
            reject(new TimeoutError(seq, ms));
          }
        }, ms);
      }
      // While reconnecting the packet waits; the resume sends it in seq order.
      if (this.stateValue === "open") this.write(p);
    });
  }

  private write(p: Pending): void {
    const s = this.sock;
    if (!s) return;
    try {
      s.send(p.bytes);
      p.sent = true;
      p.sentAt = now();
    } catch {
      // The socket is going away; onclose starts the reconnect, which resends p.
    }
  }

  private settle(seq: bigint): Pending | undefined {
    const p = this.pending.get(seq);
    if (!p) return undefined;
    this.pending.delete(seq);
    if (p.timer) clearTimeout(p.timer);
    return p;
  }

  /** open dials, says Hello (fresh or resume) and, on resume, resends the unanswered packets. */
  private async open(resume: boolean): Promise<void> {
    const WS = await resolveWebSocket(this.opts.WebSocket);
    const sock = new WS(this.opts.url);
    sock.binaryType = "arraybuffer";
    this.sock = sock;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        reject(new ConnectError(`connect to ${this.opts.url}: timed out`));
        safeClose(sock);
      }, this.opts.connectTimeoutMs);
      sock.onopen = () => {
        clearTimeout(t);
        resolve();
      };
      sock.onerror = () => {};
      sock.onclose = (ev) => {
        clearTimeout(t);
        reject(new ConnectError(`connect to ${this.opts.url}: closed (${ev?.code ?? "?"} ${ev?.reason ?? ""})`));
      };
    });
    if (this.userClosed) {
      safeClose(sock);
      throw new ClosedError("client closed");
    }
    sock.onmessage = (ev) => {
      if (this.sock === sock) this.onMessage(ev.data);
    };
    let helloFail: ((e: Error) => void) | undefined;
    sock.onclose = (ev) => {
      if (helloFail) helloFail(new ConnectError(`closed before the Welcome (${ev?.code ?? "?"} ${ev?.reason ?? ""})`));
      if (this.sock === sock) this.onClose(ev);
    };

    // The Hello takes the next seq; the gateway does not count it as a command,
    // so resent commands with lower seqs are still above its per-connection mark.
    const seq = ++this.seq;
    const w = this.welcome;
    const hello = {
      token: resume && w ? w.token : (this.opts.token ?? ""),
      name: this.opts.name ?? "",
      resumeSession: resume && w ? w.sessionId : "",
      protocolVersion: PROTOCOL_VERSION,
      clientName: this.opts.clientName,
      clientVersion: this.opts.clientVersion,
      wantWorld: this.opts.wantWorld,
    };
    const welcome = await new Promise<Welcome>((resolve, reject) => {
      const t = setTimeout(() => {
        this.settle(seq);
        reject(new ConnectError("no Welcome within the connect timeout"));
        safeClose(sock);
      }, this.opts.connectTimeoutMs);
      const done = (fn: () => void) => {
        clearTimeout(t);
        helloFail = undefined;
        fn();
      };
      helloFail = (e) => done(() => { this.settle(seq); reject(e); });
      const p: Pending = {
        seq,
        kind: "hello",
        body: { case: "hello", value: hello as any },
        bytes: encode(seq, { case: "hello", value: hello as any }),
        sent: false,
        sentAt: 0,
        resolve: (v: Welcome) => done(() => resolve(v)),
        reject: (e: Error) => done(() => reject(e)),
      };
      this.pending.set(seq, p);
      this.write(p);
    });
    this.welcome = welcome;
    if (welcome.world) this.world = welcome.world;
    // Continue above every seq the session has used (last_seq is shared by the
    // gateways and may be above what this client knows, never below).
    if (welcome.lastSeq > this.seq) this.seq = welcome.lastSeq;
    this.setState("open");
    this.emit({ type: "welcome", welcome, resumed: resume });
    if (welcome.world) this.emit({ type: "world", world: welcome.world });
    if (resume) this.resend(welcome.lastSeq);
  }

  /** resend sends the packets still unanswered after a resume, in seq order. */
  private resend(lastSeq: bigint): void {
    const list = [...this.pending.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    for (const p of list) {
      if (p.kind === "hello") continue;
      if (p.kind === "ping") {
        // A ping measures one connection; a resent one would measure nothing.
        this.settle(p.seq);
        p.reject(new ConnectError("connection lost during ping"));
        continue;
      }
      if (!p.sent && p.seq <= lastSeq) {
        // Never sent, yet the session already used this seq: renumber it so
        // it cannot be taken for a different command (SEQ_REUSED).
        this.pending.delete(p.seq);
        p.seq = ++this.seq;
        p.bytes = encode(p.seq, p.body);
        this.pending.set(p.seq, p);
      }
      this.write(p);
    }
  }

  private onMessage(data: unknown): void {
    const b = toBytes(data);
    if (!b) {
      this.emit({ type: "error", error: new ServerError(ErrorCode.MALFORMED, "text message from the server", 0n) });
      return;
    }
    let pkt: ServerPacket;
    try {
      pkt = fromBinary(ServerPacketSchema, b);
    } catch (err) {
      this.emit({ type: "error", error: new ProtocolError("undecodable server packet", { cause: err }) });
      return;
    }
    const seq = pkt.ackSeq;
    const body = pkt.body;
    switch (body.case) {
      case "welcome": {
        this.settle(seq)?.resolve(body.value);
        return;
      }
      case "ack": {
        const p = this.settle(seq);
        if (!p) return;
        if (p.kind === "join") this.zone = p.zone;
        if (p.kind !== "hello" && p.kind !== "ping" && p.kind !== "world") this.remember(seq, p.kind);
        p.resolve({ seq, streamSeq: body.value.streamSeq, duplicate: body.value.duplicate } satisfies CommandResult);
        return;
      }
      case "busy": {
        // Not accepted: the protocol's rule is to resend the same packet (same
        // seq) after retry_after_ms; busyRetries times, then the caller decides.
        const q = this.pending.get(seq);
        if (q && q.kind !== "hello" && (q.busy ?? 0) < this.opts.busyRetries) {
          q.busy = (q.busy ?? 0) + 1;
          setTimeout(() => {
            if (this.pending.get(seq) === q && this.stateValue === "open") this.write(q);
          }, Math.max(body.value.retryAfterMs, 10));
          return;
        }
        this.settle(seq)?.reject(new BusyError(seq, body.value.retryAfterMs));
        return;
      }
      case "error": {
        if (body.value.code === ErrorCode.OUTCOME_UNKNOWN) {
          // The gateway could not learn whether the command was stored: the
          // rule is to resend it with the same seq (deduplicated, applied at
          // most once). A few times, then the caller gets the error.
          const q = this.pending.get(seq);
          if (q && (q.retries ?? 0) < outcomeRetries) {
            q.retries = (q.retries ?? 0) + 1;
            setTimeout(() => {
              if (this.pending.get(seq) === q && this.stateValue === "open") this.write(q);
            }, 50 * q.retries);
            return;
          }
        }
        const err = serverError(body.value.code, body.value.message, seq);
        const p = seq !== 0n ? this.settle(seq) : undefined;
        if (err instanceof RejectedError) {
          const kind = (p?.kind as CommandKind | undefined) ?? this.acked.get(seq) ?? "unknown";
          this.emit({ type: "rejected", seq, kind, error: err });
          p?.reject(err);
          return;
        }
        if (p) p.reject(err);
        else this.emit({ type: "error", error: err });
        return;
      }
      case "pong": {
        this.settle(seq)?.resolve(body.value);
        return;
      }
      case "worldInfo": {
        this.world = body.value;
        this.settle(seq)?.resolve(body.value);
        this.emit({ type: "world", world: body.value });
        return;
      }
      case "update": {
        const u = body.value.zoneUpdate;
        if (u) this.onZoneUpdate(u);
        return;
      }
      case "updates": {
        for (const u of body.value.zoneUpdates) this.onZoneUpdate(u);
        return;
      }
      case "zoneChanged": {
        this.zone = body.value.zone;
        this.emit({ type: "zoneChanged", zoneChanged: body.value });
        return;
      }
      default:
        return; // a packet type newer than this SDK: ignore (protobuf rules)
    }
  }

  private onZoneUpdate(u: ZoneUpdate): void {
    const me = this.playerId;
    for (const e of u.entities) if (e.id === me) this.self = e;
    this.emit({ type: "update", update: u });
  }

  private remember(seq: bigint, kind: CommandKind): void {
    this.acked.set(seq, kind);
    if (this.acked.size > ackedMemory) {
      const first = this.acked.keys().next().value;
      if (first !== undefined) this.acked.delete(first);
    }
  }

  private onClose(ev: { code: number; reason: string } | undefined): void {
    this.sock = undefined;
    if (this.userClosed) return;
    const err = new ConnectError(`connection lost (${ev?.code ?? "?"} ${ev?.reason ?? ""})`);
    if (!this.reconnectOpts || !this.welcome) {
      this.finish(err);
      return;
    }
    this.setState("reconnecting", err);
    void this.reconnectLoop();
  }

  private async reconnectLoop(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    const ro = this.reconnectOpts!;
    let delay = ro.initialDelayMs;
    let lastErr: Error = new ConnectError("reconnect failed");
    let fresh = false;
    try {
      for (let attempt = 1; attempt <= ro.maxAttempts && !this.userClosed; attempt++) {
        await sleep(delay * (0.75 + Math.random() * 0.5));
        if (this.userClosed) return;
        try {
          await this.open(!fresh);
          if (fresh) {
            // A new session has no zone: join the one the player was in.
            const zone = this.zone;
            if (zone) this.join(zone).catch(() => {});
          } else {
            this.resumes++;
          }
          return;
        } catch (err) {
          lastErr = err as Error;
          if (err instanceof ServerError && !err.retryable) {
            if (fresh) break; // the credentials themselves are refused: stop.
            // The session cannot be resumed (expired, revoked): log in
            // afresh with the original credentials. The unanswered commands
            // belonged to the old session; their fate is unknown.
            fresh = true;
            this.failPending(new SessionLostError(`session could not be resumed: ${err.message}`, { cause: err }));
            continue;
          }
        }
        delay = Math.min(delay * 2, ro.maxDelayMs);
      }
      if (!this.userClosed) this.finish(lastErr);
    } finally {
      this.reconnecting = false;
    }
  }

  private failPending(err: Error): void {
    for (const p of [...this.pending.values()]) {
      if (p.kind === "hello") continue;
      this.settle(p.seq);
      p.reject(err);
    }
  }

  private finish(err: Error): void {
    if (this.stateValue === "closed") return;
    this.userClosed = true;
    const s = this.sock;
    this.sock = undefined;
    if (s) safeClose(s);
    for (const p of [...this.pending.values()]) {
      this.settle(p.seq);
      p.reject(err instanceof ClosedError ? err : new ClosedError(err.message, { cause: err }));
    }
    this.setState("closed", err instanceof ClosedError && err.message === "client closed" ? undefined : err);
    for (const s of this.sinks) s.end();
    this.sinks.clear();
  }

  private setState(state: ConnState, error?: Error): void {
    this.stateValue = state;
    this.emit(error ? { type: "state", state, error } : { type: "state", state });
  }

  private emit(ev: ClientEvent): void {
    for (const s of this.sinks) s.push(ev);
    const set = this.handlers.get(ev.type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(ev);
      } catch (err) {
        // A handler's bug must not break the connection; report it like any uncaught error.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

function encode(seq: bigint, body: Body): Uint8Array {
  return toBinary(ClientPacketSchema, create(ClientPacketSchema, { seq, body: body as any }));
}

function safeClose(s: SocketLike): void {
  try {
    s.close();
  } catch {
    /* already closed */
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function now(): number {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

/** EventSink is one events() iterator: a bounded queue of events. */
class EventSink implements AsyncIterableIterator<ClientEvent> {
  dropped = 0;
  private buf: ClientEvent[] = [];
  private waiter: ((r: IteratorResult<ClientEvent>) => void) | undefined;
  private ended = false;

  constructor(
    private readonly cap: number,
    private readonly detach: () => void,
  ) {}

  push(ev: ClientEvent): void {
    if (this.ended) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: ev, done: false });
      return;
    }
    this.buf.push(ev);
    if (this.buf.length > this.cap) {
      this.buf.shift();
      this.dropped++;
    }
  }

  end(): void {
    this.ended = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<ClientEvent>> {
    const ev = this.buf.shift();
    if (ev) return Promise.resolve({ value: ev, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((r) => (this.waiter = r));
  }

  return(): Promise<IteratorResult<ClientEvent>> {
    this.end();
    this.buf = [];
    this.detach();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
