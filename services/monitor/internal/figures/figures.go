// Package figures flattens a DB stats event (schema.DBStats) into named
// figures: the numbers the alert rules, the Prometheus exporter and the
// dashboard all read. Fields are found by protobuf reflection, so a field the
// persist engineer adds to DBStats becomes a figure without a change here.
package figures

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// skipped are DBStats fields that describe the sample rather than the database.
var skipped = map[string]bool{"schema_version": true, "sampled_at_ns": true, "sample_seq": true}

// Table is one table's tuple figures.
type Table struct {
	Name        string  `json:"name"`
	LiveTuples  float64 `json:"live_tuples"`
	DeadTuples  float64 `json:"dead_tuples"`
	DeadRatio   float64 `json:"dead_ratio"`
	SizeBytes   float64 `json:"size_bytes"`
	LastAutovac int64   `json:"last_autovacuum_ns"`
}

// Partition is one partition of the events table.
type Partition struct {
	Name      string  `json:"name"`
	From      string  `json:"from"`
	To        string  `json:"to"`
	Rows      float64 `json:"rows"`
	SizeBytes float64 `json:"size_bytes"`
	IsDefault bool    `json:"is_default"`
}

// Sample is one DBStats event flattened.
type Sample struct {
	Shard      string
	Backend    string
	InstanceID string
	Error      string
	// Numbers holds every numeric and boolean figure (booleans as 0/1) by name.
	Numbers map[string]float64
	// Bools names the figures that are booleans (for the rule environment).
	Bools map[string]bool
	// Strings holds the top-level string fields (shard, backend, error, pg_version, ...).
	Strings    map[string]string
	Tables     []Table
	Partitions []Partition
	SampledNS  int64
	SampleSeq  uint64
}

// Derived figures computed from the repeated fields; they are documented in docs/monitor.md.
const (
	DeadTuples          = "dead_tuples"             // sum over tables
	LiveTuples          = "live_tuples"             // sum over tables
	DeadTupleRatio      = "dead_tuple_ratio"        // dead / (live + dead) over all tables
	MaxTableDeadTuples  = "max_table_dead_tuples"   // dead tuples of the worst table
	MaxTableDeadRatio   = "max_table_dead_ratio"    // dead ratio of that table
	ConnectionRatio     = "connection_ratio"        // connections / (max_connections - superuser_reserved_connections)
	RollbackRatio       = "rollback_ratio"          // rollbacks/s / (commits/s + rollbacks/s)
	PoolUsageRatio      = "pool_usage_ratio"        // pool acquired / pool max
	PartitionRows       = "dated_partition_rows"    // rows in dated partitions
	TableCount          = "table_count"             // tables reported
	DefaultPartitionCnt = "default_partition_count" // default partitions present
)

