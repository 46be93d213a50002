// Package dashboard serves the monitor's web page: static assets embedded in
// the binary (no build step, no CDN), a JSON snapshot at /api/state and live
// updates as server-sent events at /api/events.
package dashboard

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/realmstream/realmstream/services/monitor/internal/figures"
	"github.com/realmstream/realmstream/services/monitor/internal/rules"
	"github.com/realmstream/realmstream/services/monitor/internal/state"
)

//go:embed assets
var assets embed.FS

// Charted are the figures drawn as time series for every shard.
var Charted = []string{"cache_hit_ratio", "connections", "consumer_lag", "commits_per_sec", "dead_tuples", "default_partition_rows",
	// Pebble's own figures (backend "pebble"), drawn on Pebble cards instead.
	"rows_written", "pebble_disk_space_bytes", "pebble_compaction_debt_bytes", "pebble_read_amp", "pebble_l0_files"}

// View is the JSON document the page renders.
type View struct {
	At            time.Time      `json:"at"`
	Monitor       string         `json:"monitor"`
	Shards        []ShardView    `json:"shards"`
	Alerts        []rules.Active `json:"alerts"`
	Recent        []Event        `json:"recent"`
	Services      []ServiceView  `json:"services"`
	Zones         []state.Zone   `json:"zones"`
	PlayersOnline int64          `json:"players_online"`
	Connections   int64          `json:"connections"`
	Rules         int            `json:"rules"`
	Traffic       Traffic        `json:"traffic"`
	// CommandLag is each zone's commands not yet acked by its owner (set by
	// the caller from a LagPoller).
	CommandLag map[string]uint64 `json:"command_lag"`
}

// ShardView is one shard on the page.
type ShardView struct {
	Shard      string                  `json:"shard"`
	Backend    string                  `json:"backend"`
	Up         bool                    `json:"up"`
	Reporting  bool                    `json:"reporting"`
	AgeSeconds float64                 `json:"age_seconds"`
	Error      string                  `json:"error,omitempty"`
	Figures    map[string]float64      `json:"figures"`
	Series     map[string][][2]float64 `json:"series"` // figure -> [unix ms, value]
	Partitions []figures.Partition     `json:"partitions"`
	Tables     []figures.Table         `json:"tables"`
}

// ServiceView is one service instance on the page.
type ServiceView struct {
	Service     string  `json:"service"`
	Instance    string  `json:"instance"`
	Ready       bool    `json:"ready"`
	Alive       bool    `json:"alive"`
	Stopping    bool    `json:"stopping"`
	AgeSeconds  float64 `json:"age_seconds"`
	HTTPAddr    string  `json:"http_addr"`
	Connections int64   `json:"connections"`
	Players     int64   `json:"players"`
	Zones       int     `json:"zones"`
	// Figures are the instance's own windowed figures from its heartbeat
	// (world: commands_per_sec, events_per_sec, tick_p99_ms, ...; gateway:
	// commands_per_sec, busy_per_sec, errors_per_sec.<code>, ...).
	Figures map[string]float64 `json:"figures"`
}

// Event is a recent alert transition.
type Event struct {
	At       time.Time `json:"at"`
	Rule     string    `json:"rule"`
	Severity string    `json:"severity"`
	State    string    `json:"state"`
	Target   string    `json:"target"`
	Message  string    `json:"message"`
}

