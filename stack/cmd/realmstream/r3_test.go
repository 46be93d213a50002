package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
)

// TestRunStackR3: `realmstream run --nats-cluster 3` runs the stack on three
// embedded servers in one JetStream cluster: the command and event streams
// and the world's buckets are replicated 3 times, and bots play through it.
func TestRunStackR3(t *testing.T) {
	natsBase := freeBase(t)
	out, stop := startStackWithBots(t, 6, "--nats-port", strconv.Itoa(natsBase), "--nats-cluster", "3",
		"--http-base", strconv.Itoa(freeBase(t)))
	if m := regexp.MustCompile(`acked (\d+) `).FindStringSubmatch(out.String()); m == nil || m[1] == "0" {
		t.Fatalf("no command acknowledged through the R3 stack:\n%s", tail(out.String()))
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsBase+2)) // the third server
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for _, name := range []string{wire.StreamCommands, wire.StreamEvents, "KV_world_snapshots"} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if c := st.CachedInfo(); c.Config.Replicas != 3 || c.Cluster == nil || len(c.Cluster.Replicas) != 2 {
			t.Errorf("stream %s: %d replicas configured, cluster %+v: want R3 on three servers", name, c.Config.Replicas, c.Cluster)
		}
	}
	stop()
}
