package svcmain

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// unsetEnv removes the variables of names for the test (t.Setenv cannot unset).
func unsetEnv(t *testing.T, names ...string) {
	for _, n := range names {
		k := envflag.EnvName(n)
		t.Setenv(k, "") // restores the old value at cleanup
		_ = os.Unsetenv(k)
	}
}

func TestCommonFlagsAndDefaults(t *testing.T) {
	unsetEnv(t, "nats-url", "http-addr", "stream-replicas", "heartbeat")
	c := DefaultCommon("svc", 8089)
	if c.HTTPAddr != "127.0.0.1:8089" {
		t.Errorf("ops default %q: want loopback", c.HTTPAddr)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	s := envflag.New(fs)
	c.RegisterFlags(s)
	t.Setenv("REALM_HEARTBEAT", "5s")
	if err := s.Parse([]string{"--nats-url", "nats://n:1", "--http-addr", ":9", "--stream-replicas", "3"}); err != nil {
		t.Fatal(err)
	}
	if c.NATSURL != "nats://n:1" || c.HTTPAddr != ":9" || c.Streams.Replicas != 3 {
		t.Errorf("parsed %+v", c)
	}
	bad := c
	bad.InstanceID, bad.LogLevel, bad.Heartbeat, bad.Streams.Replicas = "a b", "loud", 0, 9
	err := bad.Validate()
	for _, want := range []string{"--instance-id", "--log-level", "--heartbeat", "--stream-replicas"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %s", err, want)
		}
	}
}

type recordSvc struct{ got *Common }

func (recordSvc) Run(context.Context) error { return nil }

// TestBinaryWithoutNATSURLCreatesNoStreams: a binary not pointed at a NATS
// server must not create streams on whatever listens on the default port.
func TestBinaryWithoutNATSURLCreatesNoStreams(t *testing.T) {
	unsetEnv(t, "nats-url", "create-streams")
	run := func(args ...string) (bool, string) {
		c := DefaultCommon("svc", 8089)
		var out bytes.Buffer
		code := Run(args, &out, Spec{Name: "svc", Common: &c, Register: c.RegisterFlags,
			New: func(*slog.Logger) (Service, error) { return recordSvc{&c}, nil }})
		if code != ExitOK {
			t.Fatalf("%v: exit %d", args, code)
		}
		return c.CreateStreams, out.String()
	}
	if create, _ := run("--log-format", "text"); create {
		t.Error("no --nats-url: streams would be created on the default server")
	}
	if create, _ := run("--nats-url", "nats://elsewhere:4222"); !create {
		t.Error("--nats-url given: streams not created")
	}
	if create, _ := run("--create-streams"); !create {
		t.Error("--create-streams given: streams not created")
	}
	t.Setenv("REALM_NATS_URL", "nats://env:4222")
	if create, _ := run(); !create {
		t.Error("REALM_NATS_URL given: streams not created")
	}
}

func TestEnsureStreamsOnlyWhenTold(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL)
	ctx := context.Background()
	c := DefaultCommon("svc", 0)
	c.NATSURL, c.CreateStreams = srv.URL, false
	err := c.EnsureStreams(ctx, js)
	if err == nil || !strings.Contains(err.Error(), wire.StreamCommands) || !strings.Contains(err.Error(), "--create-streams") {
		t.Fatalf("check without streams: %v, want the missing streams named and the way out", err)
	}
	if _, err := js.Stream(ctx, wire.StreamCommands); err == nil {
		t.Fatal("a check created a stream")
	}
	c.CreateStreams = true
	if err := c.EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	c.CreateStreams = false
	if err := c.EnsureStreams(ctx, js); err != nil {
		t.Fatalf("check with streams: %v", err)
	}
}

func TestConnectAndHeartbeats(t *testing.T) {
	srv := natstest.Start(t)
	c := DefaultCommon("svc", 0)
	c.NATSURL, c.InstanceID = srv.URL, "i-1"
	nc, err := Connect("svc", &c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.Opts.Name; got != "svc-i-1" {
		t.Errorf("connection name %q", got)
	}
	sub, err := nc.SubscribeSync(wire.HeartbeatSubject("svc", "i-1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Heartbeats(ctx, 20*time.Millisecond, func() {
			sent.Add(1)
			_ = PublishHeartbeat(nc, &schema.Heartbeat{Service: "svc", InstanceId: "i-1", Ready: true})
		})
	}()
	for i := 0; i < 3; i++ {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
		var hb schema.Heartbeat
		if err := proto.Unmarshal(m.Data, &hb); err != nil || !hb.GetReady() {
			t.Fatalf("heartbeat %d: %v %v", i, &hb, err)
		}
	}
	cancel()
	<-done
	if err := PublishHeartbeat(nil, &schema.Heartbeat{}); err != nats.ErrInvalidConnection {
		t.Errorf("nil connection: %v", err)
	}
}
