package packet

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/realmstream/realmstream/libs/schema"
)

// Decoder decodes client packets as Decode does, without reflection and
// without allocating for the packets a game sends all the time (Move, Chat,
// Join, Leave, Attack, Ping: only their strings are allocated): it reuses
// one body message of each kind (issue 12 #4: the reflective decode was a
// quarter of a reader's time per command). A packet it cannot read simply
// (a second body, an unknown or mistyped field, a Hello, invalid UTF-8, a
// truncated field) goes to Decode, so the result and the error are
// always Decode's. FuzzDecoder holds it to proto.Unmarshal.
//
// What Decoder.Decode stores in pkt is valid until its next call; one
// connection's reader owns one Decoder. Body gives the fast path's body
// bytes, which a command can carry as they are (the reader's
// appendCommand).
type Decoder struct {
	move   schema.ClientPacket_Move
	chat   schema.ClientPacket_Chat
	join   schema.ClientPacket_Join
	leave  schema.ClientPacket_Leave
	attack schema.ClientPacket_Attack
	ping   schema.ClientPacket_Ping

	moveMsg   schema.Move
	chatMsg   schema.Chat
	joinMsg   schema.Join
	leaveMsg  schema.Leave
	attackMsg schema.Attack
	pingMsg   schema.Ping

	raw   []byte // the body read by the last fast decode (slices its frame)
	rawOK bool
}

// Decode is Decode(frame, pkt).
func (d *Decoder) Decode(frame []byte, pkt *schema.ClientPacket) *Error {
	pkt.Reset()
	if d.raw, d.rawOK = d.fast(frame, pkt); d.rawOK {
		return nil
	}
	d.raw = nil
	return Decode(frame, pkt)
}

// Body returns the encoded body message of the packet the last Decode
// read, when it was read without reflection: then the packet held that one
// body and only fields its message declares, with their wire types, so the
// bytes decode to exactly the decoded body. ok is false otherwise. The
// bytes are the frame's: valid while it is.
func (d *Decoder) Body() (raw []byte, ok bool) { return d.raw, d.rawOK }

// fast reads frame into pkt if it is a seq and one body of the common kinds
// with only their own fields, and returns the body's bytes; ok false (pkt
// to be reset by Decode) otherwise.
func (d *Decoder) fast(frame []byte, pkt *schema.ClientPacket) (body []byte, ok bool) {
	var seq uint64
	var bodyNum protowire.Number
	for len(frame) > 0 {
		num, typ, n := protowire.ConsumeTag(frame)
		if n < 0 {
			return nil, false
		}
		frame = frame[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(frame)
			if m < 0 {
				return nil, false
			}
			seq, frame = v, frame[m:]
		case num >= 11 && num <= 16 && typ == protowire.BytesType && bodyNum == 0:
			v, m := protowire.ConsumeBytes(frame)
			if m < 0 {
				return nil, false
			}
			body, bodyNum, frame = v, num, frame[m:]
		default:
			return nil, false
		}
	}
	switch bodyNum {
	case 11:
		zone, ok := onlyString(body)
		if !ok {
			return nil, false
		}
		d.joinMsg.Reset()
		d.joinMsg.Zone = zone
		d.join.Join = &d.joinMsg
		pkt.Body = &d.join
	case 12:
		if len(body) != 0 {
			return nil, false
		}
		d.leaveMsg.Reset()
		d.leave.Leave = &d.leaveMsg
		pkt.Body = &d.leave
	case 13:
		m := &d.moveMsg
		m.Reset()
		for b := body; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 || typ != protowire.Fixed32Type || (num != 1 && num != 2) {
				return nil, false
			}
			v, k := protowire.ConsumeFixed32(b[n:])
			if k < 0 {
				return nil, false
			}
			b = b[n+k:]
			if num == 1 {
				m.X = math.Float32frombits(v)
			} else {
				m.Y = math.Float32frombits(v)
			}
		}
		d.move.Move = m
		pkt.Body = &d.move
	case 14:
		m := &d.chatMsg
		m.Reset()
		for b := body; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			switch {
			case num == 1 && typ == protowire.BytesType:
				s, k := protowire.ConsumeBytes(b)
				if k < 0 || !utf8.Valid(s) {
					return nil, false
				}
				m.Text, b = string(s), b[k:]
			case num == 2 && typ == protowire.VarintType:
				v, k := protowire.ConsumeVarint(b)
				if k < 0 {
					return nil, false
				}
				m.Scope, b = schema.ChatScope(int32(v)), b[k:]
			default:
				return nil, false
			}
		}
		d.chat.Chat = m
		pkt.Body = &d.chat
	case 15:
		target, ok := onlyString(body)
		if !ok {
			return nil, false
		}
		d.attackMsg.Reset()
		d.attackMsg.TargetId = target
		d.attack.Attack = &d.attackMsg
		pkt.Body = &d.attack
	case 16:
		m := &d.pingMsg
		m.Reset()
		for b := body; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 || num != 1 || typ != protowire.VarintType {
				return nil, false
			}
			v, k := protowire.ConsumeVarint(b[n:])
			if k < 0 {
				return nil, false
			}
			m.ClientTimeNs, b = int64(v), b[n+k:]
		}
		d.ping.Ping = m
		pkt.Body = &d.ping
	default:
		return nil, false // no body
	}
	pkt.Seq = seq
	return body, true
}

// onlyString reads a body whose only field is field 1, a string (Join's
// zone, Attack's target), repeats allowed (the last wins, as in
// proto.Unmarshal); "" if absent.
func onlyString(body []byte) (string, bool) {
	var last []byte
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return "", false
		}
		s, k := protowire.ConsumeBytes(body[n:])
		if k < 0 || !utf8.Valid(s) {
			return "", false
		}
		last, body = s, body[n+k:]
	}
	return string(last), true
}
