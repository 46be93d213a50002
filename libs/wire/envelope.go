package wire

import (
	"strconv"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/realmstream/realmstream/libs/schema"
)

// Payload versions of evt.<zone> messages, written in HeaderSchema.
const (
	// SchemaEventV1 marks a message whose payload is one schema.Event (the
	// log format before tick records; still read, never written).
	SchemaEventV1 = "1"
	// SchemaTickRecord marks a message whose payload is a schema.TickRecord:
	// the events of one zone tick, committed with one fenced write.
	SchemaTickRecord = "2"
)

// EventTypeTick is the HeaderEventType of a tick record (its events carry
// their own types, see EventType).
const EventTypeTick = "tick"

// TickRecordID is the Nats-Msg-Id and record_id of part of the record of one
// zone tick. It is unique by construction: a fence belongs to one owner, and
// an owner's ticks only grow.
func TickRecordID(zone string, fence, tick uint64, part uint32) string {
	b := make([]byte, 0, len(zone)+32)
	b = append(b, zone...)
	b = append(b, "/t/"...)
	b = strconv.AppendUint(b, fence, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, tick, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(part), 10)
	return string(b)
}

var (
	bodyOnce  sync.Once
	bodyOneof protoreflect.OneofDescriptor
)

// EventType is the one name of an event's type: its body field name
// ("player_moved", "ownership_claimed"), or "unknown" when the body is empty.
// World metrics, persist rows and the audit all use it.
func EventType(ev *schema.Event) string {
	bodyOnce.Do(func() {
		bodyOneof = (&schema.Event{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
	})
	if ev == nil {
		return "unknown"
	}
	if fd := ev.ProtoReflect().WhichOneof(bodyOneof); fd != nil {
		return string(fd.Name())
	}
	return "unknown"
}
