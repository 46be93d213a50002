package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/realmstream/realmstream/e2e/harness"
	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry/otlptest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestOneTraceAcrossProcesses runs gateway, world and persist as separate
// processes (real Redis and Postgres), each exporting over OTLP/HTTP to a
// receiver started by the test, sends one command from a client and finds
// one trace from the gateway's span to persist's row span, each span from
// its own process, with the command id; the row named by the row span's key
// is in Postgres and holds the command's event.
func TestOneTraceAcrossProcesses(t *testing.T) {
	rcv := otlptest.Start()
	defer rcv.Close()
	otlp := []string{"REALM_OTLP_ENDPOINT=" + rcv.URL()}
	st := harness.StartStack(t, harness.StackConfig{Gateways: 1, Worlds: 1, Persists: 1, Shards: 1,
		Env:  map[string][]string{"gateway": otlp, "world": otlp, "persist": otlp},
		Args: map[string][]string{"gateway": {"--trace-sample-ratio", "1"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "tcp://"+st.GatewayAddrs()[0][0], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Hello(ctx, &schema.Hello{Name: "tracer"})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := c.Join(ctx, "z0_0")
	if err != nil {
		t.Fatal(err)
	}
	for p := range c.Packets() {
		if p.AckSeq == seq {
			if p.GetAck() == nil {
				t.Fatalf("join answered %v", p)
			}
			break
		}
	}
	id := wire.CommandID(w.SessionId, seq)
	var ct otlptest.CommandTrace
	waitfor.True(t, 60*time.Second, func() error {
		ct, err = rcv.CommandTrace(id)
		return err
	})
	if ct.Gateway.Service != "gateway" || ct.Decide.Service != "world" || ct.Row.Service != "persist" ||
		ct.Commit.Service != "world" || ct.Write.Service != "persist" {
		t.Fatalf("services: gateway.command %q, world.decide %q, persist.row %q, world.commit %q, persist.write %q",
			ct.Gateway.Service, ct.Decide.Service, ct.Row.Service, ct.Commit.Service, ct.Write.Service)
	}
	if ct.Row.Attrs["realm.store"] != "postgres" {
		t.Fatalf("row span %v", ct.Row.Attrs)
	}
	// The row span's key names the Postgres row of the command's event.
	k := strings.Split(ct.RowKey(), "/")
	if len(k) != 3 {
		t.Fatalf("row key %q", ct.RowKey())
	}
	rseq, _ := strconv.ParseInt(k[1], 10, 64)
	idx, _ := strconv.ParseInt(k[2], 10, 32)
	pg, err := pgx.Connect(ctx, st.PGURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	var eventID, typ string
	if err := pg.QueryRow(ctx, `SELECT event_id, type FROM events WHERE zone = $1 AND seq = $2 AND idx = $3`, k[0], rseq, int32(idx)).Scan(&eventID, &typ); err != nil {
		t.Fatalf("row %s in Postgres: %v", ct.RowKey(), err)
	}
	if eventID != ct.Row.Attrs["realm.event_id"] || typ != "player_joined" {
		t.Fatalf("row %s holds %s (%s), the span names %s", ct.RowKey(), eventID, typ, ct.Row.Attrs["realm.event_id"])
	}
	t.Logf("trace %s: gateway(%s) -> world(%s) -> persist row %s = Postgres row %s; commit trace %s, batch trace %s",
		ct.Gateway.TraceID, ct.Gateway.SpanID, ct.Decide.SpanID, ct.RowKey(), eventID, ct.Commit.TraceID, ct.Write.TraceID)
	st.CheckNoCrashes(t)
}
