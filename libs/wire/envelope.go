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

var (
	cmdBodyOnce  sync.Once
	cmdBodyOneof protoreflect.OneofDescriptor
)

// CommandType is the one name of a command's type: its body field name
// ("join", "move", "transfer_in", ...), or "unknown" when the body is empty.
// The gateway's command spans and the audit use it.
func CommandType(cmd *schema.Command) string {
	cmdBodyOnce.Do(func() {
		cmdBodyOneof = (&schema.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
	})
	if cmd == nil {
		return "unknown"
	}
	if fd := cmd.ProtoReflect().WhichOneof(cmdBodyOneof); fd != nil {
		return string(fd.Name())
	}
	return "unknown"
}

// SetCommandBody gives cmd the body of the client packet p (join, leave,
// move, chat, attack): the one mapping of client packets to commands, used by
// the gateway and the bare pipeline it is measured against. It reports false
// when p carries no command.
func SetCommandBody(cmd *schema.Command, p *schema.ClientPacket) bool {
	switch body := p.Body.(type) {
	case *schema.ClientPacket_Join:
		cmd.Body = &schema.Command_Join{Join: body.Join}
	case *schema.ClientPacket_Leave:
		cmd.Body = &schema.Command_Leave{Leave: body.Leave}
	case *schema.ClientPacket_Move:
		cmd.Body = &schema.Command_Move{Move: body.Move}
	case *schema.ClientPacket_Chat:
		cmd.Body = &schema.Command_Chat{Chat: body.Chat}
	case *schema.ClientPacket_Attack:
		cmd.Body = &schema.Command_Attack{Attack: body.Attack}
	default:
		return false
	}
	return true
}
