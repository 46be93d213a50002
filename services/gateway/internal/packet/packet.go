// Package packet decodes and validates client packets: the stateless half of
// the gateway's input checks (the stateful half - session, zone, sequence,
// rate - lives with the connection). Every rejection carries a stable
// schema.ErrorCode so the client can tell what was wrong.
package packet

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// Error is a rejection with its wire code.
type Error struct {
	Code schema.ErrorCode
	Msg  string
}

func (e *Error) Error() string { return e.Code.String() + ": " + e.Msg }

func errf(code schema.ErrorCode, format string, a ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// Limits are the validation bounds.
type Limits struct {
	Map     worldmap.Map
	MaxChat int // bytes of chat text; default 256
	MaxName int // bytes of a player name; default 32
}

func (l Limits) withDefaults() Limits {
	if l.MaxChat <= 0 {
		l.MaxChat = 256
	}
	if l.MaxName <= 0 {
		l.MaxName = 32
	}
	if l.Map.Cols == 0 {
		l.Map = worldmap.Default()
	}
	return l
}

var unmarshal = proto.UnmarshalOptions{DiscardUnknown: true}

// Decode parses one frame into pkt (which is reset first).
func Decode(frame []byte, pkt *schema.ClientPacket) *Error {
	pkt.Reset()
	if err := unmarshal.Unmarshal(frame, pkt); err != nil {
		return errf(schema.ErrorCode_ERROR_CODE_MALFORMED, "packet does not decode: %v", err)
	}
	if pkt.Body == nil {
		return errf(schema.ErrorCode_ERROR_CODE_MALFORMED, "packet has no body")
	}
	return nil
}

// Validate checks what can be checked from the packet alone.
func Validate(pkt *schema.ClientPacket, lim Limits) *Error {
	lim = lim.withDefaults()
	switch b := pkt.Body.(type) {
	case *schema.ClientPacket_Hello:
		h := b.Hello
		if h.Token == "" && h.Name == "" {
			return errf(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "hello needs a token (or a name in dev mode)")
		}
		if h.Name != "" && (len(h.Name) > lim.MaxName || !wire.ValidToken(h.Name)) {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "name must be 1..%d characters of [A-Za-z0-9_-]", lim.MaxName)
		}
		if h.ResumeSession != "" && !wire.ValidToken(h.ResumeSession) {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "resume_session is not a session id")
		}
		return nil
	case *schema.ClientPacket_Ping, *schema.ClientPacket_WorldInfo:
		return nil
	}
	if pkt.Seq == 0 {
		return errf(schema.ErrorCode_ERROR_CODE_INVALID, "seq must be > 0 on commands")
	}
	switch b := pkt.Body.(type) {
	case *schema.ClientPacket_Join:
		if !lim.Map.Has(b.Join.Zone) {
			return errf(schema.ErrorCode_ERROR_CODE_UNKNOWN_ZONE, "unknown zone %q", trunc(b.Join.Zone))
		}
	case *schema.ClientPacket_Leave:
	case *schema.ClientPacket_Move:
		if e := checkCoord(b.Move.X, lim.Map.ZoneSize); e != nil {
			return e
		}
		if e := checkCoord(b.Move.Y, lim.Map.ZoneSize); e != nil {
			return e
		}
	case *schema.ClientPacket_Chat:
		t := b.Chat.Text
		switch {
		case strings.TrimSpace(t) == "":
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "empty chat")
		case len(t) > lim.MaxChat:
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "chat of %d bytes exceeds %d", len(t), lim.MaxChat)
		case !utf8.ValidString(t):
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "chat is not valid UTF-8")
		}
		if _, ok := schema.ChatScope_name[int32(b.Chat.Scope)]; !ok {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "unknown chat scope %d", b.Chat.Scope)
		}
	case *schema.ClientPacket_Attack:
		if !wire.ValidToken(b.Attack.TargetId) {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "attack target must be an entity id")
		}
	default:
		return errf(schema.ErrorCode_ERROR_CODE_MALFORMED, "unknown packet body %T", b)
	}
	return nil
}

// checkCoord accepts finite coordinates within one zone of the zone's bounds
// (a move just past an edge is a zone crossing the world resolves).
func checkCoord(v, size float32) *Error {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return errf(schema.ErrorCode_ERROR_CODE_INVALID, "position is not a finite number")
	}
	if v < -size || v >= 2*size {
		return errf(schema.ErrorCode_ERROR_CODE_INVALID, "position %v is far outside the zone", v)
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
