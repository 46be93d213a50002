package jsasync

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The server's own answers (nats-server stream.go: the pubAck template, the
// duplicate suffix, an error marshalled by encoding/json) and near misses.
var pubAckSeeds = []string{
	`{"stream":"CMD","seq":1}`,
	`{"stream":"CMD","seq":18446744073709551615}`,
	`{"stream":"CMD","seq":18446744073709551616}`,
	`{"stream":"CMD","domain":"hub","seq":22}`,
	`{"stream":"CMD","seq":5,"duplicate": true}`,
	`{"stream":"CMD","seq":5,"duplicate":false}`,
	` { "stream" : "CMD" , "seq" : 9 } `,
	`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"CMD","seq":0}`,
	`{"stream":"CMD","seq":01}`,
	`{"stream":"CMD","seq":1e3}`,
	`{"stream":"CMD","seq":-1}`,
	`{"stream":"C\u004dD","seq":1}`,
	`{"STREAM":"CMD","seq":1}`,
	`{"stream":"CMD","seq":1,"stream":"EVT"}`,
	`{"stream":"","seq":1}`,
	`{"stream":"CMD","seq":1}x`,
	`{"stream":"CMD","seq":1,}`,
	`{"stream":"CMD","seq":null}`,
	`{"stream":"CMD","batch":"b","count":3,"seq":4}`,
	`{}`, ``, `[]`, `{"stream":"CMD"`,
}

// FuzzParsePubAck: whatever the hand scanner accepts, encoding/json reads
// the same way (same stream, domain, sequence, duplicate, no error); and
// ParsePubAck never panics and always returns an ack or an error.
func FuzzParsePubAck(f *testing.F) {
	for _, s := range pubAckSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, ok := scanPubAck(b); ok {
			var r pubAckJSON
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("scanner accepted %q, encoding/json: %v", b, err)
			}
			if r.Error != nil || a != (Ack{Stream: r.Stream, Domain: r.Domain, Sequence: r.Sequence, Duplicate: r.Duplicate}) {
				t.Fatalf("%q: scanner %+v, encoding/json %+v", b, a, r)
			}
		}
		a, err := ParsePubAck(b)
		if err == nil && a.Stream == "" {
			t.Fatalf("%q: an ack without a stream", b)
		}
	})
}

func TestParsePubAck(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Ack
		err  error
		scan bool // read by the scanner, not encoding/json
	}{
		{in: `{"stream":"CMD","seq":1}`, want: Ack{Stream: "CMD", Sequence: 1}, scan: true},
		{in: `{"stream":"CMD","domain":"hub","seq":22}`, want: Ack{Stream: "CMD", Domain: "hub", Sequence: 22}, scan: true},
		{in: `{"stream":"CMD","seq":5,"duplicate": true}`, want: Ack{Stream: "CMD", Sequence: 5, Duplicate: true}, scan: true},
		{in: `{"stream":"C\u004dD","seq":1}`, want: Ack{Stream: "CMD", Sequence: 1}},
		{in: `{"stream":"CMD","batch":"b","count":3,"seq":4}`, want: Ack{Stream: "CMD", Sequence: 4}},
		{in: `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"CMD","seq":0}`, err: &jetstream.APIError{}},
		{in: `{"stream":"","seq":1}`, err: jetstream.ErrInvalidJSAck},
		{in: `{"stream":"CMD","seq":1e3}`, err: jetstream.ErrInvalidJSAck},
		{in: `{"stream":"CMD","seq":18446744073709551616}`, err: jetstream.ErrInvalidJSAck},
		{in: ``, err: jetstream.ErrInvalidJSAck},
	} {
		_, scanned := scanPubAck([]byte(c.in))
		if scanned != c.scan {
			t.Errorf("%s: scanned %v, want %v", c.in, scanned, c.scan)
		}
		a, err := ParsePubAck([]byte(c.in))
		var apiErr *jetstream.APIError
		switch {
		case c.err == nil:
			if err != nil || a != c.want {
				t.Errorf("%s: %+v %v, want %+v", c.in, a, err, c.want)
			}
		case errors.As(c.err, &apiErr):
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
				t.Errorf("%s: %v, want the API error", c.in, err)
			}
		default:
			if !errors.Is(err, c.err) {
				t.Errorf("%s: %v, want %v", c.in, err, c.err)
			}
		}
	}
	// The scanner allocates only the stream name.
	b := []byte(`{"stream":"CMD","domain":"","seq":123456,"duplicate": true}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = ParsePubAck(b) }); n > 1 {
		t.Fatalf("%v allocations per PubAck, want <= 1", n)
	}
}

// BenchmarkParsePubAck: the scanner against encoding/json (nats.go's way)
// on the server's answer, interleaved in one run; reports x_vs_json.
func BenchmarkParsePubAck(b *testing.B) {
	body := []byte(`{"stream":"CMD","seq":123456789}`)
	type PubAck struct {
		Stream    string `json:"stream"`
		Domain    string `json:"domain,omitempty"`
		Sequence  uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate,omitempty"`
	}
	var scan, js float64
	b.ReportAllocs()
	for b.Loop() {
		t0 := nanotime()
		for range 100 {
			if _, err := ParsePubAck(body); err != nil {
				b.Fatal(err)
			}
		}
		t1 := nanotime()
		for range 100 {
			var r struct {
				Error *jetstream.APIError `json:"error"`
				*PubAck
			}
			if err := json.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
		}
		t2 := nanotime()
		scan += float64(t1 - t0)
		js += float64(t2 - t1)
	}
	b.ReportMetric(scan/float64(b.N)/100, "scan-ns/ack")
	b.ReportMetric(js/float64(b.N)/100, "json-ns/ack")
	b.ReportMetric(js/scan, "x_vs_json")
}

func nanotime() int64 { return time.Now().UnixNano() }
