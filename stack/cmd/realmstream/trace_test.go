package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry/otlptest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestOneTraceFromPacketToRow runs the one-process stack exporting to an
// OTLP/HTTP receiver started by the test, sends one command (a Join) from a
// client and finds its trace: gateway.command -> world.decide ->
// persist.row, one trace id, in order, with the command id and the row's
// key (zone/seq/index, here in the stack's Pebble store), and the tick's
// world.commit and persist's batch write linked to it.
func TestOneTraceFromPacketToRow(t *testing.T) {
	rcv := otlptest.Start()
	defer rcv.Close()
	ports := freePorts(t, 2)
	base := freeBase(t)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	tcp := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := []string{"--data-dir", t.TempDir(), "--nats-port", "-1", "--tcp-addr", tcp, "--ws-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--http-base", strconv.Itoa(base), "--log-level", "warn", "--otlp-endpoint", rcv.URL(), "--trace-sample-ratio", "1"}
	go func() { done <- runStack(ctx, args, out, io.Discard) }()
	var c *client.Conn
	waitStack(t, 90*time.Second, done, out, func() error {
		var err error
		c, err = client.Dial(ctx, "tcp://"+tcp, client.Options{})
		return err
	})
	defer c.Close()
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	w, err := c.Hello(cctx, &schema.Hello{Name: "tracer"})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := c.Join(cctx, "z1_1")
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
	waitfor.True(t, 30*time.Second, func() error {
		ct, err = rcv.CommandTrace(id)
		return err
	})
	t.Logf("trace %s: gateway.command -> world.decide -> persist.row %s (%s); commit %s, write %s",
		ct.Gateway.TraceID, ct.RowKey(), ct.Row.Attrs["realm.store"], ct.Commit.TraceID, ct.Write.TraceID)
	if ct.Row.Attrs["realm.store"] != "pebble" || ct.Row.Attrs["realm.event_type"] != "player_joined" {
		t.Fatalf("row span %v", ct.Row.Attrs)
	}
	if ct.Gateway.Service != "realmstream" || ct.Decide.Scope != "realmstream/world" {
		t.Fatalf("service %q scope %q", ct.Gateway.Service, ct.Decide.Scope)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stack stop: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("stack did not stop within 60s of cancel")
	}
}
