package persist

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/realmstream/realmstream/libs/schema"
)

type strErr struct{ s string }

func (e *strErr) Error() string { return e.s }

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }

// checkStatsAgainstSQL compares a DB stats event with what psql shows for the
// same views: settings and catalog figures exactly, cumulative counters as
// "not more than now and not long before".
func checkStatsAgainstSQL(t *testing.T, url string, st *schema.DBStats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var maxConn, parts int32
	var defRows, hwm, commits, size int64
	var version string
	err = c.QueryRow(ctx, `SELECT current_setting('max_connections')::int, current_setting('server_version'),
		(SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass) - 1,
		(SELECT count(*) FROM events_default), (SELECT seq FROM persist_hwm),
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
		pg_database_size(current_database())`).Scan(&maxConn, &version, &parts, &defRows, &hwm, &commits, &size)
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxConnections != maxConn || st.PgVersion != version || st.PartitionCount != parts ||
		st.DefaultPartitionRows != defRows || st.HighWaterMark != hwm {
		t.Fatalf("stats %s disagree with SQL: max_connections %d/%d version %q/%q partitions %d/%d default %d/%d hwm %d/%d",
			st.Shard, st.MaxConnections, maxConn, st.PgVersion, version, st.PartitionCount, parts, st.DefaultPartitionRows, defRows, st.HighWaterMark, hwm)
	}
	if st.XactCommit > commits || st.XactCommit < commits-2000 || st.XactCommit == 0 {
		t.Fatalf("xact_commit %d, SQL now %d", st.XactCommit, commits)
	}
	if st.DatabaseSizeBytes <= 0 || st.DatabaseSizeBytes > 2*size {
		t.Fatalf("database size %d, SQL %d", st.DatabaseSizeBytes, size)
	}
	if st.Connections < 1 || st.Pool == nil || st.Pool.MaxConns != 8 || st.DaysAhead != 3 || len(st.Tables) == 0 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("%s: commits %d (sql %d), partitions %d, hwm %d, conns %d/%d, cache hit %.3f, lag %d",
		st.Shard, st.XactCommit, commits, st.PartitionCount, st.HighWaterMark, st.Connections, st.MaxConnections, st.CacheHitRatio, st.ConsumerLag)
}
