// Package @realmstream/client: the TypeScript SDK of a Realmstream game client.
export {
  RealmClient,
  PROTOCOL_VERSION,
  SDK_NAME,
  SDK_VERSION,
  type ClientOptions,
  type ClientEvent,
  type CommandKind,
  type CommandResult,
  type ConnState,
  type ReconnectOptions,
} from "./client.js";
export {
  RealmError,
  ServerError,
  RejectedError,
  BusyError,
  TimeoutError,
  ClosedError,
  ConnectError,
  SessionLostError,
  ProtocolError,
  LoginError,
  errorCodeName,
} from "./errors.js";
export { login, loginUrl, type LoginRequest, type Session } from "./login.js";
export { resolveWebSocket, type SocketLike, type WebSocketCtor } from "./socket.js";
export * from "./gen/client_pb.js";
