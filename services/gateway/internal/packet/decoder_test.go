package packet

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

// decoderSeeds: every body kind, and what sends the Decoder to Decode: a
// second body, an unknown field in the packet or a body, a mistyped field,
// invalid UTF-8, a truncated frame, Hello, no body.
func decoderSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, p := range []*schema.ClientPacket{
		{Seq: 1, Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: "z1_1"}}},
		{Seq: 2, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 1, Y: -2.5}}},
		{Seq: 3, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: "héllo", Scope: 1}}},
		{Seq: 4, Body: &schema.ClientPacket_Attack{Attack: &schema.Attack{TargetId: "p-1"}}},
		{Seq: 5, Body: &schema.ClientPacket_Leave{Leave: &schema.Leave{}}},
		{Seq: 6, Body: &schema.ClientPacket_Ping{Ping: &schema.Ping{ClientTimeNs: -7}}},
		{Body: &schema.ClientPacket_Hello{Hello: &schema.Hello{Name: "bob", ResumeSession: "s1"}}},
		{Seq: 7, Body: &schema.ClientPacket_WorldInfo{WorldInfo: &schema.WorldInfoRequest{}}},
		{Seq: 8},
	} {
		seeds = append(seeds, enc(t, p))
	}
	move := seeds[1]
	unknown := protowire.AppendTag(append([]byte(nil), move...), 40, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 1)
	inBody := protowire.AppendTag(nil, 13, protowire.BytesType)
	inBody = protowire.AppendBytes(inBody, protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 3))
	mistyped := protowire.AppendTag(nil, 13, protowire.BytesType)
	mistyped = protowire.AppendBytes(mistyped, protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3))
	badUTF8 := protowire.AppendTag(nil, 14, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff, 'a'}))
	seeds = append(seeds,
		append(append([]byte(nil), move...), seeds[2][2:]...), // a move, then a chat
		append(append([]byte(nil), move...), move[2:]...),     // the move twice
		unknown, inBody, mistyped, badUTF8,
		move[:len(move)-1], // truncated
		[]byte{}, []byte{0x08}, []byte{0xff, 0xff})
	return seeds
}

// checkDecoder: the Decoder (reused across calls) and Decode agree on the
// error and on the packet.
func checkDecoder(t *testing.T, d *Decoder, frame []byte) {
	var got, want schema.ClientPacket
	eg, ew := d.Decode(frame, &got), Decode(frame, &want)
	if (eg == nil) != (ew == nil) || (eg != nil && *eg != *ew) {
		t.Fatalf("frame %x: Decoder %v, Decode %v", frame, eg, ew)
	}
	if ew == nil && !proto.Equal(&got, &want) {
		t.Fatalf("frame %x:\nDecoder %v\nDecode  %v", frame, &got, &want)
	}
	// The body bytes it offers decode to the body it decoded.
	if raw, ok := d.Body(); ok {
		fd := got.ProtoReflect().WhichOneof(got.ProtoReflect().Descriptor().Oneofs().ByName("body"))
		decoded := got.ProtoReflect().Get(fd).Message().Interface()
		fresh := decoded.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(raw, fresh); err != nil || !proto.Equal(fresh, decoded) {
			t.Fatalf("frame %x: Body %x decodes to %v (%v), want %v", frame, raw, fresh, err, decoded)
		}
	}
}

func TestDecoderMatchesDecode(t *testing.T) {
	var d Decoder
	seeds := decoderSeeds(t)
	for _, f := range seeds {
		checkDecoder(t, &d, f)
	}
	for _, f := range seeds { // again: reused bodies carry nothing over
		checkDecoder(t, &d, f)
	}
	// The body bytes are offered exactly for the packets read without
	// reflection: every body kind of seeds 0-5; not Hello, WorldInfo, no
	// body, nor any of the unusual frames after them.
	for i, f := range seeds {
		_ = d.Decode(f, &schema.ClientPacket{})
		if _, ok := d.Body(); ok != (i <= 5) {
			t.Errorf("seed %d (%x): Body ok %v", i, f, ok)
		}
	}
	// The common packets allocate only their strings.
	var p schema.ClientPacket
	for i, want := range map[int]float64{1: 0, 4: 0, 5: 0, 2: 1, 0: 1} {
		if n := testing.AllocsPerRun(100, func() { _ = d.Decode(seeds[i], &p) }); n > want {
			t.Errorf("seed %d: %v allocations, want <= %v", i, n, want)
		}
	}
}

func FuzzDecoder(f *testing.F) {
	for _, s := range decoderSeeds(f) {
		f.Add(s)
	}
	var d Decoder
	f.Fuzz(func(t *testing.T, frame []byte) { checkDecoder(t, &d, frame) })
}

// BenchmarkDecoder: the Decoder against Decode (proto.Unmarshal) on a Move,
// interleaved; reports x_vs_decode.
func BenchmarkDecoder(b *testing.B) {
	frame := decoderSeeds(b)[1]
	var d Decoder
	var p schema.ClientPacket
	var fast, slow time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		for range 100 {
			_ = d.Decode(frame, &p)
		}
		t1 := time.Now()
		for range 100 {
			_ = Decode(frame, &p)
		}
		fast += t1.Sub(t0)
		slow += time.Since(t1)
	}
	b.ReportMetric(float64(fast.Nanoseconds())/float64(b.N)/100, "decoder-ns/pkt")
	b.ReportMetric(float64(slow.Nanoseconds())/float64(b.N)/100, "decode-ns/pkt")
	b.ReportMetric(float64(slow)/float64(fast), "x_vs_decode")
}
