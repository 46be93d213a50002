package monitor

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestNATSOutageAlerts: a 3 s outage of the real NATS server (shut down and
// restarted on the same port and store), shorter than the heartbeat timeout,
// raises nats_interrupted with the embedded default rules, published on
// alerts.critical once NATS is back; a persist heartbeat whose uptime went
// back (kill -9 healed by the restart policy) raises instance_restarted.
// Alerts are core NATS messages: the test's own subscriber reconnects after
// the outage too, and may come back after the monitor announced; the repeat
// of firing alerts (--alert-repeat) is what it then hears, as a real
// subscriber would. A subscriber that starts after an alert fired hears its
// repeat.
func TestNATSOutageAlerts(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartDir(t, dir, -1)
	url := srv.URL
	_, js := natstest.Connect(t, url)
	nc, _ := natstest.Connect(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err := wire.EnsureStreams(t.Context(), js, wire.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	alerts := collectAlerts(t, nc)
	cfg := testConfig(t, url)
	cfg.RulesPath = "" // the embedded defaults, as deployed
	cfg.HeartbeatTimeout = 10 * time.Second
	cfg.AlertRepeat = time.Second
	start(t, cfg)

	// kill -9 of persist: heartbeats every 500 ms, then, after the restart,
	// resume with a smaller uptime, as a real instance's would.
	hb := func(up float64) {
		publishHeartbeat(t, nc, &schema.Heartbeat{Service: "persist", InstanceId: "persist-0", Ready: true,
			Figures: map[string]float64{"uptime_s": up}})
	}
	hb(100)
	hb(100.5)
	time.Sleep(300 * time.Millisecond) // the restart, far below the heartbeat timeout
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(500 * time.Millisecond)
		defer tk.Stop()
		for up := 1.0; ; up += 0.5 {
			b, _ := proto.Marshal(&schema.Heartbeat{Service: "persist", InstanceId: "persist-0", Ready: true,
				SentAtNs: time.Now().UnixNano(), Figures: map[string]float64{"uptime_s": up}})
			_ = nc.Publish(wire.HeartbeatSubject("persist", "persist-0"), b)
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	// Instance rules are frozen for the first HeartbeatTimeout (10s) after the
	// monitor starts, so the alert comes after that, not within it.
	waitfor.True(t, 30*time.Second, func() error {
		return alerts.has("instance_restarted", "instance=persist/persist-0", "firing")
	})
	// A subscriber that starts now hears the firing alert repeated.
	nc2, _ := natstest.Connect(t, url)
	late := collectAlerts(t, nc2)
	waitfor.True(t, 10*time.Second, func() error { return late.hasRepeat("instance_restarted", "instance=persist/persist-0") })
	close(stop)
	<-done
	if alerts.has("instance_lost", "instance=persist/persist-0", "firing") == nil {
		t.Errorf("instance_lost fired for an instance that kept sending heartbeats")
	}

	// 3 s NATS outage.
	port := srv.Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(3 * time.Second) // the outage under test
	natstest.StartDir(t, dir, port)
	waitfor.True(t, 20*time.Second, func() error {
		if a, _ := alerts.match("nats_interrupted", "global", "firing", true); len(a) > 0 {
			return nil
		}
		return errors.New("no firing alert nats_interrupted on global yet (nor a repeat of it)")
	})
	a, subj := alerts.match("nats_interrupted", "global", "firing", true)
	t.Logf("%s: %s", subj[0], a[0].GetMessage())
	if subj[0] != "alerts.critical" {
		t.Errorf("published on %s, want alerts.critical", subj[0])
	}
}
