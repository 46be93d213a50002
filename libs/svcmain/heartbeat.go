package svcmain

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// Heartbeats calls send at once and then every period until ctx is done: the
// one heartbeat loop of every service (send builds the service's
// schema.Heartbeat and hands it to PublishHeartbeat).
func Heartbeats(ctx context.Context, period time.Duration, send func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		send()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PublishHeartbeat publishes hb on svc.hb.<service>.<instance> (core NATS:
// a lost heartbeat is replaced by the next one).
func PublishHeartbeat(nc *nats.Conn, hb *schema.Heartbeat) error {
	if nc == nil {
		return nats.ErrInvalidConnection
	}
	b, err := proto.Marshal(hb)
	if err != nil {
		return err
	}
	return nc.Publish(wire.HeartbeatSubject(hb.GetService(), hb.GetInstanceId()), b)
}
