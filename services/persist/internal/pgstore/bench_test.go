package pgstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

// BenchmarkDedupPaths compares, on the same database and the same 50k events
// in batches of 1000, the two ways to make a batch write idempotent:
//
//	hwm      plain COPY into events, exactly-once by the high-water mark row
//	         updated in the same transaction (persist's fast path)
//	staging  COPY into a temp staging table, then INSERT ... ON CONFLICT DO
//	         NOTHING RETURNING into events (persist's slow path, always)
//
// Both include the ownership check and the high-water-mark update; read
// models are left out so only the event path is compared.
func BenchmarkDedupPaths(b *testing.B) {
	ctx := context.Background()
	s := benchSetup(b)
	db := s.DBs()[0]
	const n, batch = 50000, 1000
	zones := []string{"z0_0", "z0_1", "z0_2", "z1_0", "z1_1", "z1_2", "z2_0", "z2_1", "z2_2"}
	var parts []*part
	for i := 0; i < n; i += batch {
		p := &part{logicals: map[int]bool{}}
		for k := i + 1; k <= i+batch; k++ {
			z := zones[k%len(zones)]
			p.events = append(p.events, storetest.Rec(uint64(k), storetest.Moved(fmt.Sprint("e", k), z, fmt.Sprint("p", k%200),
				storetest.Base.Add(time.Duration(k)*time.Millisecond), 1, 2)))
			p.logicals[shard.Of(z)] = true
		}
		parts = append(parts, p)
	}
	reset := func() {
		if _, err := db.Pool.Exec(ctx, `TRUNCATE events, zone_summaries; UPDATE persist_hwm SET seq = 0`); err != nil {
			b.Fatal(err)
		}
	}
	run := func(slow bool) time.Duration {
		b.StopTimer()
		reset()
		b.StartTimer()
		t0 := time.Now()
		for _, p := range parts {
			res, err := s.writeTx(ctx, db, p, slow)
			if err != nil || res.Inserted != batch {
				b.Fatalf("write: %+v %v", res, err)
			}
		}
		return time.Since(t0)
	}
	var tHWM, tStage time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tHWM += run(false)
		tStage += run(true)
	}
	rate := func(d time.Duration) float64 { return float64(n*b.N) / d.Seconds() }
	b.ReportMetric(rate(tHWM), "hwm-rows/s")
	b.ReportMetric(rate(tStage), "staging-rows/s")
	b.ReportMetric(rate(tStage)/rate(tHWM), "staging/hwm")
	b.ReportMetric(0, "ns/op")
}

func benchSetup(b *testing.B) *Store {
	ctx := context.Background()
	url := pgtest.NewDatabase(b)
	m, _ := shard.Even([]shard.DB{{Name: "pg0", URL: url}})
	s, err := Open(ctx, StaticMap{M: m}, Options{}, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	pm := &Partman{Premake: 3, Log: quietLog(), Now: func() time.Time { return storetest.Base }}
	d := s.DBs()[0]
	if err := Migrate(ctx, d.Pool, quietLog()); err != nil {
		b.Fatal(err)
	}
	if _, err := pm.Run(ctx, d.Pool); err != nil {
		b.Fatal(err)
	}
	if err := s.SeedOwnership(ctx); err != nil {
		b.Fatal(err)
	}
	return s
}
