package audit

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// rowHash is the per-row checksum term, computed the same way in Go (from
// the log) and in SQL (from the rows): the first 60 bits of
// md5("<seq>:<idx>:" || md5hex(payload)), where (seq, idx) is the event's
// address (stream sequence of its message, index in the tick record) and
// payload the event's bytes. Per-zone checksums are sums of the terms, so
// rows of one zone may be spread over several shards and still be summed.
func rowHash(seq uint64, idx int, payload []byte) *big.Int {
	ph := md5.Sum(payload)
	h := md5.Sum([]byte(strconv.FormatUint(seq, 10) + ":" + strconv.Itoa(idx) + ":" + hex.EncodeToString(ph[:])))
	v, _ := new(big.Int).SetString(hex.EncodeToString(h[:])[:15], 16)
	return v
}

const zoneChecksumSQL = `SELECT zone, count(*),
	coalesce(sum(('x' || substr(md5(seq::text || ':' || idx::text || ':' || md5(payload)), 1, 15))::bit(60)::bigint::numeric), 0)::text
	FROM events LEFT JOIN unnest($2::text[], $3::int8[]) AS f(fz, fs) ON f.fz = events.zone
	WHERE seq <= $1 AND seq >= coalesce(f.fs, 0) GROUP BY zone`

// FirstSeqs is, per zone, the stream sequence of its first message in the
// log read: the world trims evt.<zone> below a floor (issue 16), so rows of
// the store below it are history JetStream no longer holds and are not
// compared.
func FirstSeqs(logs map[string]*ZoneLog) map[string]uint64 {
	out := map[string]uint64{}
	for z, zl := range logs {
		if len(zl.Events) > 0 {
			out[z] = zl.Events[0].Seq
		}
	}
	return out
}

func fromArgs(from map[string]uint64) ([]string, []int64) {
	var zs []string
	var ss []int64
	for z, v := range from {
		zs, ss = append(zs, z), append(ss, int64(v))
	}
	return zs, ss
}

// ZoneSum is a per-zone row count and checksum.
type ZoneSum struct {
	Count int64
	Sum   *big.Int
}

// LogSums computes the per-zone sums of the EVT log (payload = message data).
func LogSums(logs map[string]*ZoneLog) map[string]ZoneSum {
	out := map[string]ZoneSum{}
	for z, zl := range logs {
		s := ZoneSum{Sum: new(big.Int)}
		for _, le := range zl.Events {
			s.Count++
			s.Sum.Add(s.Sum, rowHash(le.Seq, le.Index, le.Raw))
		}
		out[z] = s
	}
	return out
}

// PGSums sums every shard's events up to stream sequence upTo per zone (rows
// of a zone on several shards add up; a row on two shards counts twice, as
// it should).
func PGSums(ctx context.Context, urls []string, upTo uint64, from map[string]uint64) (map[string]ZoneSum, error) {
	fz, fs := fromArgs(from)
	out := map[string]ZoneSum{}
	for i, u := range urls {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("audit: shard %d: %w", i, err)
		}
		rows, err := conn.Query(ctx, zoneChecksumSQL, int64(upTo), fz, fs)
		if err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("audit: shard %d: %w", i, err)
		}
		for rows.Next() {
			var zone, sum string
			var n int64
			if err := rows.Scan(&zone, &n, &sum); err != nil {
				rows.Close()
				conn.Close(ctx)
				return nil, err
			}
			v, ok := new(big.Int).SetString(sum, 10)
			if !ok {
				rows.Close()
				conn.Close(ctx)
				return nil, fmt.Errorf("audit: shard %d: bad checksum %q", i, sum)
			}
			s := out[zone]
			if s.Sum == nil {
				s.Sum = new(big.Int)
			}
			s.Count += n
			s.Sum.Add(s.Sum, v)
			out[zone] = s
		}
		err = rows.Err()
		rows.Close()
		conn.Close(ctx)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PGFindings compares Postgres with the log.
type PGFindings struct {
	Zones     int   `json:"zones"`
	LogRows   int64 `json:"log_events"`
	PGRows    int64 `json:"pg_rows"`
	Missing   int64 `json:"missing"`
	Doubled   int64 `json:"doubled"`
	Different int64 `json:"different"`
	// CaughtUpIn is how long after the audit started Postgres matched.
	CaughtUpIn time.Duration `json:"caught_up_in_ns"`
}