// FromStats flattens s.
func FromStats(s *schema.DBStats) Sample {
	out := Sample{
		Shard: s.GetShard(), Backend: s.GetBackend(), InstanceID: s.GetInstanceId(), Error: s.GetError(),
		Numbers: map[string]float64{}, Bools: map[string]bool{}, Strings: map[string]string{},
		SampledNS: s.GetSampledAtNs(), SampleSeq: s.GetSampleSeq(),
	}
	flatten(s.ProtoReflect(), "", &out)
	var live, dead, worstDead, worstRatio float64
	for _, t := range s.GetTables() {
		tb := Table{Name: t.GetName(), LiveTuples: float64(t.GetLiveTuples()), DeadTuples: float64(t.GetDeadTuples()),
			SizeBytes: float64(t.GetSizeBytes()), LastAutovac: t.GetLastAutovacuumNs()}
		if tot := tb.LiveTuples + tb.DeadTuples; tot > 0 {
			tb.DeadRatio = tb.DeadTuples / tot
		}
		live += tb.LiveTuples
		dead += tb.DeadTuples
		if tb.DeadTuples > worstDead {
			worstDead, worstRatio = tb.DeadTuples, tb.DeadRatio
		}
		out.Tables = append(out.Tables, tb)
	}
	var partRows, defaults float64
	for _, p := range s.GetPartitions() {
		pt := Partition{Name: p.GetName(), From: p.GetRangeFrom(), To: p.GetRangeTo(), Rows: float64(p.GetRows()),
			SizeBytes: float64(p.GetSizeBytes()), IsDefault: p.GetIsDefault()}
		if pt.IsDefault {
			defaults++
		} else {
			partRows += pt.Rows
		}
		out.Partitions = append(out.Partitions, pt)
	}
	sort.Slice(out.Partitions, func(i, j int) bool { return out.Partitions[i].Name < out.Partitions[j].Name })
	n := out.Numbers
	n[DeadTuples], n[LiveTuples] = dead, live
	n[DeadTupleRatio] = ratio(dead, live+dead)
	n[MaxTableDeadTuples], n[MaxTableDeadRatio] = worstDead, worstRatio
	// Connections are judged against what applications can use: max_connections
	// minus the slots reserved for superusers.
	usable := n["max_connections"] - n["superuser_reserved_connections"]
	if usable <= 0 {
		usable = n["max_connections"]
	}
	n[ConnectionRatio] = ratio(n["connections"], usable)
	n[RollbackRatio] = ratio(n["rollbacks_per_sec"], n["commits_per_sec"]+n["rollbacks_per_sec"])
	n[PoolUsageRatio] = ratio(n["pool_acquired_conns"], n["pool_max_conns"])
	n[PartitionRows] = partRows
	n[TableCount] = float64(len(out.Tables))
	n[DefaultPartitionCnt] = defaults
	return out
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// flatten walks the singular scalar fields of m (and of nested singular
// messages, prefixed "<field>_") and the string->double maps ("<field>_<key>").
// Repeated fields are handled by FromStats. Unset fields count as zero so the
// set of figures does not depend on which fields a sample happens to carry.
func flatten(m protoreflect.Message, prefix string, out *Sample) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		if prefix == "" && skipped[name] {
			continue
		}
		switch {
		case fd.IsMap():
			if fd.MapKey().Kind() != protoreflect.StringKind {
				continue
			}
			if !isNumber(fd.MapValue().Kind()) {
				continue
			}
			m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				out.Numbers[name+"_"+Sanitize(k.String())] = number(fd.MapValue().Kind(), v)
				return true
			})
		case fd.IsList():
			continue
		case fd.Kind() == protoreflect.MessageKind:
			flatten(m.Get(fd).Message(), name+"_", out)
		case fd.Kind() == protoreflect.StringKind:
			if prefix == "" {
				out.Strings[name] = m.Get(fd).String()
			}
		case fd.Kind() == protoreflect.BoolKind:
			if m.Get(fd).Bool() {
				out.Numbers[name] = 1
			} else {
				out.Numbers[name] = 0
			}
			out.Bools[name] = true
		case isNumber(fd.Kind()):
			out.Numbers[name] = number(fd.Kind(), m.Get(fd))
		}
	}
}

func isNumber(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind,
		protoreflect.FloatKind, protoreflect.DoubleKind:
		return true
	}
	return false
}

func number(k protoreflect.Kind, v protoreflect.Value) float64 {
	switch k {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return float64(v.Uint())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float()
	default:
		return float64(v.Int())
	}
}

// Sanitize turns a map key into a figure-name fragment: [a-z0-9_] only.
func Sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Names returns every figure name a DBStats sample always carries (the
// singular fields and the derived figures), sorted. Rules are checked against
// this list at start.
func Names() []string {
	s := FromStats(&schema.DBStats{})
	out := make([]string, 0, len(s.Numbers))
	for k := range s.Numbers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// BoolNames returns the figures that are booleans.
func BoolNames() map[string]bool { return FromStats(&schema.DBStats{}).Bools }

// Decode parses a DB stats event received on subject (stats.db.<shard>). The
// shard named by the subject is authoritative: an event without a shard gets
// it, an event naming another shard is rejected, as are unknown schema versions
// and shard names that are not subject tokens.
func Decode(subject string, data []byte) (*schema.DBStats, error) {
	shard, ok := strings.CutPrefix(subject, wire.StatsDBPrefix)
	if !ok || !wire.ValidToken(shard) {
		return nil, fmt.Errorf("figures: subject %q: want %s<shard>", subject, wire.StatsDBPrefix)
	}
	var s schema.DBStats
	if err := proto.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("figures: %s: not a DBStats protobuf: %w", subject, err)
	}
	if v := s.GetSchemaVersion(); v > 1 {
		return nil, fmt.Errorf("figures: %s: schema_version %d: this monitor reads version 1", subject, v)
	}
	switch s.GetShard() {
	case "":
		s.Shard = shard
	case shard:
	default:
		return nil, fmt.Errorf("figures: %s: event names shard %q", subject, s.GetShard())
	}
	return &s, nil
}
