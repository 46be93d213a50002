// Package tracing is the gateway's tracing, the head of every command's
// trace. The gateway takes the sampling decision (HeadSampler,
// --trace-sample-ratio) when it accepts a command, before any span exists: a
// sampled command gets a gateway.command span from the packet's arrival
// (decode included) through the ring wait (attribute realm.queue_seconds,
// event "dequeued"), the publish attempts and the PubAck, and its
// traceparent goes on the command message (the world continues it). An
// unsampled command gets the no-op span (noSpan) and no header: no
// allocation, no time lookup. Refusals (an Error or Busy answer) are always
// traced: a gateway.refused span each, bounded by RefusalSpansPerSec so that
// a flood of bad packets cannot flood the trace pipeline (the refusals
// beyond it are counted: RefusalSpansDropped). An update whose message
// carries a traceparent (the world's world.updates span of a traced tick)
// gets a gateway.fanout span with the number of clients it was queued to.
package tracing

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
)

// noSpan is the span of an unsampled command: the shared no-op span of the
// API (SpanFromContext of an empty context), so End and SetAttributes are
// free and nothing allocates.
var noSpan = trace.SpanFromContext(context.Background())

// RefusalSpansPerSec bounds the gateway.refused spans of one process.
const RefusalSpansPerSec = 50

// Config says where spans go.
type Config struct {
	// TracerProvider is the embedder's provider (and turns tracing on);
	// nil: the global provider, on when OTLPEndpoint is set.
	TracerProvider trace.TracerProvider
	OTLPEndpoint   string
	// SampleRatio is the share of commands traced while tracing is on.
	SampleRatio float64
}

// Tracing starts the gateway's spans. The zero value is off; New sets it up.
type Tracing struct {
	tracer trace.Tracer
	head   telemetry.HeadSampler
	on     bool
	// refusals bounds the refusal spans (RefusalSpansPerSec) and counts the
	// ones beyond it; nil while tracing is off.
	refusals *telemetry.SpanLimit
}

// New sets up the gateway's tracing: off (nothing sampled, no refusal
// spans) unless an OTLP endpoint is configured or the embedder gives a
// TracerProvider.
func New(cfg Config) (*Tracing, error) {
	tp := cfg.TracerProvider
	on := tp != nil || cfg.OTLPEndpoint != ""
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t := &Tracing{tracer: tp.Tracer("github.com/realmstream/realmstream/services/gateway")}
	if !on {
		return t, nil
	}
	t.on = true
	head, err := telemetry.NewHeadSampler(cfg.SampleRatio)
	if err != nil {
		return t, err
	}
	t.head, t.refusals = head, telemetry.NewSpanLimit(RefusalSpansPerSec, nil)
	return t, nil
}

// StartCommand starts the span of an accepted command when its trace is
// sampled and puts its traceparent on msg; otherwise it returns noSpan.
func (t *Tracing) StartCommand(received time.Time, cmd *schema.Command, msg *nats.Msg) trace.Span {
	if !t.head.Sample() {
		return noSpan
	}
	ctx, span := t.tracer.Start(context.Background(), "gateway.command", trace.WithTimestamp(received),
		trace.WithAttributes(attribute.String("realm.command_id", cmd.CommandId), attribute.String("realm.session", cmd.SessionId),
			attribute.String("realm.player", cmd.PlayerId), attribute.String("realm.zone", cmd.Zone),
			attribute.Int64("realm.client_seq", int64(cmd.ClientSeq)), attribute.String("realm.command", wire.CommandType(cmd))))
	telemetry.Inject(ctx, msg.Header)
	return span
}

// Client is the connection a refusal answers. Refused reads it only when it
// makes a span: the session and player are set by the connection's reader
// at Hello while other goroutines (the ack callbacks, the Hello timer) may
// refuse, so they must not be read on every refusal (and the client's own
// accessors say how they may be read).
type Client interface {
	Session() string
	Player() string
	Zone() string
}

// Refused records an Error or Busy answer to c's packet seq as a span
// (bounded rate; the refusals beyond it are counted).
func (t *Tracing) Refused(c Client, seq uint64, code schema.ErrorCode, msg string) {
	if !t.AllowRefusal() {
		return
	}
	sid := c.Session()
	_, span := t.tracer.Start(context.Background(), "gateway.refused",
		trace.WithAttributes(attribute.String("realm.session", sid), attribute.String("realm.player", c.Player()),
			attribute.String("realm.zone", c.Zone()), attribute.Int64("realm.client_seq", int64(seq)),
			attribute.String("realm.command_id", wire.CommandID(sid, seq)), attribute.String("realm.code", code.String())))
	span.SetStatus(codes.Error, msg)
	span.End()
}

// RefusalSpansDropped is the number of refusals not traced because of the
// rate bound (for realm_gateway_refusal_spans_dropped_total).
func (t *Tracing) RefusalSpansDropped() int64 { return t.refusals.Dropped() }

// AllowRefusal takes a token of the refusal span budget (never while
// tracing is off: no span, nothing counted).
func (t *Tracing) AllowRefusal() bool { return t.on && t.refusals.Allow() }

// Fanout records the fan-out of a traced update message (from start: the
// frames queued to every client whose area holds its cells); untraced
// messages cost a header length check (fanout.Tracer).
func (t *Tracing) Fanout(m *nats.Msg, zone string, start time.Time) {
	if len(m.Header) == 0 || m.Header.Get(wire.HeaderTraceParent) == "" {
		return
	}
	_, span := t.tracer.Start(telemetry.Extract(context.Background(), m.Header), "gateway.fanout", trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("realm.zone", zone), attribute.String("realm.subject", m.Subject), attribute.Int("realm.bytes", len(m.Data))))
	span.End()
}
