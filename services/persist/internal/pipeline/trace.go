package pipeline

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// Tracing of a batch. A written batch serves many traces, so its span
// (persist.write, a new trace) is nobody's child: it links to every sampled
// event's command span (the world.decide context the event carries,
// schema.Event.trace_context) and to every traced record's commit span (the
// message's traceparent, world.commit). One event is one row caused by one
// command, so each stored event of a sampled command also gets a
// persist.row span, a child of its world.decide span: the command's trace
// ends at its row, with the row's key as attributes (store, zone, seq,
// index, event id). A batch with no sampled event creates no span and
// allocates nothing for tracing; a failed or retried write of an untraced
// batch still gets a persist.write span with an error status (errors are
// always traced).
type batchTrace struct {
	tracer trace.Tracer
	store  string
	links  telemetry.Links
	rows   []tracedRow
	start  time.Time
	span   trace.Span
}

// tracedRow is a record of the batch whose event carries a sampled trace.
type tracedRow struct {
	i  int // index into the batch's records
	sc trace.SpanContext
}

func newBatchTrace(tp trace.TracerProvider, storeName string) *batchTrace {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &batchTrace{tracer: tp.Tracer("github.com/realmstream/realmstream/services/persist"), store: storeName}
}

// rowKey names a row the way the store keys it: (seq, index) within the
// zone's shard.
func rowKey(r *store.Record) string {
	return r.Zone + "/" + strconv.FormatUint(r.Seq, 10) + "/" + strconv.FormatUint(uint64(r.Index), 10)
}

// begin collects the batch's links and starts its span when one of its
// events or records is sampled; ctx then carries the span (the store's own
// spans are its children).
func (bt *batchTrace) begin(ctx context.Context, f *fetched) context.Context {
	bt.links.Reset()
	bt.rows = bt.rows[:0]
	bt.span = nil
	bt.start = time.Now()
	for i := range f.recs {
		r := &f.recs[i]
		if tc := r.Event.GetTraceContext(); len(tc) != 0 {
			if sc := telemetry.DecodeSpanContext(tc); sc.IsSampled() {
				bt.links.Add(sc, attribute.String("realm.command_id", r.Event.GetCommandId()))
				bt.rows = append(bt.rows, tracedRow{i, sc})
			}
		}
	}
	for _, m := range f.msgs {
		if h := m.Headers(); h != nil && h.Get("traceparent") != "" {
			bt.links.Add(trace.SpanContextFromContext(telemetry.Extract(context.Background(), h)), attribute.String("realm.record", h.Get("Nats-Msg-Id")))
		}
	}
	if bt.links.Len() == 0 {
		return ctx
	}
	ctx, bt.span = bt.tracer.Start(ctx, "persist.write", bt.links.Options(trace.WithNewRoot(), trace.WithTimestamp(bt.start),
		trace.WithAttributes(attribute.String("realm.store", bt.store), attribute.Int("realm.messages", len(f.msgs)),
			attribute.Int("realm.events", len(f.recs))))...)
	return ctx
}

// end closes the batch span and writes the row spans of the traced events
// that were stored (their messages not in failed). retries is the number of
// failed write attempts; err is the write's final error (shutdown).
func (bt *batchTrace) end(f *fetched, failed map[uint64]bool, retries int64, err error) {
	if bt.span == nil && (retries > 0 || len(failed) > 0 || err != nil) {
		_, bt.span = bt.tracer.Start(context.Background(), "persist.write", trace.WithNewRoot(), trace.WithTimestamp(bt.start),
			trace.WithAttributes(attribute.String("realm.store", bt.store), attribute.Int("realm.messages", len(f.msgs)),
				attribute.Int("realm.events", len(f.recs))))
	}
	if bt.span == nil {
		return
	}
	now := time.Now()
	batch := bt.span.SpanContext()
	// The row spans carry what names the row (store, key = zone/seq/index,
	// logical shard), its event and its command: few attributes, because at
	// ratio 1 this is one span per stored event.
	for _, tr := range bt.rows {
		r := &f.recs[tr.i]
		if err != nil || failed[r.Seq] {
			continue
		}
		_, row := bt.tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), tr.sc), "persist.row",
			trace.WithTimestamp(bt.start), trace.WithLinks(trace.Link{SpanContext: batch}),
			trace.WithAttributes(attribute.String("realm.store", bt.store), attribute.String("realm.command_id", r.Event.GetCommandId()),
				attribute.String("realm.event_id", r.EventID), attribute.String("realm.row_key", rowKey(r)),
				attribute.Int("realm.logical_shard", shard.Of(r.Zone)), attribute.String("realm.event_type", r.Type)))
		row.End(trace.WithTimestamp(now))
	}
	bt.span.SetAttributes(attribute.Int("realm.not_stored", len(failed)), attribute.Int64("realm.retries", retries))
	if err != nil || len(failed) > 0 || retries > 0 {
		if err != nil {
			bt.span.RecordError(err)
		}
		bt.span.SetStatus(codes.Error, "write failed in part or retried")
	}
	bt.span.End(trace.WithTimestamp(now))
	bt.span = nil
}
