// Package state holds what the monitor knows: a window of recent DB stats
// samples per shard and the last heartbeat of every service instance.
//
// Concurrency: Store is safe for concurrent use; one mutex guards it. Writers
// are the stats consumer and the heartbeat subscription; readers (the rule
// evaluator, /metrics and the dashboard) take copies through Snapshot, so no
// reader holds the lock while doing work.
package state

import (
	"sort"
	"sync"
	"time"

	"github.com/realmstream/realmstream/libs/schema"

	"github.com/realmstream/realmstream/services/monitor/internal/figures"
)

// Point is one sample in a shard's window.
type Point struct {
	At        time.Time // JetStream storage time of the event (server clock)
	StreamSeq uint64
	Sample    figures.Sample
}

// Shard is the window of one shard, oldest first.
type Shard struct {
	Name   string
	Points []Point
}

// Last returns the newest point.
func (s *Shard) Last() Point { return s.Points[len(s.Points)-1] }

// Instance is the last heartbeat of one service instance, and the
// incidents its heartbeats revealed over the last IncidentKeep.
type Instance struct {
	Service    string
	InstanceID string
	Seen       time.Time // when the monitor received the last heartbeat
	HB         *schema.Heartbeat

	// Restarts are the times the instance came back with a smaller uptime_s
	// figure after a last heartbeat that was not "stopping": a crash, an OOM
	// kill, a kill -9 that the restart policy healed before any timeout.
	Restarts []time.Time
	// Gaps are heartbeat gaps longer than Options.GapAfter (a NATS outage or
	// partition, a frozen process): found when the heartbeats resume, so an
	// outage shorter than the heartbeat timeout still leaves a trace.
	Gaps []Event
	// LeasesLost are increases of the leases_lost_total figure (world: zone
	// leases lost to an unreachable, restarted or failed-over Redis).
	LeasesLost []Event
}

// Event is an incident at a time, with its size (seconds of a gap, leases lost).
type Event struct {
	At    time.Time
	Value float64
}

// IncidentKeep bounds how long incidents are kept (and MaxIncidents how many).
const (
	IncidentKeep = 10 * time.Minute
	MaxIncidents = 64
)

// Within returns the number of events since since and the largest value among them.
func Within(evs []Event, since time.Time) (n int, max float64) {
	for _, e := range evs {
		if !e.At.Before(since) {
			n++
			if e.Value > max {
				max = e.Value
			}
		}
	}
	return n, max
}

// CountSince counts the times not before since.
func CountSince(ts []time.Time, since time.Time) int {
	n := 0
	for _, t := range ts {
		if !t.Before(since) {
			n++
		}
	}
	return n
}

func keepEvents(evs []Event, e Event) []Event {
	evs = append(evs, e)
	i := 0
	for i < len(evs) && (e.At.Sub(evs[i].At) > IncidentKeep || len(evs)-i > MaxIncidents) {
		i++
	}
	return append([]Event(nil), evs[i:]...)
}

// Options bound the store.
type Options struct {
	Window      time.Duration // samples older than this (relative to the newest of their shard) are dropped
	MaxSamples  int           // per shard
	ForgetAfter time.Duration // a shard or instance silent this long is forgotten
	// GapAfter: heartbeats of one instance further apart than this are a gap
	// (an incident). Default 3s (heartbeats are sent every 2s or faster).
	GapAfter time.Duration
}

// Store is the monitor's memory.
type Store struct {
	opt Options

	mu        sync.Mutex
	shards    map[string]*Shard
	instances map[string]*Instance // key service/instance
	outages   []Event              // the monitor's own NATS connection: reconnect time, seconds down
}

// New returns an empty store.
func New(opt Options) *Store {
	if opt.MaxSamples <= 0 {
		opt.MaxSamples = 1000
	}
	if opt.GapAfter <= 0 {
		opt.GapAfter = 3 * time.Second
	}
	return &Store{opt: opt, shards: map[string]*Shard{}, instances: map[string]*Instance{}}
}

// AddSample inserts one sample. Samples whose stream sequence is not newer
// than the last one kept for the shard are ignored (redelivery, or the
// durable consumer replaying what the restore already read), which makes
// handling idempotent. It reports whether the sample was kept.
func (s *Store) AddSample(p Point) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := p.Sample.Shard
	sh := s.shards[name]
	if sh == nil {
		sh = &Shard{Name: name}
		s.shards[name] = sh
	}
	if n := len(sh.Points); n > 0 && p.StreamSeq <= sh.Points[n-1].StreamSeq {
		return false
	}
	sh.Points = append(sh.Points, p)
	cut := 0
	for cut < len(sh.Points)-1 && (len(sh.Points)-cut > s.opt.MaxSamples ||
		(s.opt.Window > 0 && p.At.Sub(sh.Points[cut].At) > s.opt.Window)) {
		cut++
	}
	if cut > 0 {
		sh.Points = append(sh.Points[:0:0], sh.Points[cut:]...)
	}
	return true
}

