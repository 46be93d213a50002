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
// connection's reader owns one Decoder.
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
}

// Decode is Decode(frame, pkt).
func (d *Decoder) Decode(frame []byte, pkt *schema.ClientPacket) *Error {
	pkt.Reset()
	if d.fast(frame, pkt) {
		return nil
	}
	return Decode(frame, pkt)
}

// fast reads frame into pkt if it is a seq and one body of the common kinds
// with only their own fields; false (pkt to be reset by Decode) otherwise.
func (d *Decoder) fast(frame []byte, pkt *schema.ClientPacket) bool {
	var seq uint64
	var body []byte
	var bodyNum protowire.Number
	for len(frame) > 0 {
		num, typ, n := protowire.ConsumeTag(frame)
		if n < 0 {
			return false
		}
		frame = frame[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(frame)
			if m < 0 {
				return false
			}
			seq, frame = v, frame[m:]
		case num >= 11 && num <= 16 && typ == protowire.BytesType && bodyNum == 0:
			v, m := protowire.ConsumeBytes(frame)
			if m < 0 {
				return false
			}
			body, bodyNum, frame = v, num, frame[m:]
		default:
			return false
		}
	}
	if bodyNum == 0 {
		return false
	}
	switch bodyNum {
	case 11:
		m := &d.joinMsg
		m.Reset()
		if !stringFields(body, func(num protowire.Number, s []byte) bool {
			if num != 1 {
				return false
			}
			m.Zone = string(s)
			return true
		}) {
			return false
		}
		d.join.Join = m
		pkt.Body = &d.join
	case 12:
		if len(body) != 0 {
			return false
		}
		d.leaveMsg.Reset()
		d.leave.Leave = &d.leaveMsg
		pkt.Body = &d.leave
	case 13:
		m := &d.moveMsg
		m.Reset()
		for len(body) > 0 {
			num, typ, n := protowire.ConsumeTag(body)
			if n < 0 || typ != protowire.Fixed32Type || (num != 1 && num != 2) {
				return false
			}
			v, k := protowire.ConsumeFixed32(body[n:])
			if k < 0 {
				return false
			}
			body = body[n+k:]
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
		for len(body) > 0 {
			num, typ, n := protowire.ConsumeTag(body)
			if n < 0 {
				return false
			}
			body = body[n:]
			switch {
			case num == 1 && typ == protowire.BytesType:
				s, k := protowire.ConsumeBytes(body)
				if k < 0 || !utf8.Valid(s) {
					return false
				}
				m.Text, body = string(s), body[k:]
			case num == 2 && typ == protowire.VarintType:
				v, k := protowire.ConsumeVarint(body)
				if k < 0 {
					return false
				}
				m.Scope, body = schema.ChatScope(int32(v)), body[k:]
			default:
				return false
			}
		}
		d.chat.Chat = m
		pkt.Body = &d.chat
	case 15:
		m := &d.attackMsg
		m.Reset()
		if !stringFields(body, func(num protowire.Number, s []byte) bool {
			if num != 1 {
				return false
			}
			m.TargetId = string(s)
			return true
		}) {
			return false
		}
		d.attack.Attack = m
		pkt.Body = &d.attack
	case 16:
		m := &d.pingMsg
		m.Reset()
		for len(body) > 0 {
			num, typ, n := protowire.ConsumeTag(body)
			if n < 0 || num != 1 || typ != protowire.VarintType {
				return false
			}
			v, k := protowire.ConsumeVarint(body[n:])
			if k < 0 {
				return false
			}
			m.ClientTimeNs, body = int64(v), body[n+k:]
		}
		d.ping.Ping = m
		pkt.Body = &d.ping
	}
	pkt.Seq = seq
	return true
}

// stringFields calls set for every field of body, all of which must be
// valid UTF-8 strings (length-delimited); false if one is not or set says so.
func stringFields(body []byte, set func(num protowire.Number, s []byte) bool) bool {
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		s, k := protowire.ConsumeBytes(body[n:])
		if k < 0 || !utf8.Valid(s) || !set(num, s) {
			return false
		}
		body = body[n+k:]
	}
	return true
}
