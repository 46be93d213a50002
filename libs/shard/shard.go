// Package shard maps shard keys to physical databases in two steps: a key
// hashes to one of a fixed number of logical shards (Logical = 256, fixed
// forever), and a versioned Map assigns each logical shard to a physical
// database. Adding a database moves whole logical shards; keys never rehash.
//
// The hash is xxhash64 (github.com/cespare/xxhash/v2) of the key's UTF-8
// bytes; the logical shard is its top 8 bits, so logical shards are
// contiguous ranges of the 64-bit hash space. Golden vectors in the tests
// pin it: changing it would silently send existing keys to other databases.
package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/cespare/xxhash/v2"
)

// Logical is the number of logical shards. It never changes.
const Logical = 256

// logicalBits is log2(Logical).
const logicalBits = 8

// Of returns the logical shard of a shard key (a zone id for events and zone
// summaries, a player id for player read models).
func Of(key string) int {
	return int(xxhash.Sum64String(key) >> (64 - logicalBits))
}

// DB is one physical database of the map.
type DB struct {
	// Name is the stable physical shard name ("pg0"); it names the
	// stats.db.<name> subject, so it must be a valid subject token.
	Name string `json:"name"`
	// URL is the connection URL. Keep passwords out of it (PGPASSFILE or
	// PGPASSWORD in each replica's environment) because every replica reads the map.
	URL string `json:"url"`
}

// Map is one version of the shard map. Version grows by one on every change;
// a writer whose map is older than what a database records is refused there
// (see services/persist), so a stale replica fails loudly instead of writing
// to the wrong database.
type Map struct {
	Version uint64 `json:"version"`
	DBs     []DB   `json:"dbs"`
	// Assign[l] is the name of the database that owns logical shard l.
	Assign []string `json:"assign"`
}

// Even returns version 1 of a map that spreads the logical shards over dbs in
// contiguous ranges whose sizes differ by at most one.
func Even(dbs []DB) (Map, error) {
	if len(dbs) == 0 {
		return Map{}, errors.New("shard: no databases")
	}
	m := Map{Version: 1, DBs: append([]DB(nil), dbs...), Assign: make([]string, Logical)}
	for l := 0; l < Logical; l++ {
		m.Assign[l] = dbs[l*len(dbs)/Logical].Name
	}
	return m, m.Validate()
}

// Validate checks that every logical shard is assigned to a listed database
// and that names are unique, non-empty subject tokens.
func (m Map) Validate() error {
	if m.Version == 0 {
		return errors.New("shard: map version 0")
	}
	if len(m.Assign) != Logical {
		return fmt.Errorf("shard: map assigns %d logical shards, want %d", len(m.Assign), Logical)
	}
	names := map[string]bool{}
	for _, d := range m.DBs {
		if !validName(d.Name) {
			return fmt.Errorf("shard: bad database name %q (want [A-Za-z0-9_-]{1,64})", d.Name)
		}
		if names[d.Name] {
			return fmt.Errorf("shard: database %q listed twice", d.Name)
		}
		names[d.Name] = true
	}
	for l, n := range m.Assign {
		if !names[n] {
			return fmt.Errorf("shard: logical shard %d assigned to unknown database %q", l, n)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// DBFor returns the physical database name owning key.
func (m Map) DBFor(key string) string { return m.Assign[Of(key)] }

// URLOf returns the URL of the named database ("" if it is not in the map).
func (m Map) URLOf(name string) string {
	for _, d := range m.DBs {
		if d.Name == name {
			return d.URL
		}
	}
	return ""
}

// Owned returns the logical shards assigned to the named database, ascending.
func (m Map) Owned(name string) []int {
	var out []int
	for l, n := range m.Assign {
		if n == name {
			out = append(out, l)
		}
	}
	return out
}

// Counts returns how many logical shards each database owns.
func (m Map) Counts() map[string]int {
	c := make(map[string]int, len(m.DBs))
	for _, d := range m.DBs {
		c[d.Name] = 0
	}
	for _, n := range m.Assign {
		c[n]++
	}
	return c
}

// Clone returns a deep copy.
func (m Map) Clone() Map {
	return Map{Version: m.Version, DBs: append([]DB(nil), m.DBs...), Assign: append([]string(nil), m.Assign...)}
}

// WithDB returns the next version of m with db added (owning nothing yet).
func (m Map) WithDB(db DB) (Map, error) {
	if m.URLOf(db.Name) != "" {
		return Map{}, fmt.Errorf("shard: database %q already in the map", db.Name)
	}
	n := m.Clone()
	n.Version++
	n.DBs = append(n.DBs, db)
	return n, n.Validate()
}

// WithMove returns the next version of m with logical shard l assigned to db.
func (m Map) WithMove(l int, db string) (Map, error) {
	if l < 0 || l >= Logical {
		return Map{}, fmt.Errorf("shard: logical shard %d out of range", l)
	}
	n := m.Clone()
	n.Version++
	n.Assign[l] = db
	return n, n.Validate()
}

// Move is one planned reassignment of a logical shard.
type Move struct {
	Logical int    `json:"logical"`
	From    string `json:"from"`
	To      string `json:"to"`
}

// PlanBalance returns the moves that bring the map to balance (every
// database owns floor or ceil of Logical/len(DBs) logical shards), moving as
// few logical shards as possible and each at most once: shards leave only the
// databases above their target, and go only to those below it. The plan is
// deterministic (highest logical shard of the most loaded donor first).
func (m Map) PlanBalance() []Move {
	counts := m.Counts()
	names := make([]string, 0, len(m.DBs))
	for _, d := range m.DBs {
		names = append(names, d.Name)
	}
	// Targets: the first Logical%n databases (in map order) get one extra,
	// preferring those that already hold more, so fewer shards move.
	n := len(names)
	base, extra := Logical/n, Logical%n
	order := append([]string(nil), names...)
	sort.SliceStable(order, func(i, j int) bool { return counts[order[i]] > counts[order[j]] })
	target := map[string]int{}
	for i, name := range order {
		target[name] = base
		if i < extra {
			target[name]++
		}
	}
	var donors, takers []string
	for _, name := range order {
		if counts[name] > target[name] {
			donors = append(donors, name)
		}
	}
	for i := len(order) - 1; i >= 0; i-- {
		if counts[order[i]] < target[order[i]] {
			takers = append(takers, order[i])
		}
	}
	var moves []Move
	have := counts
	ti := 0
	for _, d := range donors {
		owned := m.Owned(d)
		for k := len(owned) - 1; k >= 0 && have[d] > target[d]; k-- {
			for ti < len(takers) && have[takers[ti]] >= target[takers[ti]] {
				ti++
			}
			if ti == len(takers) {
				return moves
			}
			t := takers[ti]
			moves = append(moves, Move{Logical: owned[k], From: d, To: t})
			have[d]--
			have[t]++
		}
	}
	return moves
}

// Encode returns the JSON form stored in the shard map bucket.
func (m Map) Encode() ([]byte, error) { return json.Marshal(m) }

// Decode parses and validates a stored map. It is fuzzed: any input either
// fails or yields a valid map.
func Decode(b []byte) (Map, error) {
	var m Map
	if err := json.Unmarshal(b, &m); err != nil {
		return Map{}, fmt.Errorf("shard: decode map: %w", err)
	}
	if err := m.Validate(); err != nil {
		return Map{}, err
	}
	return m, nil
}
