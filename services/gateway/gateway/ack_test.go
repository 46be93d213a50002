package gateway

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

func TestAckEncoding(t *testing.T) {
	for _, c := range []struct {
		seq, stream uint64
		dup         bool
	}{{1, 1, false}, {0, 0, false}, {1 << 40, 1<<63 + 5, true}, {7, 0, true}, {300, 70000, false}} {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&schema.ServerPacket{AckSeq: c.seq,
			Body: &schema.ServerPacket_Ack{Ack: &schema.Ack{StreamSeq: c.stream, Duplicate: c.dup}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendAck(nil, c.seq, c.stream, c.dup); !bytes.Equal(got, want) {
			t.Fatalf("%+v: got %x, want %x", c, got, want)
		}
	}
}
