package packet

import (
	"encoding/binary"
	"errors"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The downstream codec: the gateway reads the world's zone updates without
// unmarshalling them (it needs only the cell, the tick and where its own
// players stand) and writes client update frames by wrapping the world's
// bytes, never re-encoding them. Field numbers are those of
// libs/schema/client.proto; TestUpdateCodec checks them against
// proto.Marshal and proto.Unmarshal, FuzzScanZoneUpdate and FuzzScanZoneTick
// against arbitrary input.
const (
	fServerUpdate  = 12 // ServerPacket.update (protocol 1, 2)
	fServerUpdates = 17 // ServerPacket.updates (protocol >= 3)
	fUpdateZU      = 1  // Update.zone_update
	fUpdatesZU     = 1  // Updates.zone_updates (repeated)
	fZUCell        = 2
	fZUTick        = 3
	fZUEntities    = 5
	fZUChat        = 6
	fZUCombat      = 7
	fZURemoved     = 8
	fEntityID      = 1
	fEntityX       = 3
	fEntityY       = 4
	fTickTick      = 2 // ZoneTick.tick
	fTickCells     = 4 // ZoneTick.cells (repeated)
)

// ErrBadUpdate is returned for bytes that are not a valid encoding.
var ErrBadUpdate = errors.New("packet: malformed zone update")

// EntityVisitor receives the entity views of a zone update (an interface,
// not a closure, so that scanning allocates nothing). id aliases the
// scanned bytes and is valid only during the call.
type EntityVisitor interface {
	Entity(id []byte, x, y float32)
}

// ScanZoneUpdate reads the cell and tick of an encoded schema.ZoneUpdate and
// calls v (if not nil) for each of its entity views. It validates the whole
// wire structure of the message and of its entity views (the other nested
// messages are skipped as opaque bytes).
func ScanZoneUpdate(b []byte, v EntityVisitor) (cell uint32, tick uint64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, ErrBadUpdate
		}
		b = b[n:]
		switch {
		case (num == fZUCell || num == fZUTick) && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, 0, ErrBadUpdate
			}
			b = b[n:]
			if num == fZUCell {
				cell = uint32(x) // proto3 uint32 semantics: the low 32 bits
			} else {
				tick = x
			}
		case num == fZUEntities && typ == protowire.BytesType:
			e, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, 0, ErrBadUpdate
			}
			b = b[n:]
			if err := scanEntity(e, v); err != nil {
				return 0, 0, err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, 0, ErrBadUpdate
			}
			b = b[n:]
		}
	}
	return cell, tick, nil
}

// PeekZoneUpdate reads the cell and tick of an encoded schema.ZoneUpdate
// without looking into its entity views: a walk over the top-level fields
// only, nested messages skipped by their length.
func PeekZoneUpdate(b []byte) (cell uint32, tick uint64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, ErrBadUpdate
		}
		b = b[n:]
		if (num == fZUCell || num == fZUTick) && typ == protowire.VarintType {
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, 0, ErrBadUpdate
			}
			b = b[n:]
			if num == fZUCell {
				cell = uint32(x)
			} else {
				tick = x
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, 0, ErrBadUpdate
		}
		b = b[n:]
	}
	return cell, tick, nil
}

func scanEntity(b []byte, v EntityVisitor) error {
	var id []byte
	var x, y float32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ErrBadUpdate
		}
		b = b[n:]
		switch {
		case num == fEntityID && typ == protowire.BytesType:
			s, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return ErrBadUpdate
			}
			id, b = s, b[n:]
		case (num == fEntityX || num == fEntityY) && typ == protowire.Fixed32Type:
			f, n := protowire.ConsumeFixed32(b)
			if n < 0 {
				return ErrBadUpdate
			}
			b = b[n:]
			if num == fEntityX {
				x = math.Float32frombits(f)
			} else {
				y = math.Float32frombits(f)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return ErrBadUpdate
			}
			b = b[n:]
		}
	}
	if v != nil {
		v.Entity(id, x, y)
	}
	return nil
}

// ScanZoneTick reads the tick of an encoded schema.ZoneTick and calls cell
// with the encoded schema.ZoneUpdate of each of its cells, in order (the
// bytes alias b). It stops at the first error cell returns.
func ScanZoneTick(b []byte, cell func(zu []byte) error) (tick uint64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, ErrBadUpdate
		}
		b = b[n:]
		switch {
		case num == fTickTick && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, ErrBadUpdate
			}
			tick, b = x, b[n:]
		case num == fTickCells && typ == protowire.BytesType:
			zu, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, ErrBadUpdate
			}
			b = b[n:]
			if err := cell(zu); err != nil {
				return 0, err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, ErrBadUpdate
			}
			b = b[n:]
		}
	}
	return tick, nil
}

// AppendCellState appends the state part of an encoded schema.ZoneUpdate:
// every field but its lines and removals (chat, combat, removed: events of
// the tick that carried them, not state), so that the cell can be shown to a
// client that starts seeing it later. entities says whether it holds any
// entity view (a cell without one has no state to show).
func AppendCellState(dst, zu []byte) (out []byte, entities bool, err error) {
	b := zu
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return dst, false, ErrBadUpdate
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return dst, false, ErrBadUpdate
		}
		if lines := num == fZUChat || num == fZUCombat || num == fZURemoved; !lines || typ != protowire.BytesType {
			dst = append(dst, b[:n+m]...)
			entities = entities || num == fZUEntities && typ == protowire.BytesType
		}
		b = b[n+m:]
	}
	return dst, entities, nil
}

// FrameHeader is the size of the TCP frame header (4-byte big-endian
// length, libs/wire framing) that the Append*Frame functions write.
const FrameHeader = 4

// UpdatesEntrySize is what one cell of encoded size n adds to an Updates
// packet.
func UpdatesEntrySize(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

// UpdatesSize is the size of an Updates packet whose entries
// (UpdatesEntrySize of each cell) add up to inner bytes.
func UpdatesSize(inner int) int { return 2 + protowire.SizeVarint(uint64(inner)) + inner }

// AppendUpdatesFrame appends one framed ServerPacket{updates:
// Updates{zone_updates: cells}} (protocol >= 3): the frame header, then the
// packet, whose ZoneUpdates are the given encodings verbatim.
func AppendUpdatesFrame(dst []byte, cells [][]byte) []byte {
	inner := 0
	for _, c := range cells {
		inner += UpdatesEntrySize(len(c))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(UpdatesSize(inner)))
	dst = protowire.AppendTag(dst, fServerUpdates, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(inner))
	for _, c := range cells {
		dst = protowire.AppendTag(dst, fUpdatesZU, protowire.BytesType)
		dst = protowire.AppendBytes(dst, c)
	}
	return dst
}

// AppendUpdateFrame appends one framed ServerPacket{update: Update{zone_update:
// cell}} (protocols 1 and 2: one packet per cell).
func AppendUpdateFrame(dst []byte, cell []byte) []byte {
	inner := UpdatesEntrySize(len(cell))
	size := 1 + protowire.SizeVarint(uint64(inner)) + inner
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	dst = protowire.AppendTag(dst, fServerUpdate, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(inner))
	dst = protowire.AppendTag(dst, fUpdateZU, protowire.BytesType)
	return protowire.AppendBytes(dst, cell)
}
