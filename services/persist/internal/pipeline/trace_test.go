package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/pebblestore"
	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

// TestRowSpans stores two tick records, one with an event of a sampled
// command, and checks the spans: one persist.write linking the command's
// span and the record's commit span, one persist.row child of the
// command's span with the row's key; the untraced record adds no span.
func TestRowSpans(t *testing.T) {
	ctx := context.Background()
	_, _, js := natstest.StartWithStreams(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler()), sdktrace.WithSpanProcessor(rec))
	cmdSC := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xc0, 1}, SpanID: trace.SpanID{0xd0, 1}, TraceFlags: trace.FlagsSampled})
	commitSC := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xc0, 2}, SpanID: trace.SpanID{0xd0, 2}, TraceFlags: trace.FlagsSampled})

	traced := storetest.Moved("z0_0/e1", "z0_0", "p1", storetest.Base, 1, 2)
	traced.CommandId, traced.TraceContext = "s1:7", telemetry.EncodeSpanContext(cmdSC)
	h, data := storetest.TickMsg(1, 1, storetest.Moved("z0_0/e0", "z0_0", "p1", storetest.Base, 0, 0), traced)
	telemetry.Inject(trace.ContextWithSpanContext(ctx, commitSC), h)
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: wire.EventSubject("z0_0"), Header: h, Data: data}); err != nil {
		t.Fatal(err)
	}
	h2, data2 := storetest.TickMsg(1, 2, storetest.Moved("z0_0/e2", "z0_0", "p1", storetest.Base, 3, 3))
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: wire.EventSubject("z0_0"), Header: h2, Data: data2}); err != nil {
		t.Fatal(err)
	}
	pb, err := pebblestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	rctx, cancel := context.WithCancel(ctx)
	p, err := New(rctx, js, Config{BatchSize: 1, BatchWait: 20 * time.Millisecond, TracerProvider: tp, StoreName: "pebble"}, pb, quiet())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	waitfor.True(t, 10*time.Second, func() error {
		if n := p.Stats.Messages.Load(); n != 2 {
			return fmt.Errorf("%d records stored, want 2", n)
		}
		return nil
	})
	cancel()
	<-done

	var writes, rows []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "persist.write":
			writes = append(writes, s)
		case "persist.row":
			rows = append(rows, s)
		default:
			t.Errorf("unexpected span %s", s.Name())
		}
	}
	if len(writes) != 1 || len(rows) != 1 {
		t.Fatalf("%d write spans and %d row spans, want 1 and 1 (the untraced record makes none)", len(writes), len(rows))
	}
	w, r := writes[0], rows[0]
	if w.Parent().IsValid() || len(w.Links()) != 2 || w.Links()[0].SpanContext.SpanID() != cmdSC.SpanID() || w.Links()[1].SpanContext.SpanID() != commitSC.SpanID() {
		t.Fatalf("write span: parent %v, links %v", w.Parent(), w.Links())
	}
	if r.Parent().SpanID() != cmdSC.SpanID() || r.SpanContext().TraceID() != cmdSC.TraceID() {
		t.Fatalf("row span parent %v, want the command's span %v", r.Parent(), cmdSC)
	}
	attrs := map[string]string{}
	for _, kv := range r.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["realm.row_key"] != "z0_0/1/1" || attrs["realm.command_id"] != "s1:7" || attrs["realm.store"] != "pebble" {
		t.Fatalf("row span attributes %v", attrs)
	}
}

// TestBatchTraceUnsampledAllocatesNothing: a batch whose events and records
// carry no sampled trace costs no allocation and starts no span, with a
// real provider installed.
func TestBatchTraceUnsampledAllocatesNothing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler()), sdktrace.WithSpanProcessor(rec))
	f := tracedBatch(0)
	bt := newBatchTrace(tp, "postgres")
	ctx := context.Background()
	bt.begin(ctx, f)
	bt.end(f, nil, 0, nil)
	if n := testing.AllocsPerRun(20, func() {
		bt.begin(ctx, f)
		bt.end(f, nil, 0, nil)
	}); n != 0 {
		t.Fatalf("%v allocations per unsampled batch, want 0", n)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans for an unsampled batch", n)
	}
}

