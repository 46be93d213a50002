package gateway

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/realmstream/realmstream/libs/schema"
)

// appendCommand appends the protobuf encoding of cmd to b without the
// reflection of proto.Marshal (issue 12 #4: the marshal was a quarter of a
// reader's time per command). The header fields are written by hand; the
// body is copied from frame, the client packet it came from, when the frame
// holds exactly one body field, it is this command's, and it has only
// scalar fields the body's message declares, with their wire types (the
// packet decoder discards unknown fields): its bytes then decode to the
// body proto.Marshal would re-encode. Otherwise the body is marshalled.
// TestAppendCommandMatchesMarshal and FuzzAppendCommand hold it to
// proto.Marshal: the two decode to equal Commands.
func appendCommand(b []byte, cmd *schema.Command, frame []byte) ([]byte, error) {
	b = appendString(b, 1, cmd.CommandId)
	b = appendString(b, 2, cmd.SessionId)
	b = appendString(b, 3, cmd.PlayerId)
	b = appendString(b, 4, cmd.Zone)
	if cmd.ClientSeq != 0 {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, cmd.ClientSeq)
	}
	if cmd.ReceivedAtNs != 0 {
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(cmd.ReceivedAtNs))
	}
	b = appendString(b, 7, cmd.PlayerName)
	num, client, body := commandBody(cmd)
	if body == nil {
		return b, nil
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	if raw, ok := frameBody(frame, client); ok && knownScalars(raw, body.ProtoReflect().Descriptor()) {
		return protowire.AppendBytes(b, raw), nil
	}
	b = protowire.AppendVarint(b, uint64(marshalCmd.Size(body)))
	return marshalCmd.MarshalAppend(b, body)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// commandBody is the Command field of cmd's body, the ClientPacket field
// the same body has in a client packet (0: none, the gateway's own
// commands), and the body message; nil when cmd has no body.
func commandBody(cmd *schema.Command) (num, client protowire.Number, body proto.Message) {
	switch b := cmd.Body.(type) {
	case *schema.Command_Join:
		return 10, 11, b.Join
	case *schema.Command_Leave:
		return 11, 12, b.Leave
	case *schema.Command_Move:
		return 12, 13, b.Move
	case *schema.Command_Chat:
		return 13, 14, b.Chat
	case *schema.Command_Attack:
		return 14, 15, b.Attack
	case *schema.Command_TransferIn:
		return 15, 0, b.TransferIn
	case *schema.Command_Disconnect:
		return 16, 0, b.Disconnect
	}
	return 0, 0, nil
}

// clientBodyFields are the field numbers of ClientPacket's body oneof.
func clientBodyField(n protowire.Number) bool {
	return n >= 10 && n <= 16 || n == 20
}

// frameBody returns the value of field want of the client packet frame if
// it is the frame's only body field (a second one would be merged or win
// when decoded: then the caller marshals what was decoded).
func frameBody(frame []byte, want protowire.Number) ([]byte, bool) {
	if want == 0 {
		return nil, false
	}
	var raw []byte
	found := false
	for len(frame) > 0 {
		num, typ, n := protowire.ConsumeTag(frame)
		if n < 0 {
			return nil, false
		}
		frame = frame[n:]
		if clientBodyField(num) {
			if found || num != want || typ != protowire.BytesType {
				return nil, false
			}
			v, m := protowire.ConsumeBytes(frame)
			if m < 0 {
				return nil, false
			}
			raw, found = v, true
			frame = frame[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, frame)
		if m < 0 {
			return nil, false
		}
		frame = frame[m:]
	}
	return raw, found
}

// knownScalars says whether every field of the encoded message raw is a
// scalar field of md (not a message: its own unknown fields would need the
// same check) with the wire type the decoder reads as that field; a field
// that is not would be dropped as unknown by the packet decoder.
func knownScalars(raw []byte, md protoreflect.MessageDescriptor) bool {
	fields := md.Fields()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return false
		}
		fd := fields.ByNumber(num)
		if fd == nil || fd.IsList() || fd.IsMap() || typ != scalarWireType(fd.Kind()) {
			return false
		}
		raw = raw[n:]
		m := protowire.ConsumeFieldValue(num, typ, raw)
		if m < 0 {
			return false
		}
		raw = raw[m:]
	}
	return true
}

// scalarWireType is the wire type of a singular field of kind k; -1 for
// messages and groups.
func scalarWireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.StringKind, protoreflect.BytesKind:
		return protowire.BytesType
	}
	return -1
}
