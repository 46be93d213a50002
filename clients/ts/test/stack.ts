// A real one-process Realmstream stack for the tests: `realmstream run` built
// from this checkout, on free ports, with a temporary data directory.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** repoRoot is the checkout's root (clients/ts/test -> ../../..). */
export const repoRoot = resolve(import.meta.dirname, "../../..");

export interface Stack {
  wsUrl: string;
  wsPort: number;
  tcpAddr: string;
  httpBase: number;
  /** playUrl is the demo page. */
  playUrl: string;
  log: () => string;
  stop: () => Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => res(typeof a === "object" && a ? a.port : 0));
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

/** freeRun finds n consecutive free ports (the stack's ops ports are --http-base + 0..4). */
async function freeRun(n: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    let ok = true;
    for (let k = 0; k < n && ok; k++) ok = await portFree(base + k);
    if (ok) return base;
  }
  throw new Error("no run of free ports");
}

let built: string | undefined;

/**
 * buildStack builds the realmstream binary once per test process (go's build
 * cache makes it quick), or uses $REALMSTREAM_BIN when set.
 */
export function buildStack(): string {
  if (built) return built;
  if (process.env.REALMSTREAM_BIN) return (built = process.env.REALMSTREAM_BIN);
  const dir = join(tmpdir(), "realmstream-ts-test-bin");
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, "realmstream");
  execFileSync("go", ["build", "-o", bin, "./stack/cmd/realmstream"], { cwd: repoRoot, stdio: "inherit" });
  built = bin;
  return bin;
}

/** startStack runs `realmstream run` and resolves when it says it is running. */
export async function startStack(opts: { bots?: number; extraArgs?: string[] } = {}): Promise<Stack> {
  const bin = buildStack();
  const dataDir = mkdtempSync(join(tmpdir(), "realmstream-ts-"));
  const tcpPort = await freePort();
  const wsPort = await freePort();
  const httpBase = await freeRun(5);
  const args = [
    "run",
    "--data-dir", dataDir,
    "--nats-port", "-1",
    "--tcp-addr", `127.0.0.1:${tcpPort}`,
    "--ws-addr", `127.0.0.1:${wsPort}`,
    "--http-base", String(httpBase),
    "--bots", String(opts.bots ?? 0),
    "--log-level", "warn",
    ...(opts.extraArgs ?? []),
  ];
  const child: ChildProcess = spawn(bin, args, { cwd: dataDir, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const onData = (b: Buffer) => {
    out += b.toString();
    if (out.length > 1 << 20) out = out.slice(-(1 << 19));
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`stack not running after 90s:\n${out}`)), 90000);
    const check = () => {
      if (out.includes("Realmstream is running.")) {
        clearTimeout(t);
        child.stdout!.off("data", check);
        res();
      }
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(t);
      rej(new Error(`stack exited with ${code}:\n${out}`));
    });
  });
  return {
    wsUrl: `ws://127.0.0.1:${wsPort}/`,
    wsPort,
    tcpAddr: `127.0.0.1:${tcpPort}`,
    httpBase,
    playUrl: `http://127.0.0.1:${httpBase + 4}/play/`,
    log: () => out,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 20000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** eventually polls cond until it is true or the timeout passes. */
export async function eventually(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