// TestRowSpanPerCommandRun: the adjacent rows of one sampled command in one
// record share one persist.row span (realm.rows = 2), another command's row
// gets its own; the batch span links each command once, then the record,
// and counts what did not fit in MaxLinks.
func TestRowSpanPerCommandRun(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler()), sdktrace.WithSpanProcessor(rec))
	sc := func(n byte) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xc0, n}, SpanID: trace.SpanID{0xd0, n}, TraceFlags: trace.FlagsSampled})
	}
	ev := func(i int, cmd string, c trace.SpanContext) *schema.Event {
		e := storetest.Moved(fmt.Sprintf("z0_0/e%d", i), "z0_0", "p1", storetest.Base, float32(i), 0)
		e.CommandId, e.TraceContext = cmd, telemetry.EncodeSpanContext(c)
		return e
	}
	h, data := storetest.TickMsg(1, 1, ev(0, "s1:1", sc(1)), ev(1, "s1:1", sc(1)), ev(2, "s1:2", sc(2)), ev(3, "", trace.SpanContext{}))
	telemetry.Inject(trace.ContextWithSpanContext(context.Background(), sc(9)), h)
	f := &fetched{}
	f.add(headerMsg{h: h}, 5, store.DecodeMessage(5, wire.EventSubject("z0_0"), h, data, storetest.Base))
	bt := newBatchTrace(tp, "postgres")
	bt.begin(context.Background(), f)
	bt.end(f, nil, 0, nil)

	rows := map[string]map[string]string{}
	var write sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "persist.row":
			attrs := map[string]string{}
			for _, kv := range s.Attributes() {
				attrs[string(kv.Key)] = kv.Value.Emit()
			}
			rows[attrs["realm.command_id"]] = attrs
		case "persist.write":
			write = s
		}
	}
	if len(rows) != 2 || rows["s1:1"]["realm.row_key"] != "z0_0/5/0" || rows["s1:1"]["realm.rows"] != "2" ||
		rows["s1:2"]["realm.row_key"] != "z0_0/5/2" || rows["s1:2"]["realm.rows"] != "" || rows["s1:2"]["realm.event_id"] != "z0_0/e2" {
		t.Fatalf("row spans %v", rows)
	}
	if write == nil || len(write.Links()) != 3 || write.Links()[0].SpanContext.SpanID() != sc(1).SpanID() ||
		write.Links()[1].SpanContext.SpanID() != sc(2).SpanID() || write.Links()[2].SpanContext.SpanID() != sc(9).SpanID() {
		t.Fatalf("write span links %v", write.Links())
	}

	// A batch with more sampled commands than MaxLinks: the links stop at
	// MaxLinks, the rest are counted, every command still gets its row span.
	rec2 := tracetest.NewSpanRecorder()
	bt = newBatchTrace(sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler()), sdktrace.WithSpanProcessor(rec2)), "postgres")
	f = tracedBatch(10) // 1000 records of 25 events, every 10th sampled: 2500 commands
	bt.begin(context.Background(), f)
	bt.end(f, nil, 0, nil)
	nrows, dropped := 0, int64(-1)
	for _, s := range rec2.Ended() {
		switch s.Name() {
		case "persist.row":
			nrows++
		case "persist.write":
			if len(s.Links()) != telemetry.MaxLinks {
				t.Errorf("%d links, want %d", len(s.Links()), telemetry.MaxLinks)
			}
			for _, kv := range s.Attributes() {
				if kv.Key == "realm.links_dropped" {
					dropped = kv.Value.AsInt64()
				}
			}
		}
	}
	if want := len(f.recs) / 10; nrows != want || dropped != int64(want+len(f.msgs)-telemetry.MaxLinks) {
		t.Fatalf("%d row spans (want %d), %d links dropped (want %d)", nrows, want, dropped, want+len(f.msgs)-telemetry.MaxLinks)
	}
}
