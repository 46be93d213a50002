package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/natsconn"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/persist/persist"
)

const adminUsage = `realmstream admin: look inside a running Realmstream backend (any NATS URL).

Usage:
  realmstream admin [--nats-url URL] [--json] <command> [args]

Commands:
  zones                                 every zone: owner, fence, last seq, players, command lag, tick p99
  zone state <zone> [--at-seq N | --at TIME]
                                        the zone's players at a log position or a time (time travel:
                                        nearest snapshot at or before, then replay; answered by any world)
  zone log <zone> [--from N] [--to N] [--limit N]
                                        the zone's events, decoded (seq/index, time, type, player, body)
  player history <player> [--limit N]   the player's events across every zone log
  shards [show|add-db|move|rebalance]   the persist shard map (Postgres only; same as persist shards ...)
  partitions                            per shard: partitions and the default partition's rows (DB stats)
  consumers                             every JetStream consumer: pending, ack pending, redelivered

TIME is RFC 3339 ("2026-12-01T18:40:07Z") or a duration ago ("90s", "5m").
Flags go before the command; --nats-url defaults to REALM_NATS_URL, then nats://127.0.0.1:4222.
`

type admin struct {
	out     io.Writer
	json    bool
	natsURL string
	natsOpt natsconn.Options // credentials and TLS (libs/natsconn)
	nc      *nats.Conn
	js      jetstream.JetStream
	timeout time.Duration
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := "nats://127.0.0.1:4222"
	if v := os.Getenv("REALM_NATS_URL"); v != "" {
		def = v
	}
	a := &admin{out: stdout}
	fs.StringVar(&a.natsURL, "nats-url", def, "NATS server URL (env REALM_NATS_URL)")
	fs.BoolVar(&a.json, "json", false, "print JSON instead of tables")
	fs.DurationVar(&a.timeout, "timeout", 10*time.Second, "bound of each request to the backend")
	set := envflag.New(fs)
	a.natsOpt.Register(set)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage, "\nFlags:\n"); fs.PrintDefaults() }
	if err := set.Parse(args); err != nil {
		return err
	}
	if err := a.natsOpt.Validate(); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("admin: a command is required")
	}
	if rest[0] == "shards" {
		return a.shards(ctx, rest[1:], stderr)
	}
	nc, err := a.natsOpt.Connect(a.natsURL, nats.Name("realmstream-admin"), nats.Timeout(a.timeout))
	if err != nil {
		return fmt.Errorf("admin: connect to %s: %w (is the backend running? set --nats-url)", a.natsURL, err)
	}
	defer nc.Close()
	a.nc = nc
	if a.js, err = jetstream.New(nc); err != nil {
		return err
	}
	switch {
	case rest[0] == "zones":
		return a.zones(ctx)
	case rest[0] == "zone" && len(rest) >= 3 && rest[1] == "state":
		return a.zoneState(ctx, rest[2], rest[3:], stderr)
	case rest[0] == "zone" && len(rest) >= 3 && rest[1] == "log":
		return a.zoneLog(ctx, rest[2], rest[3:], stderr)
	case rest[0] == "player" && len(rest) >= 3 && rest[1] == "history":
		return a.playerHistory(ctx, rest[2], rest[3:], stderr)
	case rest[0] == "partitions":
		return a.partitions(ctx)
	case rest[0] == "consumers":
		return a.consumers(ctx)
	}
	fs.Usage()
	return fmt.Errorf("admin: unknown command %q", strings.Join(rest, " "))
}

