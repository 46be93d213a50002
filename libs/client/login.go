package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/realmstream/realmstream/libs/wire"
)

// LoginRequest is the body of the gateway's POST /v1/session: exactly one of
// DeviceID and CustomID (docs/clients.md).
type LoginRequest = wire.LoginRequest

// LoginResponse is a successful login: send Token in Hello.token.
type LoginResponse = wire.LoginResponse

// LoginError is a refused login: the HTTP status and the endpoint's code
// (invalid_argument, not_found, revoked, unavailable, ...).
type LoginError struct {
	Status  int
	Code    string
	Message string
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("client: login refused (%d %s): %s", e.Status, e.Code, e.Message)
}

// Login calls POST <base>/v1/session, where base is the gateway's HTTP side:
// "http://host:7001" (the WebSocket listener) or a "ws://" address of it.
func Login(ctx context.Context, base string, req LoginRequest) (*LoginResponse, error) {
	base = strings.TrimSuffix(base, "/")
	switch {
	case strings.HasPrefix(base, "ws://"):
		base = "http://" + strings.TrimPrefix(base, "ws://")
	case strings.HasPrefix(base, "wss://"):
		base = "https://" + strings.TrimPrefix(base, "wss://")
	case !strings.Contains(base, "://"):
		base = "http://" + base
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+wire.LoginPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("client: login: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("client: login: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("client: login: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e wire.LoginErrorBody
		_ = json.Unmarshal(b, &e)
		return nil, &LoginError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	var out LoginResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("client: login: bad answer: %w", err)
	}
	return &out, nil
}
