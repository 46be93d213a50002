package jsasync

import (
	"encoding/json"

	"github.com/nats-io/nats.go/jetstream"
)

// ParsePubAck reads a JetStream publish answer. The forms the server writes
// for a stored message ({"stream":"S","seq":N}, with "domain" and
// "duplicate": true) are read by a scanner that allocates only the stream
// name; anything else (an error answer, escapes, other fields, bad JSON) goes
// to encoding/json, with nats.go's meaning: an "error" object is a
// *jetstream.APIError, unreadable JSON or no stream is
// jetstream.ErrInvalidJSAck. FuzzParsePubAck holds the scanner to
// encoding/json's reading of the same bytes.
func ParsePubAck(b []byte) (Ack, error) {
	if a, ok := scanPubAck(b); ok {
		return a, nil
	}
	var r pubAckJSON
	if err := json.Unmarshal(b, &r); err != nil {
		return Ack{}, jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return Ack{}, r.Error
	}
	if r.Stream == "" {
		return Ack{}, jetstream.ErrInvalidJSAck
	}
	return Ack{Stream: r.Stream, Domain: r.Domain, Sequence: r.Sequence, Duplicate: r.Duplicate}, nil
}

// pubAckJSON is a publish answer as encoding/json reads it (nats.go's
// pubAckResponse).
type pubAckJSON struct {
	Error     *jetstream.APIError `json:"error"`
	Stream    string              `json:"stream"`
	Domain    string              `json:"domain"`
	Sequence  uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate"`
}

// scanPubAck reads one flat object of the keys stream, domain (plain ASCII
// strings without escapes), seq (a decimal uint64) and duplicate (true or
// false), any order, repeats allowed (the last wins, as in encoding/json).
// ok is false for anything else, including a missing or empty stream: the
// caller then asks encoding/json.
func scanPubAck(b []byte) (a Ack, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return Ack{}, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return Ack{}, false // no stream
	}
	for {
		key, j, ok := scanString(b, i)
		if !ok {
			return Ack{}, false
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return Ack{}, false
		}
		i = skipWS(b, i+1)
		switch k := string(key); k { // compared, not allocated
		case "stream", "domain":
			v, j, ok := scanString(b, i)
			if !ok {
				return Ack{}, false
			}
			if k == "stream" {
				a.Stream = string(v)
			} else {
				a.Domain = string(v)
			}
			i = j
		case "seq":
			n, j, ok := scanUint(b, i)
			if !ok {
				return Ack{}, false
			}
			a.Sequence, i = n, j
		case "duplicate":
			switch {
			case hasAt(b, i, "true"):
				a.Duplicate, i = true, i+4
			case hasAt(b, i, "false"):
				a.Duplicate, i = false, i+5
			default:
				return Ack{}, false
			}
		default:
			return Ack{}, false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return Ack{}, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
			continue
		case '}':
			if skipWS(b, i+1) != len(b) || a.Stream == "" {
				return Ack{}, false
			}
			return a, true
		default:
			return Ack{}, false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString reads a string of printable ASCII without escapes at b[i];
// it returns its bytes and the index after the closing quote.
func scanString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanUint reads a JSON integer without sign, fraction or exponent that
// fits in a uint64; leading zeros are not JSON.
func scanUint(b []byte, i int) (n uint64, next int, ok bool) {
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		d := uint64(b[j] - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, 0, false
		}
		n = n*10 + d
		j++
	}
	if j == i || (b[i] == '0' && j > i+1) {
		return 0, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, 0, false
	}
	return n, j, true
}

func hasAt(b []byte, i int, s string) bool {
	return len(b)-i >= len(s) && string(b[i:i+len(s)]) == s
}
