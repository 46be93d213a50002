package wire

// Accounts and sessions: what the gateways and persist agree on for logins,
// shared session state and revocation.

// AccountsAuthenticate is persist's request/reply subject that finds (or
// creates) the account of a device or custom id: AuthenticateRequest in,
// AuthenticateReply out, JSON. Persist replicas answer in one queue group.
const AccountsAuthenticate = "persist.accounts.authenticate"

// Account id kinds (AuthenticateRequest.Kind).
const (
	AccountKindDevice = "device"
	AccountKindCustom = "custom"
)

// AuthenticateRequest asks persist for the account of (Kind, ID).
type AuthenticateRequest struct {
	Kind   string `json:"kind"`           // AccountKindDevice or AccountKindCustom
	ID     string `json:"id"`             // the device or custom id
	Create bool   `json:"create"`         // create the account when the id is new
	Name   string `json:"name,omitempty"` // display name of a new account
}

// AuthenticateReply answers AuthenticateRequest. Code is "" on success,
// "not_found" (no account and Create false) or "invalid_argument"/"internal".
type AuthenticateReply struct {
	PlayerID string `json:"player_id,omitempty"`
	Name     string `json:"name,omitempty"`
	Created  bool   `json:"created,omitempty"`
	Code     string `json:"code,omitempty"`
	Error    string `json:"error,omitempty"`
}

// HeaderCmdDigest carries the gateway's digest of a command's client packet
// (without its seq), hex: when JetStream calls a publish a duplicate, the
// gateway compares it with the stored command's to tell a resend from a
// seq reused for another command.
const HeaderCmdDigest = "Realm-Cmd-Digest"

// NATS KV buckets of the session layer.
const (
	// KVSessions holds one record per client session (key: the session
	// id), shared by every gateway: the session's player, start, zone and
	// the highest client seq accepted, so a resume on any gateway continues
	// correctly. Entries expire with the bucket's TTL (the session lifetime).
	KVSessions = "realm_sessions"
	// KVRevoked is the deny list checked at every Hello and resume: keys
	// player.<player>, session.<session>, token.<jti>; the value of a
	// player key is the RFC 3339 revocation time (tokens issued at or before
	// it are refused).
	KVRevoked = "realm_revoked"
)