// Heartbeat records a heartbeat received at t.
func (s *Store) Heartbeat(hb *schema.Heartbeat, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := hb.GetService() + "/" + hb.GetInstanceId()
	in := &Instance{Service: hb.GetService(), InstanceID: hb.GetInstanceId(), Seen: t, HB: hb}
	if prev := s.instances[key]; prev != nil {
		in.Restarts, in.Gaps, in.LeasesLost = prev.Restarts, prev.Gaps, prev.LeasesLost
		clean := prev.HB.GetStopping()
		pf, nf := prev.HB.GetFigures(), hb.GetFigures()
		up, upOK := nf["uptime_s"]
		pup, pupOK := pf["uptime_s"]
		restarted := upOK && pupOK && up < pup
		if gap := t.Sub(prev.Seen); gap > s.opt.GapAfter && !clean {
			in.Gaps = keepEvents(in.Gaps, Event{At: t, Value: gap.Seconds()})
		}
		if restarted && !clean {
			in.Restarts = append(in.Restarts, t)
			if len(in.Restarts) > MaxIncidents {
				in.Restarts = in.Restarts[1:]
			}
		}
		if n, ok := nf["leases_lost_total"]; ok {
			p := pf["leases_lost_total"]
			if restarted {
				p = 0 // the counter started again
			}
			if n > p {
				in.LeasesLost = keepEvents(in.LeasesLost, Event{At: t, Value: n - p})
			}
		}
	}
	s.instances[key] = in
}

// NATSOutage records that the monitor's own NATS connection was down from
// from until it reconnected at to.
func (s *Store) NATSOutage(from, to time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outages = keepEvents(s.outages, Event{At: to, Value: to.Sub(from).Seconds()})
}

// Snapshot is a consistent copy of the store at one moment.
type Snapshot struct {
	At        time.Time
	Shards    []Shard    // sorted by name; Points slices are copies
	Instances []Instance // sorted by service, instance
	Outages   []Event    // the monitor's own NATS outages (reconnect time, seconds)
}

// Snapshot copies the store, forgetting shards and instances silent for
// longer than ForgetAfter.
func (s *Store) Snapshot(now time.Time) Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Snapshot{At: now, Outages: append([]Event(nil), s.outages...)}
	for name, sh := range s.shards {
		if len(sh.Points) == 0 {
			continue
		}
		if s.opt.ForgetAfter > 0 && now.Sub(sh.Last().At) > s.opt.ForgetAfter {
			delete(s.shards, name)
			continue
		}
		out.Shards = append(out.Shards, Shard{Name: name, Points: append([]Point(nil), sh.Points...)})
	}
	for key, in := range s.instances {
		if s.opt.ForgetAfter > 0 && now.Sub(in.Seen) > s.opt.ForgetAfter {
			delete(s.instances, key)
			continue
		}
		out.Instances = append(out.Instances, *in)
	}
	sort.Slice(out.Shards, func(i, j int) bool { return out.Shards[i].Name < out.Shards[j].Name })
	sort.Slice(out.Instances, func(i, j int) bool {
		a, b := out.Instances[i], out.Instances[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.InstanceID < b.InstanceID
	})
	return out
}

// Window functions over one shard's points, used by the rules. d bounds the
// look-back from the newest point; fewer than two points give 0 / false.

// Series returns the (time, value) pairs of figure name within d of the newest point.
func (sh *Shard) Series(name string, d time.Duration) ([]time.Time, []float64) {
	if len(sh.Points) == 0 {
		return nil, nil
	}
	from := sh.Last().At.Add(-d)
	var ts []time.Time
	var vs []float64
	for _, p := range sh.Points {
		if d > 0 && p.At.Before(from) {
			continue
		}
		ts = append(ts, p.At)
		vs = append(vs, p.Sample.Numbers[name])
	}
	return ts, vs
}

// Delta is newest minus oldest value within d.
func (sh *Shard) Delta(name string, d time.Duration) float64 {
	_, vs := sh.Series(name, d)
	if len(vs) < 2 {
		return 0
	}
	return vs[len(vs)-1] - vs[0]
}

// Rate is Delta per second of the time between the two points.
func (sh *Shard) Rate(name string, d time.Duration) float64 {
	ts, vs := sh.Series(name, d)
	if len(vs) < 2 {
		return 0
	}
	sec := ts[len(ts)-1].Sub(ts[0]).Seconds()
	if sec <= 0 {
		return 0
	}
	return (vs[len(vs)-1] - vs[0]) / sec
}

// Growing reports whether the figure never fell within d and rose overall,
// over at least three points.
func (sh *Shard) Growing(name string, d time.Duration) bool {
	_, vs := sh.Series(name, d)
	if len(vs) < 3 {
		return false
	}
	for i := 1; i < len(vs); i++ {
		if vs[i] < vs[i-1] {
			return false
		}
	}
	return vs[len(vs)-1] > vs[0]
}

// Aggregate returns min, max and mean of the figure within d.
func (sh *Shard) Aggregate(name string, d time.Duration) (lo, hi, mean float64) {
	_, vs := sh.Series(name, d)
	if len(vs) == 0 {
		return 0, 0, 0
	}
	lo, hi = vs[0], vs[0]
	var sum float64
	for _, v := range vs {
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	return lo, hi, sum / float64(len(vs))
}
