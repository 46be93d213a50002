package ingest

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// Disconnects tells the world about connections that closed without Leave
// (issue 10 #13): a Disconnect command for the player on cmd.<zone>, which
// the zone holds for its grace period (world --disconnect-grace) and then
// removes the body; any later command of the session (a resume) cancels it.
// Before, the gateway told the world nothing and a vanished player stayed for
// the 10-minute idle rule, counted online.
//
// It publishes synchronously from its own goroutines, on a JetStream context
// of its own (the Publisher's context routes every PubAck to the ring's
// items), with the same retries as commands; the gateway waits for them
// (Wait, bounded by the drain deadline) before it closes the NATS connection.
type Disconnects struct {
	Retries int           // retries of a failed publish (--publish-retries)
	Timeout time.Duration // one publish (--publish-timeout)
	Sent    prometheus.Counter
	Log     *slog.Logger

	once sync.Once
	js   jetstream.JetStream
	wg   sync.WaitGroup
}

// Send publishes, on nc, the Disconnect of the player of session in zone
// (the caller decides that one is due: in a zone, no Leave, the session not
// resumed elsewhere).
func (d *Disconnects) Send(nc *nats.Conn, session, player, name, zone, reason string) {
	d.once.Do(func() {
		js, err := jetstream.New(nc)
		if err != nil {
			d.Log.Error("jetstream context for disconnects", "err", err)
			return
		}
		d.js = js
	})
	if d.js == nil {
		return
	}
	now := time.Now().UnixNano()
	cmd := &schema.Command{
		// Unique per close (a session may disconnect again after a resume);
		// not of the form session:seq, so it takes no client seq.
		CommandId: session + "/disconnect/" + strconv.FormatInt(now, 36),
		SessionId: session, PlayerId: player, PlayerName: name, Zone: zone, ReceivedAtNs: now,
		Body: &schema.Command_Disconnect{Disconnect: &schema.Disconnect{Reason: reason}},
	}
	b, err := proto.Marshal(cmd)
	if err != nil {
		return
	}
	m := wire.CommandMsg(wire.CommandHeaders{MsgID: cmd.CommandId, Session: session, Player: player, Zone: zone}, b)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		var err error
		for attempt := 0; attempt <= d.Retries; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
			_, err = d.js.PublishMsg(ctx, m) // same msg id: a retry is deduplicated
			cancel()
			if err == nil {
				d.Sent.Inc()
				return
			}
		}
		d.Log.Warn("disconnect not delivered to the world; the zone's idle rule will remove the player", "session", session, "zone", zone, "err", err)
	}()
}

// Wait waits for the disconnects under way, at most until deadline closes.
func (d *Disconnects) Wait(deadline <-chan struct{}) {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline:
	}
}
