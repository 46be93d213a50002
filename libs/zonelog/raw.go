package zonelog

import (
	"errors"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

var (
	recordFieldsOnce              sync.Once
	fieldEvents, fieldCommittedAt protowire.Number
)

func recordFields() {
	fs := (&schema.TickRecord{}).ProtoReflect().Descriptor().Fields()
	fieldEvents = fs.ByName("events").Number()
	fieldCommittedAt = fs.ByName("committed_at_ns").Number()
}

// RecordEvents walks the wire format of a schema.TickRecord and returns the
// bytes of each of its events exactly as committed (no re-encoding: the store
// keeps them as rows and the audit checksums them), in order, with the
// record's committed_at_ns. The slices point into data.
func RecordEvents(data []byte) (events [][]byte, committedAtNs int64, err error) {
	recordFieldsOnce.Do(recordFields)
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, 0, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == fieldEvents && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				events = append(events, v)
			}
		case num == fieldCommittedAt && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			committedAtNs = int64(v)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, 0, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return events, committedAtNs, nil
}

// EventBytes returns the bytes of each event of one evt.<zone> message as
// committed: the events of a tick record (Realm-Schema 2), or the whole data
// of a legacy single-event message. Decode's entries and these payloads line
// up one to one.
func EventBytes(h nats.Header, data []byte) ([][]byte, error) {
	if h.Get(wire.HeaderSchema) != wire.SchemaTickRecord {
		return [][]byte{data}, nil
	}
	evs, _, err := RecordEvents(data)
	if err != nil {
		return nil, errors.Join(errors.New("zonelog: tick record"), err)
	}
	return evs, nil
}
