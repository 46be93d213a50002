package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var b []byte
	payloads := [][]byte{[]byte("a"), bytes.Repeat([]byte{7}, 100), bytes.Repeat([]byte{1}, DefaultMaxFrame)}
	for _, p := range payloads {
		b = AppendFrame(b, p)
	}
	fr := NewFrameReader(bytes.NewReader(b), 0)
	for i, p := range payloads {
		got, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
}

func TestFrameTooLargeAllocatesNothing(t *testing.T) {
	b := AppendFrame(nil, make([]byte, 10))
	b[0] = 0x7f // declares ~2 GiB
	fr := NewFrameReader(bytes.NewReader(b), 64)
	_, err := fr.Next()
	var fse *FrameSizeError
	if !errors.As(err, &fse) || !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want FrameSizeError", err)
	}
	if cap(fr.buf) != 0 {
		t.Fatalf("buffer grew to %d for a rejected frame", cap(fr.buf))
	}
}

func TestFrameTruncatedAndEmpty(t *testing.T) {
	b := AppendFrame(nil, []byte("hello"))
	if _, err := NewFrameReader(bytes.NewReader(b[:6]), 0).Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: got %v", err)
	}
	if _, err := NewFrameReader(bytes.NewReader([]byte{0, 0, 0, 0}), 0).Next(); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("empty: got %v", err)
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add(AppendFrame(nil, []byte("x")))
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add(AppendFrame(AppendFrame(nil, []byte("ab")), []byte("cd")))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data), 128)
		for i := 0; i < 1000; i++ {
			p, err := fr.Next()
			if err != nil {
				return
			}
			if len(p) == 0 || len(p) > 128 {
				t.Fatalf("frame of %d bytes passed a 128-byte limit", len(p))
			}
		}
	})
}

func TestCommandID(t *testing.T) {
	id := CommandID("s-1:x", 42)
	s, seq, err := ParseCommandID(id)
	if err != nil || s != "s-1:x" || seq != 42 {
		t.Fatalf("ParseCommandID(%q) = %q, %d, %v", id, s, seq, err)
	}
	for _, bad := range []string{"", ":1", "abc", "a:", "a:x"} {
		if _, _, err := ParseCommandID(bad); err == nil {
			t.Errorf("ParseCommandID(%q): want error", bad)
		}
	}
	for _, seq := range []uint64{0, 7, 99, 100, 1 << 40, ^uint64(0)} {
		if got := string(AppendCommandID([]byte("pre"), "s-1", seq)); got != "pre"+CommandID("s-1", seq) {
			t.Errorf("AppendCommandID(%d) = %q", seq, got)
		}
	}
}
