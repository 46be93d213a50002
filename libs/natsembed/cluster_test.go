package natsembed

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStartCluster: three embedded servers form one JetStream cluster; an R3
// stream is placed on all three, and a publish is acknowledged by the quorum
// with one node down.
func TestStartCluster(t *testing.T) {
	cl, err := StartCluster(Config{Port: -1, StoreDir: t.TempDir()}, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Shutdown()
	nc, err := nats.Connect(cl.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := 1 + len(info.Cluster.Replicas); n != 3 {
		t.Fatalf("stream on %d servers, want 3 (leader %q, replicas %v)", n, info.Cluster.Leader, info.Cluster.Replicas)
	}
	if _, err := js.Publish(ctx, "t.a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// One node down (not the one the client is on, to keep the test short):
	// the other two are a quorum.
	for _, s := range cl.Servers {
		if s.ClientURL() != nc.ConnectedUrl() {
			s.Shutdown()
			s.WaitForShutdown()
			break
		}
	}
	var ack *jetstream.PubAck
	for ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err = js.Publish(pctx, "t.a", []byte("2"))
		pcancel()
		if err == nil {
			break
		}
	}
	if err != nil || ack.Sequence != 2 {
		t.Fatalf("publish with a node down: %v %v", ack, err)
	}
}

func TestStartClusterRefusesZero(t *testing.T) {
	if _, err := StartCluster(Config{Port: -1, StoreDir: t.TempDir()}, 0); err == nil {
		t.Fatal("a cluster of 0 servers started")
	}
}
