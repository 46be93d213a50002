package state

import (
	"testing"
	"time"

	"github.com/realmstream/realmstream/services/monitor/internal/figures"
)

func pt(shard string, seq uint64, at time.Time, lag float64) Point {
	return Point{At: at, StreamSeq: seq, Sample: figures.Sample{Shard: shard, Numbers: map[string]float64{"consumer_lag": lag}}}
}

func TestWindowAndDedupe(t *testing.T) {
	s := New(Options{Window: time.Minute, MaxSamples: 5, ForgetAfter: time.Hour})
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < 10; i++ {
		if !s.AddSample(pt("pg0", uint64(i+1), t0.Add(time.Duration(i)*10*time.Second), float64(i))) {
			t.Fatalf("sample %d refused", i)
		}
	}
	if s.AddSample(pt("pg0", 5, t0.Add(time.Hour), 99)) {
		t.Fatal("old stream sequence accepted (redelivery must be idempotent)")
	}
	snap := s.Snapshot(t0.Add(100 * time.Second))
	sh := snap.Shards[0]
	if len(sh.Points) != 5 || sh.Points[0].StreamSeq != 6 || sh.Last().StreamSeq != 10 {
		t.Fatalf("window = %d points from seq %d", len(sh.Points), sh.Points[0].StreamSeq)
	}
	// Window by time: a sample 2 minutes later keeps only what is within 1m of it.
	s.AddSample(pt("pg0", 11, t0.Add(90*time.Second+2*time.Minute), 20))
	sh = s.Snapshot(t0.Add(4 * time.Minute)).Shards[0]
	if len(sh.Points) != 1 {
		t.Fatalf("time window kept %d points", len(sh.Points))
	}
	// Forgetting.
	if n := len(s.Snapshot(t0.Add(3 * time.Hour)).Shards); n != 0 {
		t.Fatalf("silent shard not forgotten: %d", n)
	}
}

func TestWindowFunctions(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	sh := &Shard{Name: "pg0"}
	for i, v := range []float64{5, 1, 2, 2, 4, 8} {
		sh.Points = append(sh.Points, pt("pg0", uint64(i+1), t0.Add(time.Duration(i)*10*time.Second), v))
	}
	// Look-back 40s from the newest (50s): points at 10..50s = 1,2,2,4,8.
	if d := sh.Delta("consumer_lag", 40*time.Second); d != 7 {
		t.Errorf("delta = %v", d)
	}
	if r := sh.Rate("consumer_lag", 40*time.Second); r != 7.0/40 {
		t.Errorf("rate = %v", r)
	}
	if !sh.Growing("consumer_lag", 40*time.Second) {
		t.Error("1,2,2,4,8 is growing")
	}
	if sh.Growing("consumer_lag", time.Minute) {
		t.Error("5,1,... is not growing")
	}
	lo, hi, mean := sh.Aggregate("consumer_lag", time.Minute)
	if lo != 1 || hi != 8 || mean != 22.0/6 {
		t.Errorf("aggregate = %v %v %v", lo, hi, mean)
	}
	one := &Shard{Points: sh.Points[:1]}
	if one.Delta("consumer_lag", time.Minute) != 0 || one.Growing("consumer_lag", time.Minute) {
		t.Error("one point has no delta")
	}
}
