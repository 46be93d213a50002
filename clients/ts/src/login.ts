import { LoginError } from "./errors.js";

/** LoginRequest is the body of POST /v1/session (see docs/clients.md). Give exactly one of deviceId and customId. */
export interface LoginRequest {
  deviceId?: string;
  customId?: string;
  /** create the account when the id is new (default true). */
  create?: boolean;
  /** display name of a new account. */
  name?: string;
}

/** Session is the answer of POST /v1/session. */
export interface Session {
  token: string;
  playerId: string;
  name: string;
  created: boolean;
  expiresAt: Date;
}

/**
 * loginUrl is the login endpoint of a gateway: its WebSocket listener also
 * serves POST /v1/session, so ws://host:7001/ becomes http://host:7001/v1/session.
 */
export function loginUrl(gateway: string): string {
  const u = new URL(gateway);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  u.pathname = "/v1/session";
  u.search = "";
  u.hash = "";
  return u.toString();
}

/**
 * login authenticates a device id or custom id at the gateway (`gateway` is
 * its ws:// or http:// URL) and returns a token for RealmClient.connect.
 * Failures are LoginError with the HTTP status and the error code.
 */
export async function login(gateway: string, req: LoginRequest, fetchImpl: typeof fetch = globalThis.fetch): Promise<Session> {
  const body: Record<string, unknown> = { create: req.create ?? true };
  if (req.deviceId !== undefined) body.device_id = req.deviceId;
  if (req.customId !== undefined) body.custom_id = req.customId;
  if (req.name !== undefined) body.name = req.name;
  let res: Response;
  try {
    res = await fetchImpl(loginUrl(gateway), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new LoginError(0, "unreachable", String(err));
  }
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    throw new LoginError(res.status, "bad_response", text.slice(0, 200));
  }
  if (!res.ok) {
    throw new LoginError(res.status, json?.error?.code ?? "unknown", json?.error?.message ?? text.slice(0, 200));
  }
  if (typeof json?.token !== "string" || json.token === "") {
    throw new LoginError(res.status, "bad_response", "no token in the answer");
  }
  return {
    token: json.token,
    playerId: String(json.player_id ?? ""),
    name: String(json.name ?? ""),
    created: Boolean(json.created),
    expiresAt: new Date(json.expires_at ?? (json.expires_at_unix ?? 0) * 1000),
  };
}
