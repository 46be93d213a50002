package trim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/world/internal/trim"
)

// persistFloor answers wire.QueryAckFloor the way persist does ({"ack_floor":N}).
// It stands in for persist's query API, which persist's own tests cover.
func persistFloor(t *testing.T, nc *nats.Conn, floor *uint64) *nats.Subscription {
	sub, err := nc.Subscribe(wire.QueryAckFloor, func(m *nats.Msg) {
		b, _ := json.Marshal(map[string]uint64{"ack_floor": *floor})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestTrimFloor(t *testing.T) {
	_, nc, js := natstest.StartWithStreams(t)
	ctx := context.Background()
	// Two zones interleaved: z gets seqs 1,3,5,... and other 2,4,6,...
	// Each message names its zone's previous one, as the world's appends do.
	var zSeqs []uint64
	last := map[string]uint64{}
	for i := 0; i < 600; i++ {
		for _, zone := range []string{"z", "other"} {
			m := nats.NewMsg(wire.EventSubject(zone))
			m.Data = []byte("x")
			m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(last[zone], 10))
			ack, err := js.PublishMsg(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			last[zone] = ack.Sequence
			if zone == "z" {
				zSeqs = append(zSeqs, ack.Sequence)
			}
		}
	}
	tr, err := trim.New(ctx, nc, js, trim.Config{KeepAge: time.Nanosecond, KeepRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(ctx, wire.StreamEvents)
	count := func(zone string) uint64 {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(wire.EventSubject(zone)))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[wire.EventSubject(zone)]
	}

	// Persist down: nothing goes.
	if _, err := tr.Trim(ctx, "z", zSeqs[500]); !errors.Is(err, trim.ErrNoPersistFloor) {
		t.Fatalf("trim without persist: %v, want ErrNoPersistFloor", err)
	}
	if n := count("z"); n != 600 {
		t.Fatalf("trimmed %d messages while persist was down", 600-n)
	}
	// No snapshot yet: nothing goes.
	pf := zSeqs[300]
	sub := persistFloor(t, nc, &pf)
	defer sub.Unsubscribe()
	if res, err := tr.Trim(ctx, "z", 0); err != nil || res.Purged != 0 || res.Held != "snapshot" {
		t.Fatalf("trim without snapshot: %+v %v", res, err)
	}
	// Persist holds the floor: messages up to its floor go, none after.
	res, err := tr.Trim(ctx, "z", zSeqs[500])
	if err != nil {
		t.Fatal(err)
	}
	if res.Held != "persist" || res.Floor != zSeqs[300]+1 || res.Purged != 301 || count("z") != 299 {
		t.Fatalf("persist-held trim: %+v, %d left", res, count("z"))
	}
	if count("other") != 600 {
		t.Fatalf("another zone lost messages: %d left", count("other"))
	}
	// Again with the same inputs: a no-op (two trimmers at once are harmless).
	if res, err := tr.Trim(ctx, "z", zSeqs[500]); err != nil || res.Purged != 0 {
		t.Fatalf("second trim: %+v %v", res, err)
	}
	// The snapshot holds it: the snapshot's message stays.
	pf = zSeqs[599]
	if res, err = tr.Trim(ctx, "z", zSeqs[450]); err != nil || res.Held != "snapshot" || count("z") != 150 {
		t.Fatalf("snapshot-held trim: %+v %v, %d left", res, err, count("z"))
	}
	// The minimum tail holds it: at least 100 messages stay.
	if res, err = tr.Trim(ctx, "z", zSeqs[599]); err != nil || res.Held != "tail" || res.Floor != zSeqs[500] || count("z") != 100 {
		t.Fatalf("tail-held trim: %+v %v, %d left", res, err, count("z"))
	}
	// Many trims create no lasting consumers (a stream's consumer limit
	// once stopped trimming in a long run).
	for i := 0; i < 30; i++ {
		if _, err := tr.Trim(ctx, "z", zSeqs[599]); err != nil {
			t.Fatal(err)
		}
	}
	waitfor.True(t, 15*time.Second, func() error { // the tail consumer's inactive threshold is 2s
		if info, err := st.Info(ctx); err != nil || info.State.Consumers > 2 {
			return fmt.Errorf("%d consumers left on the stream after 30 trims (%v)", info.State.Consumers, err)
		}
		return nil
	})
	// Age: everything is younger than an hour, so nothing more goes.
	trAge, _ := trim.New(ctx, nc, js, trim.Config{KeepAge: time.Hour, KeepRecords: 1})
	if res, err = trAge.Trim(ctx, "z", zSeqs[599]); err != nil || res.Purged != 0 || count("z") != 100 {
		t.Fatalf("age-held trim: %+v %v, %d left", res, err, count("z"))
	}
}
