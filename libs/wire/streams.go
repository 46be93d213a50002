package wire

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions are the per-environment settings of the streams.
type StreamOptions struct {
	// Replicas is the JetStream replication factor (1 on one machine, 3 in a cluster).
	Replicas int
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values. Default 2m.
	DuplicateWindow time.Duration
	// CommandMaxAge bounds the command stream. Default 24h.
	CommandMaxAge time.Duration
	// EventMaxAge and EventMaxBytes are the event stream's last guard: the
	// world trims each zone log below what its snapshot and persist no longer
	// need (services/world/internal/trim), long before either is reached.
	// With a guard set the stream discards its oldest messages (DiscardOld)
	// rather than refusing appends, which would stop every zone; the monitor
	// alerts well before (evt_stream_near_limit). 0 means "as the stream is":
	// a service without the setting leaves an operator's guard alone (only the
	// world has the flags). A stream created with neither has no limit and
	// DiscardNew (nothing is ever dropped).
	EventMaxAge   time.Duration
	EventMaxBytes int64
	// StatsMaxAge bounds the stats stream. Default 1h.
	StatsMaxAge time.Duration
	// Storage is file (default) or memory.
	Storage jetstream.StorageType
}

// Validate checks the options.
func (o StreamOptions) Validate() error {
	if o.Replicas < 0 || o.Replicas > 5 {
		return fmt.Errorf("wire: replicas %d: want 1..5", o.Replicas)
	}
	if o.DuplicateWindow < 0 || o.CommandMaxAge < 0 || o.EventMaxAge < 0 || o.StatsMaxAge < 0 || o.EventMaxBytes < 0 {
		return errors.New("wire: durations must not be negative")
	}
	return nil
}

// DefaultDuplicateWindow is the duplicate window of the command stream when
// StreamOptions.DuplicateWindow is 0.
const DefaultDuplicateWindow = 2 * time.Minute

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	if o.CommandMaxAge == 0 {
		o.CommandMaxAge = 24 * time.Hour
	}
	if o.StatsMaxAge == 0 {
		o.StatsMaxAge = time.Hour
	}
	return o
}

// StreamConfigs returns the configuration of every stream of the contract.
func StreamConfigs(o StreamOptions) []jetstream.StreamConfig {
	o = o.withDefaults()
	return []jetstream.StreamConfig{
		{
			Name:        StreamCommands,
			Description: "accepted client commands, cmd.<zone>",
			Subjects:    []string{CommandSubjects},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      o.CommandMaxAge,
			Duplicates:  o.DuplicateWindow,
			Replicas:    o.Replicas,
			Storage:     o.Storage,
			Discard:     jetstream.DiscardOld,
		},
		{
			Name:        StreamEvents,
			Description: "zone event logs of record, evt.<zone>",
			Subjects:    []string{EventSubjects},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      o.EventMaxAge,
			MaxBytes:    eventMaxBytes(o.EventMaxBytes),
			Duplicates:  o.DuplicateWindow,
			Replicas:    o.Replicas,
			Storage:     o.Storage,
			Discard:     eventDiscard(o),
		},
		{
			Name:        StreamStats,
			Description: "DB stats events, stats.db.<shard>",
			Subjects:    []string{StatsDBSubjects},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      o.StatsMaxAge,
			Duplicates:  time.Minute,
			Replicas:    o.Replicas,
			Storage:     o.Storage,
			Discard:     jetstream.DiscardOld,
		},
	}
}

func eventMaxBytes(n int64) int64 {
	if n == 0 {
		return -1 // unlimited
	}
	return n
}

// eventDiscard: with a guard the oldest messages go (trimming keeps them
// far from it); without one nothing is ever dropped.
func eventDiscard(o StreamOptions) jetstream.DiscardPolicy {
	if o.EventMaxAge > 0 || o.EventMaxBytes > 0 {
		return jetstream.DiscardOld
	}
	return jetstream.DiscardNew
}

// EnsureStreams creates every stream of the contract, and updates one only
// when its settings differ from the contract's. It is safe to call from every
// service at start. Leaving unchanged streams alone matters: updating a stream
// while another instance creates a consumer on it trips a data race inside
// nats-server 2.15.2 (fileStore.UpdateConfig vs ConsumerStore).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, want := range StreamConfigs(o) {
		st, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return fmt.Errorf("wire: create stream %s: %w", want.Name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("wire: stream %s: %w (is JetStream enabled on the server?)", want.Name, err)
		}
		have := st.CachedInfo().Config
		if want.Name == StreamEvents && o.EventMaxAge == 0 && o.EventMaxBytes == 0 {
			// This service does not manage the guard: keep the stream's.
			want.MaxAge, want.MaxBytes, want.Discard = have.MaxAge, have.MaxBytes, have.Discard
		}
		if SameStreamSettings(have, want) {
			continue
		}
		if _, err := js.UpdateStream(ctx, want); err != nil {
			return fmt.Errorf("wire: update stream %s: %w", want.Name, err)
		}
	}
	return nil
}

// SameStreamSettings reports whether have already has the contract settings of want.
// A limit of 0 in a request is "unlimited", which the server stores as -1:
// compared raw, a stream created with MaxBytes 0 differed from itself, and
// every start of every service rewrote CMD and STATS (and so tripped
// nats-server 2.15.2's UpdateConfig/ConsumerStore data race under the
// consumers of the instances already running).
func SameStreamSettings(have, want jetstream.StreamConfig) bool {
	unlimited := func(v int64) int64 {
		if v <= 0 {
			return -1
		}
		return v
	}
	return slices.Equal(have.Subjects, want.Subjects) && have.MaxAge == want.MaxAge && have.Duplicates == want.Duplicates &&
		have.Replicas == want.Replicas && have.Storage == want.Storage && have.Discard == want.Discard && have.Retention == want.Retention &&
		unlimited(have.MaxBytes) == unlimited(want.MaxBytes)
}
