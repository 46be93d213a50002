package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

func recorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler()), sdktrace.WithSpanProcessor(rec))
}

func ended(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// TestCommandSpanAttributes: a sampled command's span names the session,
// zone, command id and client seq, and records the ring wait.
func TestCommandSpanAttributes(t *testing.T) {
	rec, tp := recorder()
	h := start(t, func(c *Config) { c.TracerProvider, c.TraceSampleRatio = tp, 1 })
	_, w := h.login("tcp", "spanny", "z0_1")
	id := wire.CommandID(w.SessionId, 2)
	waitfor.True(t, 5*time.Second, func() error {
		for _, s := range ended(rec, "gateway.command") {
			a := attrs(s)
			if a["realm.command_id"] != id {
				continue
			}
			if a["realm.session"] != w.SessionId || a["realm.zone"] != "z0_1" || a["realm.client_seq"] != "2" || a["realm.command"] != "join" ||
				a["realm.queue_seconds"] == "" || a["realm.stream_seq"] == "" {
				return fmt.Errorf("span attributes %v", a)
			}
			return nil
		}
		return fmt.Errorf("no gateway.command span of %s", id)
	})
}

// TestUnsampledCommandsCarryNoTrace: at ratio 0 no command gets a span or a
// traceparent, but a refusal is still traced.
func TestUnsampledCommandsCarryNoTrace(t *testing.T) {
	rec, tp := recorder()
	h := start(t, func(c *Config) { c.TracerProvider, c.TraceSampleRatio = tp, 0 })
	c, _ := h.login("tcp", "quiet", "z0_2")
	msgs := h.streamMsgs()
	if len(msgs) != 1 || msgs[0].Header.Get(wire.HeaderTraceParent) != "" {
		t.Fatalf("unsampled command headers %v", msgs[0].Header)
	}
	if n := len(ended(rec, "gateway.command")); n != 0 {
		t.Fatalf("%d gateway.command spans at ratio 0", n)
	}
	seq, err := c.Send(context.Background(), &schema.ClientPacket{Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: "no such zone!"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := next(t, c, 5*time.Second); p.GetError() == nil || p.AckSeq != seq {
		t.Fatalf("got %v, want an Error for seq %d", p, seq)
	}
	waitfor.True(t, 5*time.Second, func() error {
		for _, s := range ended(rec, "gateway.refused") {
			if a := attrs(s); a["realm.client_seq"] == fmt.Sprint(seq) && a["realm.code"] != "" {
				return nil
			}
		}
		return fmt.Errorf("no gateway.refused span of seq %d: %d spans", seq, len(rec.Ended()))
	})
}

// TestFanoutSpan: an update message with a traceparent (a traced tick's,
// world.updates) gets a gateway.fanout span in that trace; one without gets
// none.
func TestFanoutSpan(t *testing.T) {
	rec, tp := recorder()
	h := start(t, func(c *Config) { c.TracerProvider, c.TraceSampleRatio = tp, 0 })
	h.login("tcp", "fan", "z0_0")
	b, err := proto.Marshal(&schema.ZoneUpdate{Zone: "z0_0", Cell: 0, Tick: 7, Entities: []*schema.EntityView{{Id: "p-x", X: 1, Y: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xfa, 1}, SpanID: trace.SpanID{0xfa}, TraceFlags: trace.FlagsSampled})
	m := &nats.Msg{Subject: wire.UpdateSubject("z0_0", 0), Data: b, Header: nats.Header{}}
	telemetry.Inject(trace.ContextWithSpanContext(context.Background(), sc), m.Header)
	waitfor.True(t, 5*time.Second, func() error {
		if err := h.nc.PublishMsg(m); err != nil {
			return err
		}
		for _, s := range ended(rec, "gateway.fanout") {
			if s.SpanContext().TraceID() == sc.TraceID() && s.Parent().SpanID() == sc.SpanID() {
				return nil
			}
		}
		return fmt.Errorf("no gateway.fanout span in trace %s", sc.TraceID())
	})
}
