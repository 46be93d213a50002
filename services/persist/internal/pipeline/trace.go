package pipeline

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// Tracing of a batch. A written batch serves many traces, so its span
// (persist.write, a new trace) is nobody's child: it links to the sampled
// events' command spans (the world.decide context the event carries,
// schema.Event.trace_context), then to the traced records' commit spans
// (the message's traceparent, world.commit), telemetry.MaxLinks in all.
// One command's rows end its trace: the stored rows of a sampled command
// get a persist.row span, a child of its world.decide span, with the row's
// key and what the end-to-end tests read (store, command id, event id and
// type) and a link to the batch span. The rows of one command in one record
// are adjacent (the world appends a command's events together), so they
// share one row span: realm.row_key names the first, realm.rows counts
// them when there are more.
//
// Cost (BenchmarkBatchTrace, BenchmarkTracing; docs/benchmarks.md#tracing):
// an unsampled event costs a length check of its trace context and an
// unsampled record a header lookup, with no allocation; a batch with
// nothing sampled starts no span. A sampled event costs its share of the
// row span, which is nearly all of tracing's cost (span start, end and the
// OTLP export of six attributes and a link), so the row span carries no
// more than the tests and an operator need, and its options are built once
// per batch. The links stop being decoded once the batch span is full;
// the rest are only counted. A failed or retried write of an untraced
// batch still gets a persist.write span with an error status (errors are
// always traced).
type batchTrace struct {
	tracer    trace.Tracer
	storeAttr attribute.KeyValue
	links     telemetry.Links
	rows      []tracedRow
	start     time.Time
	span      trace.Span
	attrs     []attribute.KeyValue // reused by each row span's attributes
	key       []byte               // reused to format row keys
}

// tracedRow is a run of records of the batch (one message, adjacent
// indexes) whose events carry the same sampled command span.
type tracedRow struct {
	i, n int // index into the batch's records, number of records
	sc   trace.SpanContext
}

func newBatchTrace(tp trace.TracerProvider, storeName string) *batchTrace {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &batchTrace{tracer: tp.Tracer("github.com/realmstream/realmstream/services/persist"),
		storeAttr: attribute.String("realm.store", storeName)}
}

// rowKey names a row the way the store keys it: (seq, index) within the
// zone's shard.
func rowKey(r *store.Record) string {
	return string(appendRowKey(nil, r))
}

func appendRowKey(b []byte, r *store.Record) []byte {
	b = append(b, r.Zone...)
	b = append(b, '/')
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, '/')
	return strconv.AppendUint(b, uint64(r.Index), 10)
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
		tc := r.Event.GetTraceContext()
		if len(tc) == 0 {
			continue
		}
		sc := telemetry.DecodeSpanContext(tc)
		if !sc.IsSampled() {
			continue
		}
		if n := len(bt.rows); n > 0 {
			if last := &bt.rows[n-1]; last.sc.Equal(sc) && f.recs[last.i].Seq == r.Seq && f.recs[last.i+last.n-1].Index+1 == r.Index {
				last.n++
				continue
			}
		}
		bt.rows = append(bt.rows, tracedRow{i: i, n: 1, sc: sc})
		if bt.links.Full() {
			bt.links.Drop()
		} else {
			bt.links.Add(sc, attribute.String("realm.command_id", r.Event.GetCommandId()))
		}
	}
	for _, m := range f.msgs {
		h := m.Headers()
		if len(h) == 0 || h.Get(wire.HeaderTraceParent) == "" {
			continue
		}
		if bt.links.Full() {
			bt.links.Drop()
			continue
		}
		bt.links.Add(trace.SpanContextFromContext(telemetry.Extract(context.Background(), h)), attribute.String("realm.record", h.Get(wire.HeaderMsgID)))
	}
	if bt.links.Len() == 0 {
		return ctx
	}
	ctx, bt.span = bt.tracer.Start(ctx, "persist.write", bt.links.Options(trace.WithNewRoot(), trace.WithTimestamp(bt.start),
		trace.WithAttributes(bt.storeAttr, attribute.Int("realm.messages", len(f.msgs)),
			attribute.Int("realm.events", len(f.recs)), attribute.Int("realm.traced_rows", len(bt.rows))))...)
	return ctx
}

// end closes the batch span and writes the row spans of the traced events
// that were stored (their messages not in failed). retries is the number of
// failed write attempts; err is the write's final error (shutdown).
func (bt *batchTrace) end(f *fetched, failed map[uint64]bool, retries int64, err error) {
	if bt.span == nil && (retries > 0 || len(failed) > 0 || err != nil) {
		_, bt.span = bt.tracer.Start(context.Background(), "persist.write", trace.WithNewRoot(), trace.WithTimestamp(bt.start),
			trace.WithAttributes(bt.storeAttr, attribute.Int("realm.messages", len(f.msgs)),
				attribute.Int("realm.events", len(f.recs))))
	}
	if bt.span == nil {
		return
	}
	now := time.Now()
	if err == nil && len(bt.rows) > 0 {
		bt.rowSpans(f, failed, now)
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

// rowSpans writes one persist.row span per stored traced row run, from the
// batch's start to now. The options shared by every row span (timestamps,
// the link to the batch) are built once.
func (bt *batchTrace) rowSpans(f *fetched, failed map[uint64]bool, now time.Time) {
	startAt := trace.WithTimestamp(bt.start)
	endAt := trace.WithTimestamp(now)
	toBatch := trace.WithLinks(trace.Link{SpanContext: bt.span.SpanContext()})
	for _, tr := range bt.rows {
		r := &f.recs[tr.i]
		if failed[r.Seq] {
			continue
		}
		bt.key = appendRowKey(bt.key[:0], r)
		bt.attrs = append(bt.attrs[:0], bt.storeAttr, attribute.String("realm.row_key", string(bt.key)),
			attribute.String("realm.command_id", r.Event.GetCommandId()), attribute.String("realm.event_id", r.EventID),
			attribute.String("realm.event_type", r.Type))
		if tr.n > 1 {
			bt.attrs = append(bt.attrs, attribute.Int("realm.rows", tr.n))
		}
		_, row := bt.tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), tr.sc), "persist.row",
			startAt, toBatch, trace.WithAttributes(bt.attrs...))
		row.End(endAt)
	}
}
