package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/waitfor"
)

// TestAdminAgainstStack runs every `realmstream admin` command against a real
// one-process stack with bots playing.
func TestAdminAgainstStack(t *testing.T) {
	ports := freePorts(t, 2)
	base := freeBase(t)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	args := []string{"--data-dir", t.TempDir(), "--nats-port", "-1",
		"--tcp-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--ws-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--http-base", strconv.Itoa(base), "--bots", "6", "--bots-duration", "4s", "--log-level", "warn"}
	go func() { done <- runStack(ctx, args, out, io.Discard) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("stack did not stop")
		}
	}()
	var natsURL string
	waitStack(t, 90*time.Second, done, out, func() error {
		if m := regexp.MustCompile(`NATS\s+(nats://\S+)`).FindStringSubmatch(out.String()); m != nil {
			natsURL = m[1]
		}
		if natsURL == "" || !strings.Contains(out.String(), "summary:") {
			return fmt.Errorf("no NATS URL or no bots summary yet")
		}
		return nil
	})
	admin := func(args ...string) (string, error) {
		var o, e bytes.Buffer
		err := runAdmin(ctx, append([]string{"--nats-url", natsURL, "--timeout", "20s"}, args...), &o, &e)
		if err != nil {
			return o.String() + e.String(), err
		}
		return o.String(), nil
	}
	mustJSON := func(v any, args ...string) {
		t.Helper()
		s, err := admin(append([]string{"--json"}, args...)...)
		if err != nil {
			t.Fatalf("admin %v: %v\n%s", args, err, s)
		}
		if err := json.Unmarshal([]byte(s), v); err != nil {
			t.Fatalf("admin %v: not JSON: %v\n%s", args, err, s)
		}
	}

	var zones []ZoneRow
	mustJSON(&zones, "zones")
	if len(zones) == 0 {
		t.Fatal("admin zones: no zones")
	}
	busiest := zones[0]
	for _, z := range zones {
		if z.LastSeq > busiest.LastSeq {
			busiest = z
		}
		if z.Owner == "" || z.Fence == 0 {
			t.Fatalf("zone row without owner or fence: %+v", z)
		}
	}
	if s, err := admin("zones"); err != nil || !strings.Contains(s, "TICK P99 MS") || !strings.Contains(s, busiest.Zone) {
		t.Fatalf("admin zones table:\n%s (%v)", s, err)
	}

	var events []EventRow
	mustJSON(&events, "zone", "log", busiest.Zone, "--limit", "1000")
	if len(events) < 2 || events[0].Type != "ownership_claimed" {
		t.Fatalf("admin zone log %s: %d events, first %+v", busiest.Zone, len(events), events)
	}
	player := ""
	for _, e := range events {
		if e.Type == "player_joined" {
			player = e.Player
			break
		}
	}
	if player == "" {
		t.Fatalf("no player joined %s in %d events", busiest.Zone, len(events))
	}

	// Time travel: at the claim nobody is in the zone; at the end the
	// joined players are, with positions.
	var st struct {
		AtSeq   uint64 `json:"at_seq"`
		Events  uint64 `json:"events"`
		Players []struct {
			PlayerID string  `json:"player_id"`
			X        float32 `json:"x"`
			Y        float32 `json:"y"`
		} `json:"players"`
	}
	mustJSON(&st, "zone", "state", busiest.Zone, "--at-seq", strconv.FormatUint(events[0].Seq, 10))
	if st.AtSeq != events[0].Seq || len(st.Players) != 0 {
		t.Fatalf("state at the claim (seq %d): %+v", events[0].Seq, st)
	}
	mustJSON(&st, "zone", "state", busiest.Zone)
	if st.Events < uint64(len(events)) {
		t.Fatalf("state at the end folded %d events, the log shows %d", st.Events, len(events))
	}
	if s, err := admin("zone", "state", busiest.Zone, "--at", "1s"); err != nil || !strings.Contains(s, "PLAYER") {
		t.Fatalf("zone state --at 1s:\n%s (%v)", s, err)
	}
	if s, err := admin("zone", "state", busiest.Zone, "--at", "yesterday"); err == nil || !strings.Contains(s+err.Error(), "RFC 3339") {
		t.Fatalf("a bad --at was accepted: %s %v", s, err)
	}

	var hist []EventRow
	mustJSON(&hist, "player", "history", player)
	if len(hist) == 0 {
		t.Fatalf("no history for %s", player)
	}
	for _, e := range hist {
		if e.Player != player && !strings.Contains(string(e.Body), player) {
			t.Fatalf("history of %s holds another player's event %+v", player, e)
		}
	}

	var cons []ConsumerRow
	mustJSON(&cons, "consumers")
	names := map[string]bool{}
	for _, c := range cons {
		names[c.Consumer] = true
	}
	if !names["persist"] || !names["world-"+busiest.Zone] {
		t.Fatalf("consumers %v: want persist and world-%s", names, busiest.Zone)
	}

	waitfor.True(t, 30*time.Second, func() error {
		s, err := admin("partitions")
		if err != nil || !strings.Contains(s, "pebble") {
			return fmt.Errorf("partitions: %v\n%s", err, s)
		}
		return nil
	})
	if s, err := admin("shards"); err == nil || !strings.Contains(s+err.Error(), "Postgres") {
		t.Fatalf("shards on a Pebble stack: %s %v (want an error that names Postgres)", s, err)
	}
	if _, err := admin("nope"); err == nil {
		t.Fatal("unknown admin command accepted")
	}
}
