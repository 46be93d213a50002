package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestRunStackR3: `realmstream run --nats-cluster 3` runs the stack on three
// embedded servers in one JetStream cluster: the command and event streams
// and the world's buckets are replicated 3 times, and bots play through it.
func TestRunStackR3(t *testing.T) {
	ports := freePorts(t, 2)
	base, natsBase := freeBase(t), freeBase(t)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	args := []string{"--data-dir", t.TempDir(), "--nats-port", strconv.Itoa(natsBase), "--nats-cluster", "3",
		"--tcp-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--ws-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--http-base", strconv.Itoa(base), "--bots", "6", "--bots-duration", "6s", "--log-level", "warn"}
	go func() { done <- runStack(ctx, args, out, io.Discard) }()

	waitfor.True(t, 120*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("stack stopped early: %v\n%s", err, out.String())
		default:
		}
		if !regexp.MustCompile(`summary: 6/6 bots connected`).MatchString(out.String()) {
			return fmt.Errorf("no summary yet:\n%s", tail(out.String()))
		}
		return nil
	})
	if m := regexp.MustCompile(`acked (\d+) `).FindStringSubmatch(out.String()); m == nil || m[1] == "0" {
		t.Fatalf("no command acknowledged through the R3 stack:\n%s", tail(out.String()))
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsBase+2)) // the third server
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, name := range []string{wire.StreamCommands, wire.StreamEvents, "KV_world_snapshots"} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if c := st.CachedInfo(); c.Config.Replicas != 3 || c.Cluster == nil || len(c.Cluster.Replicas) != 2 {
			t.Errorf("stream %s: %d replicas configured, cluster %+v: want R3 on three servers", name, c.Config.Replicas, c.Cluster)
		}
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
