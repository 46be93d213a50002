package gateway

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/packet"
)

func mustMarshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encodeFrameSeeds: client packets as a client sends them, and as a client
// may: unknown fields in the packet and in the body, a body field twice, two
// different bodies, fields out of order.
func encodeFrameSeeds(t testing.TB) [][]byte {
	move := mustMarshal(t, &schema.ClientPacket{Seq: 7, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 1.5, Y: -2}}})
	chat := mustMarshal(t, &schema.ClientPacket{Seq: 8, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: "héllo"}}})
	join := mustMarshal(t, &schema.ClientPacket{Seq: 1, Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: "z1_1"}}})
	leave := mustMarshal(t, &schema.ClientPacket{Seq: 2, Body: &schema.ClientPacket_Leave{Leave: &schema.Leave{}}})
	attack := mustMarshal(t, &schema.ClientPacket{Seq: 3, Body: &schema.ClientPacket_Attack{Attack: &schema.Attack{TargetId: "p-x"}}})
	// Unknown field 99 inside the Move body and in the packet.
	moveBody := protowire.AppendTag(mustMarshal(t, &schema.Move{X: 3}), 99, protowire.VarintType)
	moveBody = protowire.AppendVarint(moveBody, 5)
	odd := protowire.AppendTag(nil, 13, protowire.BytesType)
	odd = protowire.AppendBytes(odd, moveBody)
	odd = protowire.AppendTag(odd, 1, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 9) // seq after the body
	odd = protowire.AppendTag(odd, 50, protowire.BytesType)
	odd = protowire.AppendBytes(odd, []byte("unknown"))
	// The Move body twice (merged when decoded), and a Move then a Chat (the
	// last wins).
	twice := append(append([]byte(nil), move...), move[2:]...)
	two := append(append([]byte(nil), move...), chat[2:]...)
	return [][]byte{move, chat, join, leave, attack, odd, twice, two}
}

// checkAppendCommand: what appendCommand writes for the command the reader
// builds from frame (decoded by a packet.Decoder, whose body bytes it
// takes) decodes to the Command proto.Marshal's bytes decode to.
func checkAppendCommand(t *testing.T, frame []byte) {
	var p schema.ClientPacket
	var d packet.Decoder
	if d.Decode(frame, &p) != nil {
		return
	}
	cmd := &schema.Command{CommandId: wire.CommandID("s1", p.Seq), SessionId: "s1", PlayerId: "p-a", PlayerName: "a",
		Zone: "z1_1", ClientSeq: p.Seq, ReceivedAtNs: 1700000000000000000}
	if !wire.SetCommandBody(cmd, &p) {
		return
	}
	raw, rawOK := d.Body()
	got, err := appendCommand(nil, cmd, raw, rawOK)
	if err != nil {
		t.Fatal(err)
	}
	var a, b schema.Command
	if err := proto.Unmarshal(got, &a); err != nil {
		t.Fatalf("frame %x: appendCommand wrote what does not decode: %v", frame, err)
	}
	if err := proto.Unmarshal(mustMarshal(t, cmd), &b); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&a, &b) {
		t.Fatalf("frame %x:\nappendCommand %v\nproto.Marshal %v", frame, &a, &b)
	}
}

func TestAppendCommandMatchesMarshal(t *testing.T) {
	for _, f := range encodeFrameSeeds(t) {
		checkAppendCommand(t, f)
	}
	// The raw copy is taken exactly when the frame has one body field of
	// known fields only (not with an unknown field in it, seed 5, nor with
	// two bodies, seeds 6 and 7).
	seeds := encodeFrameSeeds(t)
	for i, want := range []bool{true, true, true, true, true, false, false, false} {
		var d packet.Decoder
		_ = d.Decode(seeds[i], &schema.ClientPacket{})
		if _, ok := d.Body(); ok != want {
			t.Errorf("seed %d: raw body %v, want %v", i, ok, want)
		}
	}
	// The gateway's own commands (no client field) are marshalled.
	cmd := &schema.Command{CommandId: "x", Body: &schema.Command_Disconnect{Disconnect: &schema.Disconnect{Reason: "eof"}}}
	got, err := appendCommand(nil, cmd, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var back schema.Command
	if err := proto.Unmarshal(got, &back); err != nil || !proto.Equal(&back, cmd) {
		t.Fatalf("disconnect: %v %v", &back, err)
	}
}

func FuzzAppendCommand(f *testing.F) {
	for _, s := range encodeFrameSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkAppendCommand)
}

// BenchmarkAppendCommand: appendCommand against proto.Marshal of the same
// command (the reader's way before), interleaved; reports x_vs_marshal.
func BenchmarkAppendCommand(b *testing.B) {
	frame := encodeFrameSeeds(b)[0]
	var p schema.ClientPacket
	var d packet.Decoder
	if d.Decode(frame, &p) != nil {
		b.Fatal("seed does not decode")
	}
	raw, rawOK := d.Body()
	cmd := &schema.Command{CommandId: wire.CommandID("s0123456789abcdef0123456789", p.Seq), SessionId: "s0123456789abcdef0123456789",
		PlayerId: "p-bench", PlayerName: "bench", Zone: "z1_1", ClientSeq: p.Seq, ReceivedAtNs: 1700000000000000000}
	wire.SetCommandBody(cmd, &p)
	buf := make([]byte, 0, 256)
	var hand, refl int64
	b.ReportAllocs()
	for b.Loop() {
		t0 := nanotime()
		for range 100 {
			buf, _ = appendCommand(buf[:0], cmd, raw, rawOK)
		}
		t1 := nanotime()
		for range 100 {
			buf, _ = marshalCmd.MarshalAppend(buf[:0], cmd)
		}
		t2 := nanotime()
		hand += t1 - t0
		refl += t2 - t1
	}
	b.ReportMetric(float64(hand)/float64(b.N)/100, "hand-ns/cmd")
	b.ReportMetric(float64(refl)/float64(b.N)/100, "marshal-ns/cmd")
	b.ReportMetric(float64(refl)/float64(hand), "x_vs_marshal")
}

func nanotime() int64 { return time.Now().UnixNano() }

// TestDigestLen: the reader cuts the digest header off its id string by
// digestLen.
func TestDigestLen(t *testing.T) {
	for _, d := range []uint64{0, 1, 15, 16, 255, 256, 1 << 32, 1<<63 + 12345, ^uint64(0)} {
		if digestLen(d) != len(digestHeader(d)) {
			t.Errorf("digestLen(%x) = %d, want %d", d, digestLen(d), len(digestHeader(d)))
		}
	}
}
