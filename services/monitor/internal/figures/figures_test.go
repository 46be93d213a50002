package figures

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

func TestFromStats(t *testing.T) {
	s := FromStats(&schema.DBStats{
		Shard: "pg0", Backend: "postgres", Up: true, CacheHitRatio: 0.97, Connections: 80, MaxConnections: 100,
		CommitsPerSec: 98, RollbacksPerSec: 2, DefaultPartitionRows: 3,
		Pool:       &schema.PoolStat{AcquiredConns: 4, MaxConns: 8},
		Pebble:     map[string]float64{"L0.files": 7},
		Tables:     []*schema.TableStat{{Name: "events", LiveTuples: 90000, DeadTuples: 10000}, {Name: "players", LiveTuples: 10, DeadTuples: 90}},
		Partitions: []*schema.PartitionStat{{Name: "p_default", IsDefault: true, Rows: 3}, {Name: "p1", Rows: 50}},
	})
	want := map[string]float64{
		"cache_hit_ratio": 0.97, "connections": 80, "up": 1, "pool_acquired_conns": 4, "pool_max_conns": 8,
		"pebble_l0_files": 7, ConnectionRatio: 0.8, RollbackRatio: 0.02, PoolUsageRatio: 0.5,
		DeadTuples: 10090, LiveTuples: 90010, MaxTableDeadTuples: 10000, MaxTableDeadRatio: 0.1,
		PartitionRows: 50, DefaultPartitionCnt: 1, TableCount: 2, "default_partition_rows": 3,
	}
	for k, v := range want {
		if got, ok := s.Numbers[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if !s.Bools["up"] || s.Bools["connections"] {
		t.Error("bool figures")
	}
	if _, ok := s.Numbers["schema_version"]; ok {
		t.Error("schema_version is not a figure")
	}
	if s.Partitions[0].Name != "p1" || s.Tables[1].DeadRatio != 0.9 {
		t.Errorf("partitions %v tables %v", s.Partitions, s.Tables)
	}
}

// TestNamesStable: the figure set does not depend on which fields a sample sets.
func TestNamesStable(t *testing.T) {
	a := FromStats(&schema.DBStats{})
	b := FromStats(&schema.DBStats{Pool: &schema.PoolStat{MaxConns: 3}, Connections: 4})
	for k := range b.Numbers {
		if _, ok := a.Numbers[k]; !ok {
			t.Errorf("%s missing from the zero sample", k)
		}
	}
}

func TestDecode(t *testing.T) {
	ok, _ := proto.Marshal(&schema.DBStats{SchemaVersion: 1, Shard: "pg0"})
	noShard, _ := proto.Marshal(&schema.DBStats{SchemaVersion: 1})
	other, _ := proto.Marshal(&schema.DBStats{SchemaVersion: 1, Shard: "pg1"})
	future, _ := proto.Marshal(&schema.DBStats{SchemaVersion: 2, Shard: "pg0"})
	if s, err := Decode("stats.db.pg0", ok); err != nil || s.GetShard() != "pg0" {
		t.Errorf("valid: %v", err)
	}
	if s, err := Decode("stats.db.pg0", noShard); err != nil || s.GetShard() != "pg0" {
		t.Errorf("no shard: %v %v", s, err)
	}
	for name, c := range map[string]struct {
		subj string
		data []byte
		want string
	}{
		"other shard": {"stats.db.pg0", other, `names shard "pg1"`},
		"future":      {"stats.db.pg0", future, "schema_version 2"},
		"garbage":     {"stats.db.pg0", []byte{0xff, 0xff, 0xff}, "not a DBStats"},
		"subject":     {"stats.other.pg0", ok, "want stats.db.<shard>"},
		"bad token":   {"stats.db.p g", ok, "want stats.db.<shard>"},
	} {
		if _, err := Decode(c.subj, c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}

// FuzzDecode: any bytes on any stats subject decode or fail cleanly, and
// whatever decodes flattens without panicking into finite-named figures.
func FuzzDecode(f *testing.F) {
	full, _ := proto.Marshal(&schema.DBStats{SchemaVersion: 1, Shard: "pg0", Up: true, CacheHitRatio: 0.5,
		Tables: []*schema.TableStat{{Name: "t", DeadTuples: 5}}, Partitions: []*schema.PartitionStat{{Name: "d", IsDefault: true}},
		Pool: &schema.PoolStat{MaxConns: 2}, Pebble: map[string]float64{"a b": 1}})
	f.Add("stats.db.pg0", full)
	f.Add("stats.db.pg0", []byte{})
	f.Add("stats.db.x", []byte{0x0a, 0x02, 0x70, 0x67})
	f.Add("stats.db.", []byte{0xff})
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		s, err := Decode(subject, data)
		if err != nil {
			return
		}
		smp := FromStats(s)
		for k := range smp.Numbers {
			if k == "" || strings.ContainsAny(k, " .-/") {
				t.Fatalf("figure name %q", k)
			}
		}
	})
}
