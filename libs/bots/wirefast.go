package bots

import (
	"errors"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The hot answers (Ack, Update: tens of thousands per second at 2,000 bots)
// are decoded here with protowire, without allocating; the rest goes through
// proto.Unmarshal. Field numbers are those of libs/schema/client.proto.
const (
	fServerAckSeq  = 1
	fServerAck     = 11
	fServerUpdate  = 12 // Update: one cell (protocols 1, 2)
	fServerUpdates = 17 // Updates: a zone tick's cells (protocol 3)
	fAckStreamSeq  = 1
	fAckDuplicate  = 2
	fUpdateZone    = 1 // Update.zone_update and (repeated) Updates.zone_updates
	fZUZone        = 1
	fZUEntities    = 5
	fEntityID      = 1
	fEntityX       = 3
	fEntityY       = 4
	fEntityDead    = 6
	fEntityLastSeq = 7
)

var errBadPacket = errors.New("bots: malformed server packet")

// scanServer returns the packet's ack_seq, the field number of its body and
// the body's bytes (0, nil when it has none).
func scanServer(b []byte) (ackSeq uint64, field protowire.Number, body []byte, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, nil, errBadPacket
		}
		b = b[n:]
		switch {
		case num == fServerAckSeq && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, 0, nil, errBadPacket
			}
			ackSeq, b = v, b[n:]
		case typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, 0, nil, errBadPacket
			}
			field, body, b = num, v, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, 0, nil, errBadPacket
			}
			b = b[n:]
		}
	}
	return ackSeq, field, body, nil
}

func scanAck(b []byte) (streamSeq uint64, dup bool, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false, errBadPacket
		}
		b = b[n:]
		if typ == protowire.VarintType && (num == fAckStreamSeq || num == fAckDuplicate) {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, false, errBadPacket
			}
			b = b[n:]
			if num == fAckStreamSeq {
				streamSeq = v
			} else {
				dup = v != 0
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, false, errBadPacket
		}
		b = b[n:]
	}
	return streamSeq, dup, nil
}

// entity is one EntityView of an update; id aliases the frame buffer.
type entity struct {
	id      []byte
	x, y    float32
	dead    bool
	lastSeq uint64
}

// scanUpdate calls vis for each entity of each ZoneUpdate in an Update or
// Updates body (the same field number: one cell, or a tick's cells) and
// returns how many cells it saw (zone and e.id alias the frame); e is the
// caller's scratch, so that nothing escapes to the heap.
func scanUpdate(b []byte, vis visitor, e *entity) (cells int, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return cells, errBadPacket
		}
		b = b[n:]
		if num == fUpdateZone && typ == protowire.BytesType {
			zu, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return cells, errBadPacket
			}
			b = b[n:]
			if err := scanZoneUpdate(zu, vis, e); err != nil {
				return cells, err
			}
			cells++
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return cells, errBadPacket
		}
		b = b[n:]
	}
	return cells, nil
}

func scanZoneUpdate(b []byte, vis visitor, e *entity) error {
	// The zone (field 1) first: a walk over the top-level fields (nested
	// messages skipped by their length); the last one wins, as in
	// proto.Unmarshal.
	var zone []byte
	rest := b
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return errBadPacket
		}
		rest = rest[n:]
		if num == fZUZone && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(rest)
			if n < 0 {
				return errBadPacket
			}
			zone, rest = v, rest[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, rest)
		if n < 0 {
			return errBadPacket
		}
		rest = rest[n:]
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadPacket
		}
		b = b[n:]
		if num == fZUEntities && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errBadPacket
			}
			b = b[n:]
			if err := scanEntity(v, e); err != nil {
				return err
			}
			vis.entity(zone, e)
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errBadPacket
		}
		b = b[n:]
	}
	return nil
}

func scanEntity(b []byte, e *entity) error {
	*e = entity{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadPacket
		}
		b = b[n:]
		switch {
		case num == fEntityID && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errBadPacket
			}
			e.id, b = v, b[n:]
		case (num == fEntityX || num == fEntityY) && typ == protowire.Fixed32Type:
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 {
				return errBadPacket
			}
			b = b[n:]
			if num == fEntityX {
				e.x = math.Float32frombits(v)
			} else {
				e.y = math.Float32frombits(v)
			}
		case (num == fEntityDead || num == fEntityLastSeq) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errBadPacket
			}
			b = b[n:]
			if num == fEntityDead {
				e.dead = v != 0
			} else {
				e.lastSeq = v
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errBadPacket
			}
			b = b[n:]
		}
	}
	return nil
}

// visitor receives the entities of an update (an interface, not a closure,
// so that scanning allocates nothing).
type visitor interface{ entity(zone []byte, e *entity) }
