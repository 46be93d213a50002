package zone

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
)

// Tracing of a tick. A command whose trace is sampled (it carries a
// traceparent: the gateway injects one only for sampled commands) gets a
// world.decide span, a child of its gateway.command span: one command, one
// cause. The tick's commit carries many commands, so it is a span of its own
// (world.commit, a new trace) with one link per sampled command it decided,
// never the child of one of them; its context is the traceparent of the
// committed record, which persist links to. Each event of a sampled command
// carries the world.decide span context (schema.Event.trace_context), so
// persist can put the event's row into the command's trace. The updates of
// a traced tick are published under a world.updates span, child of the
// commit, with a traceparent on each update message (the gateway's fan-out
// span continues it). A tick with no sampled command creates no span and
// allocates nothing for tracing.
//
// A command refused by the rules whose trace was not sampled still gets a
// world.decide span (a root, always sampled): refusals are always traced,
// within the process's budget (Metrics.refusalSpans, a token bucket of
// telemetry.DefaultRootSpansPerSec shared by the zones), so that a flood of
// refused commands cannot flood the collector; the refusals beyond it are
// counted (realm_world_refusal_spans_dropped_total) and leave no trace
// (their events carry no trace context, so persist adds no row span). A
// world without Metrics (tests) traces every refusal.
type tickTrace struct {
	links  telemetry.Links
	commit trace.SpanContext // the world.commit span, when the tick was traced
}

// startDecide starts the world.decide span of a command that carries a
// sampled trace; nil otherwise.
func (r *runner) startDecide(ctx context.Context, m jetstream.Msg, cmd *schema.Command) trace.Span {
	if m.Headers().Get(wire.HeaderTraceParent) == "" {
		return nil
	}
	_, span := r.tracer.Start(telemetry.Extract(ctx, m.Headers()), "world.decide",
		trace.WithAttributes(attribute.String("realm.zone", r.c.Zone), attribute.String("realm.command_id", cmd.CommandId),
			attribute.String("realm.session", cmd.SessionId), attribute.Int64("realm.client_seq", int64(cmd.ClientSeq)),
			attribute.Int64("realm.tick", int64(r.tick))))
	if !span.IsRecording() {
		span.End()
		return nil
	}
	return span
}

// decided notes the event a traced command caused: the event carries the
// decide span's context and the tick's commit links to it. A refusal of an
// untraced command starts its own (always sampled) world.decide span.
func (r *runner) decided(ctx context.Context, t *tickState, span trace.Span, cmd *schema.Command, ev *schema.Event) trace.Span {
	rej := ev.GetCommandRejected()
	if span == nil && rej == nil {
		return nil
	}
	if span == nil {
		// The span is started bare first: with tracing off it does not
		// record, and then takes no token and counts no drop. Over the
		// budget it is left unended, so it is never exported.
		_, span = r.tracer.Start(ctx, "world.decide", trace.WithNewRoot())
		if !span.IsRecording() {
			span.End()
			return nil
		}
		if !r.c.Metrics.allowRefusalSpan() {
			return nil
		}
		span.SetAttributes(attribute.String("realm.zone", r.c.Zone), attribute.String("realm.command_id", cmd.CommandId),
			attribute.String("realm.session", cmd.SessionId), attribute.Int64("realm.client_seq", int64(cmd.ClientSeq)),
			attribute.Int64("realm.tick", int64(r.tick)))
	}
	span.SetAttributes(attribute.String("realm.event_id", ev.EventId), attribute.String("realm.event_type", wire.EventType(ev)))
	if rej != nil {
		span.SetStatus(codes.Error, "refused: "+rej.Code.String())
		span.SetAttributes(attribute.String("realm.refused", rej.Reason))
	}
	sc := span.SpanContext()
	ev.TraceContext = telemetry.EncodeSpanContext(sc)
	t.tr.links.Add(sc, attribute.String("realm.command_id", cmd.CommandId), attribute.String("realm.event_id", ev.EventId))
	return span
}

// allowRefusalSpan takes a token of the refusal span budget (always, for
// nil Metrics).
func (m *Metrics) allowRefusalSpan() bool {
	if m == nil {
		return true
	}
	return m.refusalSpans.Allow()
}

// spanContext is span's context, or the empty one for no span.
func spanContext(span trace.Span) trace.SpanContext {
	if span == nil {
		return trace.SpanContext{}
	}
	return span.SpanContext()
}

// startCommit starts the world.commit span of a tick that decided sampled
// commands (ctx then carries it: the record's traceparent); otherwise it
// returns ctx and nil.
func (r *runner) startCommit(ctx context.Context, t *tickState) (context.Context, trace.Span) {
	if t.tr.links.Len() == 0 {
		return ctx, nil
	}
	ctx, span := r.tracer.Start(ctx, "world.commit", t.tr.links.Options(trace.WithNewRoot(),
		trace.WithAttributes(attribute.String("realm.zone", r.c.Zone), attribute.Int64("realm.tick", int64(r.tick)),
			attribute.Int("realm.events", len(t.evs)), attribute.Int("realm.commands", len(t.acks)),
			attribute.Int64("realm.fence", int64(r.app.fence))))...)
	t.tr.commit = span.SpanContext()
	return ctx, span
}

// endCommit ends the commit span with the record's outcome.
func endCommit(span trace.Span, seq uint64, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "commit refused")
	} else {
		span.SetAttributes(attribute.Int64("realm.stream_seq", int64(seq)))
	}
	span.End()
}

// startUpdates starts the world.updates span of a traced tick (child of its
// commit); nil for an untraced tick.
func (r *runner) startUpdates(t *tickState) trace.Span {
	if !t.tr.commit.IsValid() {
		return nil
	}
	_, span := r.tracer.Start(trace.ContextWithSpanContext(context.Background(), t.tr.commit), "world.updates",
		trace.WithAttributes(attribute.String("realm.zone", r.c.Zone), attribute.Int64("realm.tick", int64(r.tick))))
	return span
}

// publishTraced publishes one update of a traced tick with the updates
// span's traceparent.
func (r *runner) publishTraced(span trace.Span, subject string, b []byte) {
	m := &nats.Msg{Subject: subject, Data: b, Header: nats.Header{}}
	telemetry.Inject(trace.ContextWithSpan(context.Background(), span), m.Header)
	_ = r.c.NC.PublishMsg(m)
}

func endUpdates(span trace.Span, n int) {
	if span != nil {
		span.SetAttributes(attribute.Int("realm.updates", n))
		span.End()
	}
}
