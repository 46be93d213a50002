package wire

// The login endpoint's JSON (the gateway's POST /v1/session, docs/clients.md):
// what the gateway answers and libs/client (and any other client) reads.

// LoginPath is the endpoint of the login on the gateway's WebSocket listener.
const LoginPath = "/v1/session"

// LoginRequest is the body of POST /v1/session: exactly one of DeviceID and
// CustomID.
type LoginRequest struct {
	DeviceID string `json:"device_id,omitempty"`
	CustomID string `json:"custom_id,omitempty"`
	Create   *bool  `json:"create,omitempty"` // nil: true
	Name     string `json:"name,omitempty"`
}

// LoginResponse answers a successful login: the client sends Token in
// Hello.token.
type LoginResponse struct {
	Token         string `json:"token"`
	PlayerID      string `json:"player_id"`
	Name          string `json:"name"`
	Created       bool   `json:"created"`
	ExpiresAt     string `json:"expires_at"`
	ExpiresAtUnix int64  `json:"expires_at_unix"`
}

// LoginErrorBody is the body of a refused login: a stable code
// (invalid_argument, not_found, revoked, unavailable, too_large,
// method_not_allowed) and a message.
type LoginErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