func (a *admin) table(header string, rows [][]string) {
	tw := tabwriter.NewWriter(a.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

func (a *admin) emit(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ZoneRow is one line of `admin zones`.
type ZoneRow struct {
	Zone       string  `json:"zone"`
	Owner      string  `json:"owner"`
	Fence      uint64  `json:"fence"`
	LastSeq    uint64  `json:"last_seq"`
	Players    int32   `json:"players"`
	CommandLag uint64  `json:"command_lag"` // messages in cmd.<zone> not yet acked by the owner (a command batch is one message: --command-batch)
	TickP99Ms  float64 `json:"tick_p99_ms"` // the owner instance's tick p99 (all its zones), -1 if unknown
}

// zones listens to the world heartbeats for a little longer than their
// interval, then adds each zone's consumer lag and its owner's tick p99.
func (a *admin) zones(ctx context.Context) error {
	hbs := map[string]*schema.Heartbeat{}
	ch := make(chan *nats.Msg, 256)
	sub, err := a.nc.ChanSubscribe(wire.HeartbeatPrefix+"world.>", ch)
	if err != nil {
		return err
	}
	deadline := time.After(2500 * time.Millisecond)
collect:
	for {
		select {
		case m := <-ch:
			hb := &schema.Heartbeat{}
			if proto.Unmarshal(m.Data, hb) == nil && !hb.Stopping {
				hbs[hb.InstanceId] = hb
			}
		case <-deadline:
			break collect
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_ = sub.Unsubscribe()
	if len(hbs) == 0 {
		return errors.New("admin zones: no world heartbeat in 2.5s: is a world instance running against " + a.natsURL + "?")
	}
	var rows []ZoneRow
	for _, hb := range hbs {
		p99 := tickP99(ctx, hb.HttpAddr)
		for _, z := range hb.Zones {
			r := ZoneRow{Zone: z.Zone, Owner: hb.InstanceId, Fence: z.Fence, LastSeq: z.LastSeq, Players: z.Players, TickP99Ms: p99}
			if c, err := a.js.Consumer(ctx, wire.StreamCommands, wire.DurableWorldZone(z.Zone)); err == nil {
				if info, err := c.Info(ctx); err == nil {
					r.CommandLag = info.NumPending + uint64(info.NumAckPending)
				}
			}
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Zone < rows[j].Zone })
	if a.json {
		return a.emit(rows)
	}
	var t [][]string
	for _, r := range rows {
		p := "?"
		if r.TickP99Ms >= 0 {
			p = strconv.FormatFloat(r.TickP99Ms, 'f', 1, 64)
		}
		t = append(t, []string{r.Zone, r.Owner, u(r.Fence), u(r.LastSeq), strconv.Itoa(int(r.Players)), u(r.CommandLag), p})
	}
	a.table("ZONE\tOWNER\tFENCE\tLAST SEQ\tPLAYERS\tCMD LAG\tTICK P99 MS", t)
	return nil
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }

// tickP99 reads the realm_world_tick_seconds histogram from a world's
// /metrics and returns its p99 in milliseconds (the bucket's upper bound), -1
// when it cannot be read.
func tickP99(ctx context.Context, addr string) float64 {
	if addr == "" {
		return -1
	}
	if strings.HasPrefix(addr, "[::]") || strings.HasPrefix(addr, ":") || strings.HasPrefix(addr, "0.0.0.0") {
		addr = "127.0.0.1:" + addr[strings.LastIndexByte(addr, ':')+1:]
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	type bucket struct{ le, n float64 }
	var bs []bucket
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "realm_world_tick_seconds_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.LastIndexByte(line, ' ')
		if i < 0 || j < 0 {
			continue
		}
		leS := line[i+4:]
		leS = leS[:strings.IndexByte(leS, '"')]
		le, err1 := strconv.ParseFloat(leS, 64)
		n, err2 := strconv.ParseFloat(line[j+1:], 64)
		if err1 == nil && err2 == nil {
			bs = append(bs, bucket{le, n})
		}
	}
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return -1
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	total := bs[len(bs)-1].n
	for _, b := range bs {
		if b.n >= 0.99*total {
			if math.IsInf(b.le, 1) {
				return -1
			}
			return b.le * 1000
		}
	}
	return -1
}

// parseAt reads an RFC 3339 time or a duration ago.
func parseAt(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q: want RFC 3339 (2026-12-01T18:40:07Z) or a duration ago (90s)", s)
	}
	return t, nil
}

func (a *admin) zoneState(ctx context.Context, zone string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream admin zone state", flag.ContinueOnError)
	fs.SetOutput(stderr)
	atSeq := fs.Uint64("at-seq", 0, "the state after the zone log's messages up to this stream sequence (0: the end)")
	at := fs.String("at", "", "the state at this time (RFC 3339 or a duration ago)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req := map[string]any{"zone": zone, "at_seq": *atSeq}
	if *at != "" {
		t, err := parseAt(*at)
		if err != nil {
			return err
		}
		req["at_ns"] = t.UnixNano()
	}
	b, _ := json.Marshal(req)
	m, err := a.nc.Request(wire.QueryZoneState, b, a.timeout)
	if errors.Is(err, nats.ErrNoResponders) {
		return errors.New("admin zone state: no world instance answers " + wire.QueryZoneState + ": start a world (time travel runs there)")
	}
	if err != nil {
		return fmt.Errorf("admin zone state: %w", err)
	}
	var rep struct {
		Zone        string  `json:"zone"`
		AtSeq       uint64  `json:"at_seq"`
		SnapshotSeq uint64  `json:"snapshot_seq"`
		Replayed    int     `json:"replayed"`
		LogEnd      uint64  `json:"log_end"`
		Fence       uint64  `json:"fence"`
		Tick        uint64  `json:"tick"`
		Events      uint64  `json:"events"`
		LastEventNs int64   `json:"last_event_ns"`
		TookMs      float64 `json:"took_ms"`
		Players     []struct {
			PlayerID string  `json:"player_id"`
			Name     string  `json:"name"`
			X        float32 `json:"x"`
			Y        float32 `json:"y"`
			HP       int32   `json:"hp"`
			MaxHP    int32   `json:"max_hp"`
			Dead     bool    `json:"dead"`
			Kills    int64   `json:"kills"`
			Deaths   int64   `json:"deaths"`
		} `json:"players"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return fmt.Errorf("admin zone state: bad answer: %w", err)
	}
	if rep.Error != "" {
		return fmt.Errorf("admin zone state: %s", rep.Error)
	}
	if a.json {
		_, err := a.out.Write(append(m.Data, '\n'))
		return err
	}
	when := "-"
	if rep.LastEventNs > 0 {
		when = time.Unix(0, rep.LastEventNs).UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(a.out, "zone %s at seq %d (log end %d): fence %d, tick %d, %d events, last event %s\n(snapshot at seq %d + %d events replayed in %.1f ms)\n\n",
		rep.Zone, rep.AtSeq, rep.LogEnd, rep.Fence, rep.Tick, rep.Events, when, rep.SnapshotSeq, rep.Replayed, rep.TookMs)
	var t [][]string
	for _, p := range rep.Players {
		state := "alive"
		if p.Dead {
			state = "dead"
		}
		t = append(t, []string{p.PlayerID, p.Name, fmt.Sprintf("%.1f", p.X), fmt.Sprintf("%.1f", p.Y), fmt.Sprintf("%d/%d", p.HP, p.MaxHP), state,
			strconv.FormatInt(p.Kills, 10), strconv.FormatInt(p.Deaths, 10)})
	}
	a.table("PLAYER\tNAME\tX\tY\tHP\tSTATE\tKILLS\tDEATHS", t)
	return nil
}

// EventRow is one decoded event of `admin zone log` and `admin player history`.
type EventRow struct {
	Zone     string          `json:"zone"`
	Seq      uint64          `json:"seq"`
	Index    int             `json:"index"`
	Time     string          `json:"time"`
	Type     string          `json:"type"`
	Player   string          `json:"player,omitempty"`
	Command  string          `json:"command,omitempty"`
	EventID  string          `json:"event_id"`
	Fence    uint64          `json:"fence"`
	Body     json.RawMessage `json:"body,omitempty"`
	bodyText string
}

var errEnough = errors.New("enough")

func rowOf(zone string, e zonelog.Entry) EventRow {
	ev := e.Event
	r := EventRow{Zone: zone, Seq: e.Seq, Index: e.Index, Time: time.Unix(0, ev.TimestampNs).UTC().Format("15:04:05.000"),
		Type: wire.EventType(ev), Player: ev.PlayerId, Command: ev.CommandId, EventID: ev.EventId, Fence: ev.Fence}
	if body := ev.ProtoReflect(); body.IsValid() {
		od := body.Descriptor().Oneofs().ByName("body")
		if fd := body.WhichOneof(od); fd != nil && fd.Message() != nil {
			if b, err := protojson.Marshal(body.Get(fd).Message().Interface()); err == nil {
				r.Body = b
				r.bodyText = string(b)
			}
		}
	}
	return r
}

func (a *admin) printEvents(rows []EventRow) error {
	if a.json {
		return a.emit(rows)
	}
	var t [][]string
	for _, r := range rows {
		body := r.bodyText
		if len(body) > 100 {
			body = body[:97] + "..."
		}
		t = append(t, []string{r.Zone, fmt.Sprintf("%d/%d", r.Seq, r.Index), r.Time, r.Type, r.Player, r.Command, body})
	}
	a.table("ZONE\tSEQ/IDX\tTIME\tTYPE\tPLAYER\tCOMMAND\tBODY", t)
	return nil
}

func (a *admin) zoneLog(ctx context.Context, zone string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream admin zone log", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.Uint64("from", 1, "first stream sequence")
	to := fs.Uint64("to", 0, "last stream sequence (0: the end)")
	limit := fs.Int("limit", 200, "at most this many events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rows []EventRow
	err := zonelog.Scan(ctx, a.js, zone, *from, func(e zonelog.Entry) error {
		if (*to > 0 && e.Seq > *to) || len(rows) >= *limit {
			return errEnough
		}
		rows = append(rows, rowOf(zone, e))
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return fmt.Errorf("admin zone log: %w", err)
	}
	return a.printEvents(rows)
}

// playerHistory reads every zone log (evt.>) and keeps the player's events.
func (a *admin) playerHistory(ctx context.Context, player string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream admin player history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	limit := fs.Int("limit", 200, "at most this many events (the latest are kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stream, err := a.js.Stream(ctx, wire.StreamEvents)
	if err != nil {
		return fmt.Errorf("admin player history: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	var rows []EventRow
	if info.State.Msgs > 0 {
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.EventSubjects}})
		if err != nil {
			return err
		}
		last := info.State.LastSeq
	read:
		for {
			batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for m := range batch.Messages() {
				n++
				md, _ := m.Metadata()
				es, derr := zonelog.Decode(md.Sequence.Stream, m.Headers(), m.Data())
				zone := strings.TrimPrefix(m.Subject(), wire.EventPrefix)
				if derr == nil {
					for _, e := range es {
						if involves(e.Event, player) {
							rows = append(rows, rowOf(zone, e))
						}
					}
				}
				if md.Sequence.Stream >= last {
					break read
				}
			}
			if n == 0 {
				break
			}
		}
	}
	if len(rows) > *limit {
		rows = rows[len(rows)-*limit:]
	}
	if len(rows) == 0 && !a.json {
		fmt.Fprintf(a.out, "no events of player %q in the JetStream log\n", player)
		return nil
	}
	return a.printEvents(rows)
}

func involves(ev *schema.Event, player string) bool {
	if ev.PlayerId == player {
		return true
	}
	if h := ev.GetAttackHit(); h != nil && h.TargetId == player {
		return true
	}
	return false
}

// partitions prints the latest DB stats event of every shard.
func (a *admin) partitions(ctx context.Context) error {
	stream, err := a.js.Stream(ctx, wire.StreamStats)
	if err != nil {
		return fmt.Errorf("admin partitions: %w", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(wire.StatsDBSubjects))
	if err != nil {
		return err
	}
	type row struct {
		Shard       string          `json:"shard"`
		Backend     string          `json:"backend"`
		Partitions  int32           `json:"partitions"`
		DefaultRows int64           `json:"default_partition_rows"`
		Alarm       bool            `json:"default_partition_alarm"`
		Sampled     string          `json:"sampled_at"`
		Stats       json.RawMessage `json:"stats"`
	}
	var rows []row
	subjects := make([]string, 0, len(info.State.Subjects))
	for s := range info.State.Subjects {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects)
	for _, subj := range subjects {
		m, err := stream.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			continue
		}
		st := &schema.DBStats{}
		if proto.Unmarshal(m.Data, st) != nil {
			continue
		}
		full, _ := protojson.Marshal(st)
		rows = append(rows, row{Shard: strings.TrimPrefix(subj, wire.StatsDBPrefix), Backend: dbBackend(st), Partitions: st.PartitionCount,
			DefaultRows: st.DefaultPartitionRows, Alarm: st.DefaultPartitionAlarm, Sampled: m.Time.UTC().Format(time.RFC3339), Stats: full})
	}
	if len(rows) == 0 {
		return errors.New("admin partitions: no DB stats on " + wire.StatsDBSubjects + " yet: is persist running (it samples every few seconds)?")
	}
	if a.json {
		return a.emit(rows)
	}
	var t [][]string
	for _, r := range rows {
		alarm := ""
		if r.Alarm {
			alarm = "ALARM"
		}
		t = append(t, []string{r.Shard, r.Backend, strconv.Itoa(int(r.Partitions)), strconv.FormatInt(r.DefaultRows, 10), alarm, r.Sampled})
	}
	a.table("SHARD\tBACKEND\tPARTITIONS\tDEFAULT ROWS\t\tSAMPLED", t)
	for _, r := range rows {
		st := &schema.DBStats{}
		_ = protojson.Unmarshal(r.Stats, st)
		if len(st.Partitions) == 0 {
			continue
		}
		fmt.Fprintf(a.out, "\n%s partitions:\n", r.Shard)
		var pt [][]string
		for _, p := range st.Partitions {
			b, _ := protojson.Marshal(p)
			pt = append(pt, []string{string(b)})
		}
		a.table("PARTITION", pt)
	}
	return nil
}

func dbBackend(st *schema.DBStats) string {
	if st.GetBackend() != "" {
		return st.GetBackend()
	}
	return "postgres"
}

// ConsumerRow is one line of `admin consumers`.
type ConsumerRow struct {
	Stream      string `json:"stream"`
	Consumer    string `json:"consumer"`
	Pending     uint64 `json:"pending"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
	AckFloor    uint64 `json:"ack_floor_stream_seq"`
	Waiting     int    `json:"waiting"`
}

func (a *admin) consumers(ctx context.Context) error {
	var rows []ConsumerRow
	for _, sn := range []string{wire.StreamCommands, wire.StreamEvents, wire.StreamStats} {
		st, err := a.js.Stream(ctx, sn)
		if err != nil {
			continue
		}
		l := st.ListConsumers(ctx)
		for ci := range l.Info() {
			rows = append(rows, ConsumerRow{Stream: sn, Consumer: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending,
				Redelivered: ci.NumRedelivered, AckFloor: ci.AckFloor.Stream, Waiting: ci.NumWaiting})
		}
		if err := l.Err(); err != nil {
			return fmt.Errorf("admin consumers: %s: %w", sn, err)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Stream != rows[j].Stream {
			return rows[i].Stream < rows[j].Stream
		}
		return rows[i].Consumer < rows[j].Consumer
	})
	if a.json {
		return a.emit(rows)
	}
	var t [][]string
	for _, r := range rows {
		t = append(t, []string{r.Stream, r.Consumer, u(r.Pending), strconv.Itoa(r.AckPending), strconv.Itoa(r.Redelivered), u(r.AckFloor)})
	}
	a.table("STREAM\tCONSUMER\tPENDING\tACK PENDING\tREDELIVERED\tACK FLOOR", t)
	return nil
}

// shards runs persist's shard administration (Postgres shard map).
func (a *admin) shards(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream admin shards", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := persist.DefaultConfig()
	cfg.NATSURL, cfg.NATS = a.natsURL, a.natsOpt
	name := fs.String("name", "", "add-db: the new database's name")
	url := fs.String("url", "", "add-db: the new database's URL")
	rebalance := fs.Bool("rebalance", false, "add-db: move logical shards to it at once")
	logical := fs.Int("logical", -1, "move: the logical shard")
	to := fs.String("to", "", "move: the target database")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: realmstream admin [--nats-url URL] shards <show|add-db|move|rebalance> [flags]\n"+
			"The shard map exists only with Postgres (persist --pg-urls); a Pebble persist has no shards.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	sub := "show"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ad, err := persist.OpenAdmin(ctx, cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("admin shards: %w (the shard map exists only when persist runs on Postgres with --pg-urls)", err)
	}
	defer ad.Close()
	switch sub {
	case "show":
		if a.json {
			m, err := ad.Map(ctx)
			if err != nil {
				return err
			}
			return a.emit(m)
		}
		return ad.Show(ctx, a.out)
	case "add-db":
		return ad.AddDB(ctx, *name, *url, *rebalance, a.out)
	case "move":
		return ad.Move(ctx, *logical, *to, a.out)
	case "rebalance":
		return ad.Rebalance(ctx, a.out)
	}
	fs.Usage()
	return fmt.Errorf("admin shards: unknown subcommand %q", sub)
}
