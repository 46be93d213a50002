package gateway

import (
	"testing"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
)

// TestRefusalSpansDroppedAreCounted: once the refusal span budget of a
// second is spent, further refusals start no span and are counted; with
// tracing off nothing is counted.
func TestRefusalSpansDroppedAreCounted(t *testing.T) {
	rec, tp := recorder()
	tr, err := newTracing(Config{TracerProvider: tp, TraceSampleRatio: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	tr.refusals = telemetry.NewSpanLimit(1, nil) // one token a second: no refill during the test
	for tr.refusals.Dropped() == 0 {             // spend the budget
		tr.refusals.Allow()
	}
	spent := tr.refusals.Dropped()
	for range 200 {
		tr.refused(nil, 1, schema.ErrorCode_ERROR_CODE_RATE_LIMITED, "flood") // returns before reading the connection
	}
	if d := tr.refusalSpansDropped() - spent; d != 200 || len(rec.Ended()) != 0 {
		t.Fatalf("%d refusals counted as dropped, %d spans, want 200 and none", d, len(rec.Ended()))
	}
	off, _ := newTracing(Config{TraceSampleRatio: 1})
	for range 10 {
		off.refused(nil, 1, schema.ErrorCode_ERROR_CODE_RATE_LIMITED, "off")
	}
	if d := off.refusalSpansDropped(); d != 0 {
		t.Fatalf("tracing off: %d refusals counted as dropped", d)
	}
}
