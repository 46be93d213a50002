package pebblestore

import (
	"fmt"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

// BenchmarkWriteRecords: the Pebble store alone, one Write (one synced
// Pebble batch) per batch of 1000 tick records of 25 events (9 zones, 200
// players, mostly moves), as the pipeline calls it once per fetched
// JetStream batch. Reports events/s (target of the whole pipeline on
// Pebble: >= 50k events/s).
func BenchmarkWriteRecords(b *testing.B) {
	zones := []string{"z0_0", "z0_1", "z0_2", "z1_0", "z1_1", "z1_2", "z2_0", "z2_1", "z2_2"}
	const msgs, per = 1000, 25
	batch := func(first uint64) []store.Record {
		var out []store.Record
		for m := uint64(0); m < msgs; m++ {
			seq := first + m
			zone := zones[seq%uint64(len(zones))]
			evs := make([]*schema.Event, per)
			for i := range evs {
				n := int(seq)*per + i
				player := fmt.Sprintf("p%d", n%200)
				ts := storetest.Base.Add(time.Duration(n) * time.Microsecond)
				if n%200 < 9 {
					evs[i] = storetest.Joined(fmt.Sprint("e", n), zone, player, ts, 100)
				} else {
					evs[i] = storetest.Moved(fmt.Sprint("e", n), zone, player, ts, float32(n%1000), 1)
				}
			}
			out = append(out, storetest.Tick(seq, evs...)...)
		}
		return out
	}
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var batches [][]store.Record
	for i := 0; i < b.N; i++ {
		batches = append(batches, batch(uint64(i*msgs+1)))
	}
	b.ResetTimer()
	t0 := time.Now()
	for _, recs := range batches {
		if _, err := s.Write(b.Context(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*msgs*per)/time.Since(t0).Seconds(), "ev/s")
}