// Build assembles the view.
func Build(c rules.Context, monitor string, active []rules.Active, recent []Event, nrules int) View {
	now := c.Snap.At
	v := View{At: now, Monitor: monitor, Alerts: active, Recent: recent, Rules: nrules,
		Zones: c.Snap.Zones(c.ExpectedZones, c.HeartbeatTimeout)}
	if v.Alerts == nil {
		v.Alerts = []rules.Active{}
	}
	if v.Recent == nil {
		v.Recent = []Event{}
	}
	for i := range c.Snap.Shards {
		sh := &c.Snap.Shards[i]
		last := sh.Last()
		age := now.Sub(last.At)
		sv := ShardView{Shard: sh.Name, Backend: last.Sample.Backend, Up: last.Sample.Numbers["up"] != 0,
			Reporting: rules.Reporting(last.Sample, age, c.AbsenceAfter), AgeSeconds: age.Seconds(), Error: last.Sample.Error,
			Figures: last.Sample.Numbers, Series: map[string][][2]float64{}, Partitions: last.Sample.Partitions,
			Tables: last.Sample.Tables}
		for _, f := range Charted {
			pts := make([][2]float64, 0, len(sh.Points))
			for _, p := range sh.Points {
				pts = append(pts, [2]float64{float64(p.At.UnixMilli()), p.Sample.Numbers[f]})
			}
			sv.Series[f] = pts
		}
		v.Shards = append(v.Shards, sv)
	}
	if v.Shards == nil {
		v.Shards = []ShardView{}
	}
	figs, svc := map[string]map[string]float64{}, map[string]string{}
	for _, in := range c.Snap.Instances {
		alive := in.Alive(now, c.HeartbeatTimeout)
		sv := ServiceView{Service: in.Service, Instance: in.InstanceID, Ready: in.HB.GetReady(), Alive: alive,
			Stopping: in.HB.GetStopping(), AgeSeconds: now.Sub(in.Seen).Seconds(), HTTPAddr: in.HB.GetHttpAddr(),
			Connections: in.HB.GetConnections(), Players: in.HB.GetPlayers(), Zones: len(in.HB.GetZones()),
			Figures: in.HB.GetFigures()}
		if sv.Figures == nil {
			sv.Figures = map[string]float64{}
		}
		if alive {
			v.PlayersOnline += sv.Players
			if in.Service == "gateway" { // monitor's own heartbeat repeats the total: count each connection once
				v.Connections += sv.Connections
			}
			figs[in.Service+"/"+in.InstanceID], svc[in.Service+"/"+in.InstanceID] = sv.Figures, in.Service
		}
		v.Services = append(v.Services, sv)
	}
	if v.Services == nil {
		v.Services = []ServiceView{}
	}
	traffic(&v, figs, svc)
	v.CommandLag = map[string]uint64{}
	return v
}

// Hub fans the latest view out to the connected pages.
//
// Concurrency: mu guards latest and subs. Each subscriber has a channel of
// capacity 1 holding a "something changed" token; a slow page skips
// intermediate views and always reads the latest one, so a page never makes
// the publisher wait.
type Hub struct {
	mu     sync.Mutex
	latest []byte
	subs   map[chan struct{}]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[chan struct{}]struct{}{}} }

// Publish replaces the latest view and wakes the subscribers.
func (h *Hub) Publish(v View) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.latest = b
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
}

// Latest returns the latest view's JSON (nil before the first Publish).
func (h *Hub) Latest() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.latest
}

func (h *Hub) subscribe() chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	if h.latest != nil {
		ch <- struct{}{}
	}
	h.mu.Unlock()
	return ch
}

func (h *Hub) unsubscribe(ch chan struct{}) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

// Subscribers returns the number of connected event streams.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Link is a link the page's header shows (e.g. the browser demo of the
// one-process stack).
type Link struct{ Name, URL string }

// Register mounts the page on mux: / (the page), /assets/ (its files),
// /api/state and /api/events. links go into the page's header.
func Register(mux *http.ServeMux, h *Hub, done <-chan struct{}, links ...Link) {
	sub, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(sub)
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", files))
	var lb strings.Builder
	for _, l := range links {
		fmt.Fprintf(&lb, `<a class="hdr-link" href="%s">%s</a>`, html.EscapeString(l.URL), html.EscapeString(l.Name))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page, err := indexWithState(sub, h.Latest())
		if err == nil && lb.Len() > 0 {
			page = bytes.Replace(page, []byte("<!--links-->"), []byte(lb.String()), 1)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b := h.Latest()
		if b == nil {
			b = []byte("{}")
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) { h.serveEvents(w, r, done) })
}

// serveEvents streams the view as server-sent events ("event: state"), with
// a comment every 15s so proxies keep the connection open.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("retry: 2000\n\n"))
	if rc.Flush() != nil {
		return
	}
	ch := h.subscribe()
	defer h.unsubscribe(ch)
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-done:
			return
		case <-keep.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
		case <-ch:
			b := h.Latest()
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := w.Write(append(append([]byte("event: state\ndata: "), b...), '\n', '\n')); err != nil {
				return
			}
			_ = rc.SetWriteDeadline(time.Time{})
		}
		if rc.Flush() != nil {
			return
		}
	}
}