// CheckPostgres polls the shards until every zone's count and checksum equal
// the log's, or timeout; on a mismatch it diffs row by row to say which
// sequences are missing, doubled or different. Only rows up to the last
// sequence of the log read are compared (events appended after the read are
// not part of the audited prefix), and per zone only from its first message
// still in JetStream (FirstSeqs: below it the log was trimmed).
func CheckPostgres(ctx context.Context, urls []string, logs map[string]*ZoneLog, timeout time.Duration) (PGFindings, []Violation, error) {
	want := LogSums(logs)
	upTo := LastSeq(logs)
	var f PGFindings
	for _, s := range want {
		f.LogRows += s.Count
	}
	f.Zones = len(want)
	start := time.Now()
	var got map[string]ZoneSum
	var err error
	for {
		got, err = PGSums(ctx, urls, upTo, FirstSeqs(logs))
		if err == nil && sumsEqual(want, got) {
			f.CaughtUpIn = time.Since(start)
			for _, s := range got {
				f.PGRows += s.Count
			}
			return f, nil, nil
		}
		if time.Since(start) > timeout {
			break
		}
		select {
		case <-ctx.Done():
			return f, nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return f, nil, err
	}
	for _, s := range got {
		f.PGRows += s.Count
	}
	vs, err := diffRows(ctx, urls, logs, upTo, &f)
	return f, vs, err
}

func sumsEqual(a, b map[string]ZoneSum) bool {
	if len(a) != len(b) {
		return false
	}
	for z, s := range a {
		o, ok := b[z]
		if !ok || o.Count != s.Count || o.Sum.Cmp(s.Sum) != 0 {
			return false
		}
	}
	return true
}

func diffRows(ctx context.Context, urls []string, logs map[string]*ZoneLog, upTo uint64, f *PGFindings) ([]Violation, error) {
	type row struct {
		shard int
		zone  string
		hash  string
	}
	type key struct {
		seq uint64
		idx int
	}
	have := map[key][]row{}
	for i, u := range urls {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			return nil, err
		}
		fz, fs := fromArgs(FirstSeqs(logs))
		rows, err := conn.Query(ctx, `SELECT seq, idx, zone, md5(payload) FROM events
			LEFT JOIN unnest($2::text[], $3::int8[]) AS f(fz, fs) ON f.fz = events.zone
			WHERE seq <= $1 AND seq >= coalesce(f.fs, 0)`, int64(upTo), fz, fs)
		if err != nil {
			conn.Close(ctx)
			return nil, err
		}
		for rows.Next() {
			var seq int64
			var idx int32
			var r row
			if err := rows.Scan(&seq, &idx, &r.zone, &r.hash); err != nil {
				rows.Close()
				conn.Close(ctx)
				return nil, err
			}
			r.shard = i
			k := key{uint64(seq), int(idx)}
			have[k] = append(have[k], r)
		}
		rows.Close()
		conn.Close(ctx)
	}
	var vs []Violation
	add := func(check, format string, a ...any) {
		if len(vs) < 60 {
			vs = append(vs, Violation{check, fmt.Sprintf(format, a...)})
		}
	}
	inLog := map[key]bool{}
	zones := make([]string, 0, len(logs))
	for z := range logs {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		for _, le := range logs[z].Events {
			k := key{le.Seq, le.Index}
			inLog[k] = true
			rs := have[k]
			ph := md5.Sum(le.Raw)
			switch {
			case len(rs) == 0:
				f.Missing++
				add("pg-missing", "EVT seq %d index %d (%s, %s) is in no shard", le.Seq, le.Index, z, EventType(le.Event))
			case len(rs) > 1:
				f.Doubled++
				add("pg-doubled", "EVT seq %d index %d (%s) is stored %d times (shards %v)", le.Seq, le.Index, z, len(rs), rs)
			case rs[0].zone != z || rs[0].hash != hex.EncodeToString(ph[:]):
				f.Different++
				add("pg-different", "EVT seq %d index %d: log zone %s, row zone %s, payload md5 differs: %v", le.Seq, le.Index, z, rs[0].zone, rs[0].hash != hex.EncodeToString(ph[:]))
			}
		}
	}
	for k, rs := range have {
		if !inLog[k] {
			f.Different++
			add("pg-extra", "row seq %d index %d (zone %s, shard %d) is not in the log", k.seq, k.idx, rs[0].zone, rs[0].shard)
		}
	}
	if len(vs) == 0 {
		vs = append(vs, Violation{"pg-checksum", "per-zone checksums differ but no row differs (race with a writer?)"})
	}
	return vs, nil
}

// ShardOf reports, per shard index, which zones have rows there (for the
// report: which zones a shard outage paused).
func ShardOf(ctx context.Context, urls []string) (map[string][]int, error) {
	out := map[string][]int{}
	for i, u := range urls {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			return nil, err
		}
		rows, err := conn.Query(ctx, `SELECT DISTINCT zone FROM events`)
		if err != nil {
			conn.Close(ctx)
			return nil, err
		}
		zs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		conn.Close(ctx)
		if err != nil {
			return nil, err
		}
		for _, z := range zs {
			out[z] = append(out[z], i)
		}
	}
	return out, nil
}

// LastSeq is the highest stream sequence in the logs.
func LastSeq(logs map[string]*ZoneLog) uint64 {
	var m uint64
	for _, zl := range logs {
		if n := len(zl.Events); n > 0 {
			m = max(m, zl.Events[n-1].Seq)
		}
	}
	return m
}
