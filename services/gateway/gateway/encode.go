package gateway

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

// appendCommand appends the protobuf encoding of cmd to b without the
// reflection of proto.Marshal (issue 12 #4: the marshal was a quarter of a
// reader's time per command): the header fields by hand, and the body as
// raw when rawOK, the body's bytes as the packet decoder read them
// (packet.Decoder.Body: then they decode to exactly the decoded body),
// else marshalled. TestAppendCommandMatchesMarshal and FuzzAppendCommand
// hold it to proto.Marshal: the two decode to equal Commands.
func appendCommand(b []byte, cmd *schema.Command, raw []byte, rawOK bool) ([]byte, error) {
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
	num, body := commandBody(cmd)
	if body == nil {
		return b, nil
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	if rawOK {
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

// commandBody is the Command field of cmd's body and the body message; nil
// when cmd has no body.
func commandBody(cmd *schema.Command) (protowire.Number, proto.Message) {
	switch b := cmd.Body.(type) {
	case *schema.Command_Join:
		return 10, b.Join
	case *schema.Command_Leave:
		return 11, b.Leave
	case *schema.Command_Move:
		return 12, b.Move
	case *schema.Command_Chat:
		return 13, b.Chat
	case *schema.Command_Attack:
		return 14, b.Attack
	case *schema.Command_TransferIn:
		return 15, b.TransferIn
	case *schema.Command_Disconnect:
		return 16, b.Disconnect
	}
	return 0, nil
}
