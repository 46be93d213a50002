package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

func batchOf(t testing.TB, cmds ...*schema.Command) (nats.Header, []byte) {
	t.Helper()
	var data []byte
	for _, c := range cmds {
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		data = AppendCommandBatchEntry(data, b)
	}
	h := nats.Header{}
	new(CommandBatchHeaderBuf).Fill(h, CommandBatchID("gw-1", "boot", 7), len(cmds))
	return h, data
}

func TestCommandBatchRoundTrip(t *testing.T) {
	in := []*schema.Command{
		{CommandId: "s:1", SessionId: "s", PlayerId: "p", Zone: "z", ClientSeq: 1, Body: &schema.Command_Move{Move: &schema.Move{X: 1, Y: 2}}},
		{CommandId: "s:2", SessionId: "s", PlayerId: "p", Zone: "z", ClientSeq: 2, Body: &schema.Command_Chat{Chat: &schema.Chat{Text: "hi"}}},
		{CommandId: "t:9", SessionId: "t", PlayerId: "q", Zone: "z", ClientSeq: 9},
	}
	h, data := batchOf(t, in...)
	if !IsCommandBatch(h) || h.Get(HeaderMsgID) != "b/gw-1/boot/7" || h.Get(HeaderBatch) != "3" {
		t.Fatalf("headers %v", h)
	}
	if n, err := CommandBatchLen(h, data); n != 3 || err != nil {
		t.Fatalf("CommandBatchLen = %d, %v", n, err)
	}
	var got []*schema.Command
	if err := ForEachCommand(h, data, func(b []byte) error {
		c := &schema.Command{}
		if err := proto.Unmarshal(b, c); err != nil {
			return err
		}
		got = append(got, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d commands, want %d", len(got), len(in))
	}
	for i := range in {
		if !proto.Equal(got[i], in[i]) {
			t.Fatalf("command %d: got %v, want %v", i, got[i], in[i])
		}
	}
	// A single command (no batch schema) is handed over as it is.
	single, _ := proto.Marshal(in[0])
	calls := 0
	if err := ForEachCommand(nats.Header{HeaderSchema: {SchemaVersion}}, single, func(b []byte) error {
		calls++
		if !bytes.Equal(b, single) {
			t.Fatal("single command changed")
		}
		return nil
	}); err != nil || calls != 1 {
		t.Fatalf("single: %d calls, %v", calls, err)
	}
}

func TestCommandBatchRejectedWhole(t *testing.T) {
	c := &schema.Command{CommandId: "s:1", SessionId: "s", ClientSeq: 1}
	h, data := batchOf(t, c, c, c)
	cases := map[string]struct {
		h    nats.Header
		data []byte
		want error
	}{
		"truncated last entry": {h, data[:len(data)-2], ErrBatchMalformed},
		"empty":                {h, nil, ErrBatchMalformed},
		"foreign field":        {h, append(append([]byte{}, data...), 0x10, 0x01), ErrBatchMalformed},
		"count differs":        {nats.Header{HeaderSchema: {SchemaCommandBatch}, HeaderBatch: {"2"}}, data, ErrBatchCount},
		"count unreadable":     {nats.Header{HeaderSchema: {SchemaCommandBatch}, HeaderBatch: {"x"}}, data, ErrBatchCount},
	}
	for name, tc := range cases {
		calls := 0
		err := ForEachCommand(tc.h, tc.data, func([]byte) error { calls++; return nil })
		if !errors.Is(err, tc.want) || calls != 0 {
			t.Errorf("%s: err %v (want %v), %d calls (want 0: never half a batch)", name, err, tc.want, calls)
		}
	}
	var big []byte
	for range MaxBatchCommands + 1 {
		big = AppendCommandBatchEntry(big, []byte{})
	}
	if _, err := CommandBatchLen(h, big); !errors.Is(err, ErrBatchMalformed) {
		t.Errorf("%d entries: %v, want ErrBatchMalformed", MaxBatchCommands+1, err)
	}
}

// FuzzForEachCommand: any payload is either refused whole or walked whole,
// and what is walked, re-encoded, walks to the same entries (not always the
// same bytes: a tag or length may be written in a longer varint).
func FuzzForEachCommand(f *testing.F) {
	c := &schema.Command{CommandId: "s:1", SessionId: "s", ClientSeq: 1}
	_, data := batchOf(f, c, c)
	f.Add(data)
	f.Add([]byte{0x0a})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	h := nats.Header{HeaderSchema: {SchemaCommandBatch}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var again []byte
		var entries [][]byte
		n := 0
		err := ForEachCommand(h, data, func(b []byte) error {
			n++
			entries = append(entries, b)
			again = AppendCommandBatchEntry(again, b)
			return nil
		})
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v after %d entries", err, n)
			}
			return
		}
		i := 0
		if err := ForEachCommand(h, again, func(b []byte) error {
			if !bytes.Equal(b, entries[i]) {
				t.Fatalf("entry %d re-encoded %x, want %x", i, b, entries[i])
			}
			i++
			return nil
		}); err != nil || i != n {
			t.Fatalf("re-encoded batch: %v, %d of %d entries", err, i, n)
		}
		if m, err := CommandBatchLen(h, data); err != nil || m != n {
			t.Fatalf("CommandBatchLen %d, %v; walked %d", m, err, n)
		}
	})
}
