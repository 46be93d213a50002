package gateway

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// disconnector tells the world about connections that closed without Leave
// (issue 10 #13): a Disconnect command for the player on cmd.<zone>, which
// the zone holds for its grace period (world --disconnect-grace) and then
// removes the body; any later command of the session (a resume) cancels it.
// Before, the gateway told the world nothing and a vanished player stayed for
// the 10-minute idle rule, counted online.
//
// It publishes synchronously from its own goroutines, on a JetStream context
// of its own (the publisher's context routes every PubAck to the ring's
// items), with the same retries as commands; Run waits for them (bounded by
// the drain deadline) before it closes the NATS connection.
type disconnector struct {
	once sync.Once
	js   jetstream.JetStream
	wg   sync.WaitGroup
}

// sendDisconnect publishes the Disconnect of c's player if c was in a zone,
// did not Leave, and its session did not move to another connection.
func (s *Service) sendDisconnect(c *conn, zone, reason string) {
	if zone == "" || c.session == "" || !c.authed.Load() {
		return
	}
	c.ses.mu.Lock()
	handedOff := c.ses.handedOff
	c.ses.mu.Unlock()
	if handedOff {
		return // resumed elsewhere: the session lives on
	}
	d := &s.disc
	d.once.Do(func() {
		js, err := jetstream.New(s.nc)
		if err != nil {
			s.log.Error("jetstream context for disconnects", "err", err)
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
		CommandId: c.session + "/disconnect/" + strconv.FormatInt(now, 36),
		SessionId: c.session, PlayerId: c.player, PlayerName: c.name, Zone: zone, ReceivedAtNs: now,
		Body: &schema.Command_Disconnect{Disconnect: &schema.Disconnect{Reason: reason}},
	}
	b, err := proto.Marshal(cmd)
	if err != nil {
		return
	}
	m := wire.CommandMsg(wire.CommandHeaders{MsgID: cmd.CommandId, Session: c.session, Player: c.player, Zone: zone}, b)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		var err error
		for attempt := 0; attempt <= s.cfg.PublishRetries; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
			_, err = d.js.PublishMsg(ctx, m) // same msg id: a retry is deduplicated
			cancel()
			if err == nil {
				s.m.disconnects.Inc()
				return
			}
		}
		s.log.Warn("disconnect not delivered to the world; the zone's idle rule will remove the player", "session", c.session, "zone", zone, "err", err)
	}()
}

// wait waits for the disconnects under way, at most until deadline closes.
func (d *disconnector) wait(deadline <-chan struct{}) {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline:
	}
}
