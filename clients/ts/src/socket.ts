// The WebSocket the SDK uses: the browser's (or Node's global one, Node >= 22),
// else the `ws` package in Node 20. Only the WHATWG subset below is used, which
// both provide.

/** SocketLike is the part of the WHATWG WebSocket interface the SDK needs. */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** WebSocketCtor constructs a SocketLike (globalThis.WebSocket, ws.WebSocket, ...). */
export type WebSocketCtor = new (url: string) => SocketLike;

/** resolveWebSocket picks the given constructor, the global WebSocket, or the `ws` package. */
export async function resolveWebSocket(given?: WebSocketCtor): Promise<WebSocketCtor> {
  if (given) return given;
  const g = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (g) return g;
  // Node 20 has no global WebSocket: load `ws` (a dependency of this package).
  // Bundlers for the browser mark it external; this line never runs there.
  const mod = (await import("ws")) as unknown as { WebSocket?: WebSocketCtor; default?: WebSocketCtor };
  const ctor = mod.WebSocket ?? mod.default;
  if (!ctor) throw new Error("realmstream: no WebSocket implementation (install the ws package)");
  return ctor;
}

/** toBytes turns a received binary message (ArrayBuffer, Buffer, Blob-less) into bytes. */
export function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined; // text message or Blob: not a Realmstream packet
}
