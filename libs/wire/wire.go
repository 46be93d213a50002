// Package wire is THE contract between Realmstream services: subject names,
// stream and durable consumer names, NATS headers and the stream
// configurations. Every name here is API: renaming a stream or durable means
// a migration or a replay, so change them only with a version bump.
package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// Streams.
const (
	// StreamCommands holds accepted client commands, subjects cmd.<zone>.
	StreamCommands = "CMD"
	// StreamEvents is the event log of record, subjects evt.<zone>.
	StreamEvents = "EVT"
	// StreamStats holds DB stats events, subjects stats.db.<shard>, short max age.
	StreamStats = "STATS"
)

// Subject prefixes and wildcards.
const (
	CommandPrefix   = "cmd."
	EventPrefix     = "evt."
	UpdatePrefix    = "upd."
	StatsDBPrefix   = "stats.db."
	AlertPrefix     = "alerts."
	HeartbeatPrefix = "svc.hb."
	SessionPrefix   = "ses."

	CommandSubjects = "cmd.>"
	EventSubjects   = "evt.>"
	StatsDBSubjects = "stats.db.>"
	AlertSubjects   = "alerts.>"
	HeartbeatAll    = "svc.hb.>"
)

// Request/reply subjects of persist's query API.
const (
	QueryZoneEvents = "persist.query.zone_events"
	QueryPlayer     = "persist.query.player"
	QueryZone       = "persist.query.zone"
	// QueryZoneRange answers a zone's events by stream position, from the
	// store (also below the JetStream floor): JSON {"zone","from_seq",
	// "to_seq","after_seq","after_index","has_after","limit"} ->
	// {"events":[{"seq","index","payload",...}],"more"}.
	QueryZoneRange = "persist.query.zone_range"
	// QueryAckFloor answers persist's acknowledged floor: every EVT message
	// with stream sequence <= ack_floor is durably stored (the durable
	// consumer's ack floor). JSON {} -> {"ack_floor","stream_last_seq",...}.
	QueryAckFloor = "persist.query.ack_floor"
)

// Request/reply subjects of the world's query API (queue group "world": any
// instance answers, owner or not).
const (
	// QueryZoneState answers a zone's state at a stream sequence or a time
	// (time travel): JSON {"zone","at_seq","at_ns"}.
	QueryZoneState = "world.query.state"
)

// Durable consumer names.
const (
	// DurablePersist is persist's consumer of the whole event stream.
	DurablePersist = "persist"
	// DurableMonitorStats is monitor's consumer of stats.db.>.
	DurableMonitorStats = "monitor-stats"
)

// DurableWorldZone is the durable consumer through which the owner of a zone
// reads cmd.<zone>. It survives ownership changes: the new owner continues
// where the old one acked.
func DurableWorldZone(zone string) string { return "world-" + zone }

// Headers. Nats-Msg-Id and Nats-Expected-Last-Subject-Sequence are JetStream's own.
const (
	HeaderMsgID               = "Nats-Msg-Id"
	HeaderExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	HeaderZone                = "Realm-Zone"
	HeaderFence               = "Realm-Fence"
	HeaderSession             = "Realm-Session"
	HeaderPlayer              = "Realm-Player"
	HeaderEventType           = "Realm-Event-Type"
	HeaderSchema              = "Realm-Schema"
	HeaderInstance            = "Realm-Instance"
	// Trace context travels as W3C traceparent/tracestate headers (see libs/telemetry).
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// SchemaVersion is the version of the protobuf payloads in this package's
// streams, written in HeaderSchema.
const SchemaVersion = "1"

// CommandSubject returns cmd.<zone>.
func CommandSubject(zone string) string { return CommandPrefix + zone }

// EventSubject returns evt.<zone>.
func EventSubject(zone string) string { return EventPrefix + zone }

// UpdateSubject returns upd.<zone>.<cell>.
func UpdateSubject(zone string, cell uint32) string {
	return UpdatePrefix + zone + "." + strconv.FormatUint(uint64(cell), 10)
}

// UpdateZoneWildcard returns upd.<zone>.* (every cell of the zone).
func UpdateZoneWildcard(zone string) string { return UpdatePrefix + zone + ".*" }

// UpdateTickSubject returns upd.<zone>: one schema.ZoneTick per zone tick
// carrying every cell (the alternative to one ZoneUpdate per cell on
// UpdateSubject; the gateway subscribes to both). It has no cell token, so
// UpdateZoneWildcard does not match it.
func UpdateTickSubject(zone string) string { return UpdatePrefix + zone }

// StatsDBSubject returns stats.db.<shard>.
func StatsDBSubject(shard string) string { return StatsDBPrefix + shard }

// AlertSubject returns alerts.<severity>.
func AlertSubject(severity string) string { return AlertPrefix + severity }

// HeartbeatSubject returns svc.hb.<service>.<instance>.
func HeartbeatSubject(service, instance string) string {
	return HeartbeatPrefix + service + "." + instance
}

// SessionSubject returns ses.<session>: world -> gateway notices for one
// session (schema.SessionNotice), on core NATS.
func SessionSubject(session string) string { return SessionPrefix + session }

// CommandID is the idempotency key of a client command: "<session>:<seq>".
// It is the Nats-Msg-Id of the command, so a resend after a reconnect is
// deduplicated by JetStream and, past the duplicate window, by the world.
func CommandID(session string, seq uint64) string {
	return session + ":" + strconv.FormatUint(seq, 10)
}

// AppendCommandID appends CommandID(session, seq) to b.
func AppendCommandID(b []byte, session string, seq uint64) []byte {
	b = append(append(b, session...), ':')
	return strconv.AppendUint(b, seq, 10)
}

// ParseCommandID splits a command id made by CommandID.
func ParseCommandID(id string) (session string, seq uint64, err error) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("wire: command id %q: want <session>:<seq>", id)
	}
	seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("wire: command id %q: bad seq: %w", id, err)
	}
	return id[:i], seq, nil
}

// ValidToken reports whether s can be used as one token of a NATS subject
// (zone and shard names): non-empty, at most 64 bytes, [A-Za-z0-9_-] only.
func ValidToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
