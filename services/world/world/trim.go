package world

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/world/internal/trim"
)

// trimmer runs the bounded-log policy (internal/trim) over the zones this
// instance owns, every cfg.TrimInterval. Each zone is trimmed below
// min(latest snapshot, persist's acknowledged floor, minimum tail).
type trimmer struct {
	s      *Service
	t      *trim.Trimmer
	purged prometheus.Counter
	// JetStream storage, read every round: the EVT stream against its guard
	// and the account against its limit (ratios 0 when unlimited).
	evtBytes, evtRatio, accountRatio prometheus.Gauge

	mu     sync.Mutex
	lastOK map[string]time.Time // zone -> last trim that was not blocked
}

func newTrimmer(s *Service, t *trim.Trimmer) *trimmer {
	tr := &trimmer{s: s, t: t, lastOK: map[string]time.Time{},
		purged: prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_trim_purged_total",
			Help: "Zone log messages purged from JetStream below the trim floor (they are in the store)."})}
	tr.evtBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "realm_world_evt_stream_bytes", Help: "Bytes stored in the EVT stream."})
	tr.evtRatio = prometheus.NewGauge(prometheus.GaugeOpts{Name: "realm_world_evt_stream_limit_ratio",
		Help: "EVT stream bytes / its MaxBytes guard, or age of its oldest message / MaxAge, whichever is higher (0 without a guard)."})
	tr.accountRatio = prometheus.NewGauge(prometheus.GaugeOpts{Name: "realm_world_jetstream_storage_ratio",
		Help: "JetStream file storage used by the account / its limit (0 when unlimited)."})
	s.ops.Registry.MustRegister(tr.evtBytes, tr.evtRatio, tr.accountRatio)
	s.ops.Registry.MustRegister(tr.purged, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "realm_world_trim_blocked_seconds",
		Help: "Longest time any owned zone has gone without a trim that could act (persist floor unknown, snapshot missing or failing)."},
		tr.blockedSeconds))
	return tr
}

// blockedSeconds is the longest time an owned zone has not been trimmable.
func (tr *trimmer) blockedSeconds() float64 {
	owned := tr.s.Owned()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	worst := 0.0
	now := time.Now()
	for z := range owned {
		at, ok := tr.lastOK[z]
		if !ok {
			continue // not tried yet since this instance took it
		}
		worst = max(worst, now.Sub(at).Seconds())
	}
	return worst
}

func (tr *trimmer) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		owned := tr.s.Owned()
		for z := range owned {
			tr.one(ctx, z)
		}
		tr.storage(ctx)
		tr.mu.Lock()
		for z := range tr.lastOK { // forget zones that moved away
			if _, ok := owned[z]; !ok {
				delete(tr.lastOK, z)
			}
		}
		tr.mu.Unlock()
	}
}

func (tr *trimmer) one(ctx context.Context, zone string) {
	tr.mu.Lock()
	if _, ok := tr.lastOK[zone]; !ok {
		tr.lastOK[zone] = time.Now() // the clock of "blocked" starts when we first try
	}
	tr.mu.Unlock()
	snapSeq, err := tr.snapshotSeq(ctx, zone)
	if err != nil {
		tr.s.log.Warn("trim: cannot read the zone's snapshot; not trimming it", "zone", zone, "err", err)
		return
	}
	res, err := tr.t.Trim(ctx, zone, snapSeq)
	if err != nil {
		if errors.Is(err, trim.ErrNoPersistFloor) {
			tr.s.log.Warn("trim: persist's acknowledged floor is unknown; the zone log is not trimmed until persist answers", "zone", zone, "err", err)
		} else {
			tr.s.log.Warn("trim failed", "zone", zone, "err", err)
		}
		return
	}
	if res.Held == "snapshot" && snapSeq == 0 {
		return // no snapshot yet: blocked until one is written
	}
	tr.purged.Add(float64(res.Purged))
	tr.mu.Lock()
	tr.lastOK[zone] = time.Now()
	tr.mu.Unlock()
	if res.Purged > 0 {
		tr.s.log.Debug("zone log trimmed", "zone", zone, "floor", res.Floor, "held_by", res.Held, "purged", res.Purged,
			"snapshot_seq", res.SnapshotSeq, "persist_floor", res.PersistFloor)
	}
}

// snapshotSeq is the sequence the zone's latest stored snapshot covers (0: none).
func (tr *trimmer) snapshotSeq(ctx context.Context, zone string) (uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	e, err := tr.s.snaps.Get(rctx, zone)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	snap := &schema.ZoneSnapshot{}
	if err := proto.Unmarshal(e.Value(), snap); err != nil {
		return 0, nil // unreadable: recovery would replay from the start, so keep everything
	}
	return snap.LastSeq, nil
}

// storage reads the EVT stream's and the account's JetStream usage.
func (tr *trimmer) storage(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if st, err := tr.s.js.Stream(rctx, wire.StreamEvents); err == nil {
		if info, err := st.Info(rctx); err == nil {
			tr.evtBytes.Set(float64(info.State.Bytes))
			ratio := 0.0
			if mb := info.Config.MaxBytes; mb > 0 {
				ratio = float64(info.State.Bytes) / float64(mb)
			}
			if ma := info.Config.MaxAge; ma > 0 && !info.State.FirstTime.IsZero() {
				ratio = max(ratio, float64(time.Since(info.State.FirstTime))/float64(ma))
			}
			tr.evtRatio.Set(ratio)
		}
	}
	if ai, err := tr.s.js.AccountInfo(rctx); err == nil {
		ratio := 0.0
		if lim := ai.Limits.MaxStore; lim > 0 {
			ratio = float64(ai.Store) / float64(lim)
		}
		tr.accountRatio.Set(ratio)
	}
}
