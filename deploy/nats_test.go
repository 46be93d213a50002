package deploy

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestNATSConfigs: the NATS configuration files of compose and the dev
// overlay load with nats-server's own parser (the version the tests embed)
// and turn JetStream on with a store on the persistent volume and a bounded
// fsync interval.
func TestNATSConfigs(t *testing.T) {
	t.Setenv("POD_NAME", "nats-0") // the dev StatefulSet passes its pod name
	for _, f := range []string{"deploy/compose/nats.conf", "deploy/k8s/overlays/dev/infra/nats.conf"} {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			o, err := server.ProcessConfigFile(filepath.Join(repoRoot, f))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if !o.JetStream || o.StoreDir != "/data/jetstream" {
				t.Errorf("%s: JetStream %v store %q, want on at /data/jetstream (the volume)", f, o.JetStream, o.StoreDir)
			}
			if o.SyncInterval <= 0 || o.SyncInterval > 10*time.Second {
				t.Errorf("%s: sync_interval %v, want set and at most 10s", f, o.SyncInterval)
			}
			if o.Port != 4222 || o.HTTPPort != 8222 {
				t.Errorf("%s: ports %d/%d, want 4222 and monitoring 8222 (the healthchecks use it)", f, o.Port, o.HTTPPort)
			}
			if o.LameDuckDuration <= 0 {
				t.Errorf("%s: no lame_duck_duration", f)
			}
			if o.ServerName == "" || o.ServerName == "$POD_NAME" {
				t.Errorf("%s: server_name %q", f, o.ServerName)
			}
		})
	}
}
