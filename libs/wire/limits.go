package wire

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Input limits of client packets: the one source of every bound on what a
// client may send. The gateway refuses input that breaks them before it is
// acked (services/gateway/internal/packet uses the Check functions below),
// and the world's rules use the same values (services/world/internal/rules),
// so whatever the gateway accepts, only game state (speed, obstacles, range,
// cooldowns, who is where) can refuse. Before this file the gateway accepted
// chat up to 256 bytes and the world 200: the client got Ack, then REJECTED
// (issue 10 #9). The gateway announces them in Welcome.limits.
//
// The frame limit is DefaultMaxFrame (frame.go); a gateway may be configured
// with another (--max-frame), which it announces in Welcome.limits too.
const (
	// MaxChatBytes bounds a chat line's text in bytes (UTF-8).
	MaxChatBytes = 200
	// MaxNameBytes bounds a player name (Hello.name) in bytes.
	MaxNameBytes = 32
	// MaxIDBytes bounds ids that become subject tokens or map keys: zone,
	// entity (attack target) and session ids. Same bound as ValidToken.
	MaxIDBytes = 64
)

// Errors of the Check functions; each is wrapped with the offending detail.
var (
	ErrEmptyChat    = errors.New("empty chat")
	ErrChatTooLong  = errors.New("chat too long")
	ErrChatNotUTF8  = errors.New("chat is not valid UTF-8")
	ErrBadName      = errors.New("bad name")
	ErrBadID        = errors.New("bad id")
	ErrNotFinite    = errors.New("position is not a finite number")
	ErrFarOutOfZone = errors.New("position is far outside the zone")
)

// CheckChat reports whether text is an acceptable chat line: not blank, at
// most MaxChatBytes bytes, valid UTF-8.
func CheckChat(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return ErrEmptyChat
	case len(text) > MaxChatBytes:
		return fmt.Errorf("%w: %d bytes exceeds %d", ErrChatTooLong, len(text), MaxChatBytes)
	case !utf8.ValidString(text):
		return ErrChatNotUTF8
	}
	return nil
}

// CheckName reports whether name is an acceptable player name: 1..MaxNameBytes
// characters of [A-Za-z0-9_-].
func CheckName(name string) error {
	if len(name) > MaxNameBytes || !ValidToken(name) {
		return fmt.Errorf("%w: name must be 1..%d characters of [A-Za-z0-9_-]", ErrBadName, MaxNameBytes)
	}
	return nil
}

// CheckID reports whether id is an acceptable zone, entity or session id.
func CheckID(id string) error {
	if len(id) > MaxIDBytes || !ValidToken(id) {
		return fmt.Errorf("%w: want 1..%d characters of [A-Za-z0-9_-]", ErrBadID, MaxIDBytes)
	}
	return nil
}

// CheckCoord reports whether v is an acceptable move coordinate in a zone of
// side zoneSize: finite, and within one zone of the zone's bounds
// ([-zoneSize, 2*zoneSize)); a move just past an edge is a zone crossing the
// world resolves, and whether a neighbour exists there is map state.
func CheckCoord(v, zoneSize float32) error {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return ErrNotFinite
	}
	if v < -zoneSize || v >= 2*zoneSize {
		return fmt.Errorf("%w: %v", ErrFarOutOfZone, v)
	}
	return nil
}
