package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
)

// Traffic is the game's throughput and health at a glance, summed over the
// live instances' heartbeat figures (each windowed over its heartbeat interval).
type Traffic struct {
	CommandsPerSec float64            `json:"commands_per_sec"` // accepted by the gateways
	EventsPerSec   float64            `json:"events_per_sec"`   // appended by the worlds
	TickP99Ms      float64            `json:"tick_p99_ms"`      // worst world instance
	BusyPerSec     float64            `json:"busy_per_sec"`
	ErrorsPerSec   map[string]float64 `json:"errors_per_sec"` // by error code
}

func traffic(v *View, figs map[string]map[string]float64, svc map[string]string) {
	v.Traffic.ErrorsPerSec = map[string]float64{}
	for inst, f := range figs {
		switch svc[inst] {
		case "gateway":
			v.Traffic.CommandsPerSec += f["commands_per_sec"]
			v.Traffic.BusyPerSec += f["busy_per_sec"]
			for k, x := range f {
				if code, ok := strings.CutPrefix(k, "errors_per_sec."); ok && x > 0 {
					v.Traffic.ErrorsPerSec[code] += x
				}
			}
		case "world":
			v.Traffic.EventsPerSec += f["events_per_sec"]
			v.Traffic.TickP99Ms = max(v.Traffic.TickP99Ms, f["tick_p99_ms"])
		}
	}
}

// LagPoller reads, every few seconds, how many messages wait in each zone's
// command consumer (pending + unacknowledged): the lag of the zone's owner.
// A message is one command, or a command batch of a gateway run with
// --command-batch (JetStream counts messages, not what they hold).
type LagPoller struct {
	js   jetstream.JetStream
	mu   sync.Mutex
	lags map[string]uint64
}

// NewLagPoller returns a poller over js.
func NewLagPoller(js jetstream.JetStream) *LagPoller {
	return &LagPoller{js: js, lags: map[string]uint64{}}
}

// Run polls the consumers of zones() every interval until ctx ends.
func (p *LagPoller) Run(ctx context.Context, zones func() []string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		next := map[string]uint64{}
		for _, z := range zones() {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := p.js.Consumer(qctx, wire.StreamCommands, wire.DurableWorldZone(z))
			if err == nil {
				if info, err := c.Info(qctx); err == nil {
					next[z] = info.NumPending + uint64(info.NumAckPending)
				}
			}
			cancel()
		}
		p.mu.Lock()
		p.lags = next
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Lags returns the latest command lag per zone (nil-safe).
func (p *LagPoller) Lags() map[string]uint64 {
	if p == nil {
		return map[string]uint64{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(p.lags))
	for z, n := range p.lags {
		out[z] = n
	}
	return out
}

// Requester sends a NATS request and returns the answer's payload.
type Requester func(ctx context.Context, subject string, data []byte) ([]byte, error)

var zoneName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// RegisterTimeline mounts GET /api/zone_state?zone=Z&at_seq=N (or at_ns=T):
// the zone's state at that log position, answered by a world instance's
// time-travel API (wire.QueryZoneState), the same code the admin CLI uses.
func RegisterTimeline(mux *http.ServeMux, req Requester, timeout time.Duration) {
	mux.HandleFunc("GET /api/zone_state", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		zone := q.Get("zone")
		if !zoneName.MatchString(zone) {
			http.Error(w, `want ?zone=<zone id>&at_seq=<stream sequence> (or at_ns=<unix ns>)`, http.StatusBadRequest)
			return
		}
		body := map[string]any{"zone": zone}
		for _, k := range []string{"at_seq", "at_ns"} {
			if s := q.Get(k); s != "" {
				n, err := strconv.ParseUint(s, 10, 63)
				if err != nil {
					http.Error(w, k+" must be a non-negative integer", http.StatusBadRequest)
					return
				}
				body[k] = n
			}
		}
		b, _ := json.Marshal(body)
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		out, err := req(ctx, wire.QueryZoneState, b)
		if err != nil {
			http.Error(w, "no world instance answered the time-travel query: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(out)
	})
}

// indexWithState is the page with the latest view inlined, so the first
// paint shows the current state, not an empty page waiting for the first push.
func indexWithState(sub fs.FS, latest []byte) ([]byte, error) {
	page, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		return nil, err
	}
	if latest == nil {
		return page, nil
	}
	// json.Marshal escapes <, > and &, so the view cannot close the script element.
	tag := append(append([]byte(`<script id="initial-state" type="application/json">`), latest...), []byte("</script>")...)
	return bytes.Replace(page, []byte("<!--initial-state-->"), tag, 1), nil
}
