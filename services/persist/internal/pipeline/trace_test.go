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
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/pebblestore"
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
