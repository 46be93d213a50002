package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// SpanContextBytes is the size of an encoded span context: trace id (16
// bytes), span id (8), trace flags (1).
const SpanContextBytes = 25

// EncodeSpanContext returns sc in the binary form events carry
// (schema.Event.trace_context), or nil when sc is invalid or not sampled:
// an unsampled command leaves no trace in its events.
func EncodeSpanContext(sc trace.SpanContext) []byte {
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	b := make([]byte, SpanContextBytes)
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(b, tid[:])
	copy(b[16:], sid[:])
	b[24] = byte(sc.TraceFlags())
	return b
}

// DecodeSpanContext is the inverse of EncodeSpanContext; it returns an
// invalid span context for anything else, so a malformed or absent value
// only loses the link. The span context is marked remote: it was created
// in another process (or another part of the pipeline).
func DecodeSpanContext(b []byte) trace.SpanContext {
	if len(b) != SpanContextBytes {
		return trace.SpanContext{}
	}
	var c trace.SpanContextConfig
	copy(c.TraceID[:], b[:16])
	copy(c.SpanID[:], b[16:24])
	c.TraceFlags = trace.TraceFlags(b[24])
	c.Remote = true
	return trace.NewSpanContext(c)
}

// MaxLinks bounds the links one batch span carries (the SDK's default span
// limit is 128; the rest are counted in the span's attribute
// realm.links_dropped instead of being silently lost).
const MaxLinks = 128

// Links collects the span links of a batch span (a world tick commit, a
// persist batch write): one per sampled span context it carries, each with
// the attributes that name what the batch did for it. It stays empty, and
// allocates nothing, while nothing sampled was added.
type Links struct {
	links   []trace.Link
	dropped int
}

// Add links sc (when sampled and valid) with attrs.
func (l *Links) Add(sc trace.SpanContext, attrs ...attribute.KeyValue) {
	if !sc.IsValid() || !sc.IsSampled() {
		return
	}
	if len(l.links) >= MaxLinks {
		l.dropped++
		return
	}
	l.links = append(l.links, trace.Link{SpanContext: sc, Attributes: attrs})
}

// Len is the number of links held.
func (l *Links) Len() int { return len(l.links) }

// Options are the span start options of the links (and the count of the
// dropped ones).
func (l *Links) Options(opts ...trace.SpanStartOption) []trace.SpanStartOption {
	opts = append(opts, trace.WithLinks(l.links...))
	if l.dropped > 0 {
		opts = append(opts, trace.WithAttributes(attribute.Int("realm.links_dropped", l.dropped)))
	}
	return opts
}

// Reset empties l, keeping its memory.
func (l *Links) Reset() {
	clear(l.links)
	l.links, l.dropped = l.links[:0], 0
}

// Full says whether l holds MaxLinks links: what is added then is only
// counted, so callers may skip decoding it and call Drop.
func (l *Links) Full() bool { return len(l.links) >= MaxLinks }

// Drop counts a link that was not added (l is full).
func (l *Links) Drop() { l.dropped++ }
