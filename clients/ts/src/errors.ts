import { ErrorCode } from "./gen/client_pb.js";

/** RealmError is the base class of every error the SDK throws or rejects with. */
export class RealmError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** errorCodeName is the short name of a wire error code, e.g. "RATE_LIMITED". */
export function errorCodeName(code: ErrorCode): string {
  return ErrorCode[code] ?? `CODE_${code}`;
}

/**
 * ServerError is an Error packet that answered a command: the command was NOT
 * accepted (except REJECTED, see RejectedError). code is the stable wire code.
 */
export class ServerError extends RealmError {
  readonly code: ErrorCode;
  readonly codeName: string;
  readonly serverMessage: string;
  /** seq is the client seq the error answers (0n: the gateway could not tell). */
  readonly seq: bigint;

  constructor(code: ErrorCode, serverMessage: string, seq: bigint) {
    super(`${errorCodeName(code)}: ${serverMessage} (seq ${seq})`);
    this.code = code;
    this.codeName = errorCodeName(code);
    this.serverMessage = serverMessage;
    this.seq = seq;
  }

  /** retryable says whether resending the same command later can succeed. */
  get retryable(): boolean {
    return (
      this.code === ErrorCode.RATE_LIMITED ||
      this.code === ErrorCode.INTERNAL ||
      this.code === ErrorCode.OUTCOME_UNKNOWN ||
      this.code === ErrorCode.SHUTTING_DOWN
    );
  }
}

/**
 * RejectedError: the command was accepted into the command stream but the
 * world's rules refused it (too fast, blocked by an obstacle, target out of
 * range, ...). It arrives as Error REJECTED after, or rarely before, the Ack.
 */
export class RejectedError extends ServerError {
  constructor(serverMessage: string, seq: bigint) {
    super(ErrorCode.REJECTED, serverMessage, seq);
  }
}

/** BusyError: backpressure, the command was NOT accepted; resend it after retryAfterMs. */
export class BusyError extends RealmError {
  readonly seq: bigint;
  readonly retryAfterMs: number;
  constructor(seq: bigint, retryAfterMs: number) {
    super(`gateway busy: command ${seq} not accepted, retry after ${retryAfterMs} ms`);
    this.seq = seq;
    this.retryAfterMs = retryAfterMs;
  }
}

/** TimeoutError: no answer within the command timeout. The command may or may not have been accepted. */
export class TimeoutError extends RealmError {
  readonly seq: bigint;
  constructor(seq: bigint, ms: number) {
    super(`no answer to seq ${seq} within ${ms} ms`);
    this.seq = seq;
  }
}

/** ClosedError: the client was closed (by close(), or reconnecting gave up); pending commands fail with it. */
export class ClosedError extends RealmError {}

/** ConnectError: the WebSocket could not be opened, or closed before the Welcome. */
export class ConnectError extends RealmError {}

/**
 * SessionLostError: the session could not be resumed after a drop (expired,
 * revoked) and the client logged in afresh; the commands that were waiting
 * for an answer may or may not have been applied.
 */
export class SessionLostError extends ConnectError {}

/** ProtocolError: the server sent something the SDK cannot decode. */
export class ProtocolError extends RealmError {}

/** LoginError: POST /v1/session failed. status is the HTTP status (0: no answer). */
export class LoginError extends RealmError {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(`login failed (${status} ${code}): ${message}`);
    this.status = status;
    this.code = code;
  }
}

/** serverError builds the typed error of an Error packet. */
export function serverError(code: ErrorCode, message: string, seq: bigint): ServerError {
  return code === ErrorCode.REJECTED ? new RejectedError(message, seq) : new ServerError(code, message, seq);
}
