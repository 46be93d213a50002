// Package packet decodes and validates client packets: the stateless half of
// the gateway's input checks (the stateful half - session, zone, sequence,
// rate - lives with the connection). Every rejection carries a stable
// schema.ErrorCode so the client can tell what was wrong.
package packet

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
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

// Limits are the validation bounds. The input limits themselves live in
// libs/wire (limits.go), shared with the world's rules; MaxChat and MaxName
// report them (for Welcome.limits) and may only lower them.
type Limits struct {
	Map     worldmap.Map
	MaxChat int // bytes of chat text; default (and maximum) wire.MaxChatBytes
	MaxName int // bytes of a player name; default (and maximum) wire.MaxNameBytes
}

// NewLimits returns the limits on map m with every default filled in.
func NewLimits(m worldmap.Map) Limits { return Limits{Map: m}.withDefaults() }

func (l Limits) withDefaults() Limits {
	if l.MaxChat <= 0 || l.MaxChat > wire.MaxChatBytes {
		l.MaxChat = wire.MaxChatBytes
	}
	if l.MaxName <= 0 || l.MaxName > wire.MaxNameBytes {
		l.MaxName = wire.MaxNameBytes
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

// PeekSeq returns the seq of a frame without decoding it: the last varint
// field 1 before the first field that does not parse (0 if none). It lets an
// answer to an undecodable packet, or to one refused before decoding (rate
// limit), carry the seq it answers (issue 10 #8).
func PeekSeq(frame []byte) uint64 {
	var seq uint64
	for len(frame) > 0 {
		num, typ, n := protowire.ConsumeTag(frame)
		if n < 0 {
			break
		}
		frame = frame[n:]
		if num == 1 && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(frame)
			if m < 0 {
				break
			}
			seq, frame = v, frame[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, frame)
		if m < 0 {
			break
		}
		frame = frame[m:]
	}
	return seq
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
		if h.Name != "" && (len(h.Name) > lim.MaxName || wire.CheckName(h.Name) != nil) {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "name must be 1..%d characters of [A-Za-z0-9_-]", lim.MaxName)
		}
		if h.ResumeSession != "" && wire.CheckID(h.ResumeSession) != nil {
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
		if err := wire.CheckChat(t); err != nil {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "%v", err)
		}
		if len(t) > lim.MaxChat {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "chat of %d bytes exceeds %d", len(t), lim.MaxChat)
		}
		if _, ok := schema.ChatScope_name[int32(b.Chat.Scope)]; !ok {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "unknown chat scope %d", b.Chat.Scope)
		}
	case *schema.ClientPacket_Attack:
		if wire.CheckID(b.Attack.TargetId) != nil {
			return errf(schema.ErrorCode_ERROR_CODE_INVALID, "attack target must be an entity id")
		}
	default:
		return errf(schema.ErrorCode_ERROR_CODE_MALFORMED, "unknown packet body %T", b)
	}
	return nil
}

// checkCoord accepts finite coordinates within one zone of the zone's bounds
// (wire.CheckCoord: a move just past an edge is a zone crossing the world
// resolves).
func checkCoord(v, size float32) *Error {
	if err := wire.CheckCoord(v, size); err != nil {
		return errf(schema.ErrorCode_ERROR_CODE_INVALID, "%v", err)
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
