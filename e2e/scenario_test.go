package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/e2e/audit"
	"github.com/realmstream/realmstream/e2e/harness"
	"github.com/realmstream/realmstream/libs/bots"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// faultRecord is one injected fault and how long the system took to recover.
type faultRecord struct {
	Fault       string        `json:"fault"`
	Target      string        `json:"target"`
	At          float64       `json:"at_s"` // seconds after the swarm started
	RecoveredIn time.Duration `json:"recovered_in_ns"`
	Measure     string        `json:"measure"` // what "recovered" means for this fault
	Detail      string        `json:"detail,omitempty"`
}

// runResult is everything a run produced, written as JSON.
type runResult struct {
	Swarm        *bots.Report            `json:"swarm"`
	Faults       []faultRecord           `json:"faults"`
	Commands     audit.CommandFindings   `json:"commands"`
	Logs         audit.LogFindings       `json:"logs"`
	PG           audit.PGFindings        `json:"postgres"`
	Models       audit.ReadModelFindings `json:"read_models"`
	Unapplied    map[string]int          `json:"unapplied_commands_by_zone"`
	Violations   []audit.Violation       `json:"violations"`
	EventsPerSec float64                 `json:"events_per_s"`
	// AckedDiffers counts acknowledged commands whose stored command (same
	// id, the Ack's sequence) says something else: lost (checkAckedContent).
	AckedDiffers int    `json:"acked_commands_differing"`
	Tracker      string `json:"tracker"`
}

type scenario struct {
	t      testing.TB
	st     *harness.Stack
	sw     *bots.Swarm
	tr     *tracker
	start  time.Time
	faults []faultRecord
	log    io.Writer
	probes []*probe
}

func (s *scenario) since() float64 { return time.Since(s.start).Seconds() }

func (s *scenario) record(f faultRecord) {
	s.faults = append(s.faults, f)
	fmt.Fprintf(s.log, "FAULT %-22s %-16s at %5.1fs recovered in %-10v (%s) %s\n", f.Fault, f.Target, f.At, f.RecoveredIn.Round(time.Millisecond), f.Measure, f.Detail)
}

// sleep waits without hiding a cancelled test.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (s *scenario) restart(ctx context.Context, name string) {
	if err := s.st.Restart(ctx, name, 60*time.Second); err != nil {
		s.t.Errorf("restart %s: %v", name, err)
	}
}

// busiestWorld is the world instance owning the most zones now (so that a
// fault on it is never a no-op), other than except.
func (s *scenario) busiestWorld(except string) string {
	count := map[string]int{}
	for _, inst := range s.tr.ownersAt(time.Now()) {
		if inst != except && s.st.Proc(inst) != nil && s.st.Proc(inst).Running() {
			count[inst]++
		}
	}
	best, n := "world-1", -1
	for _, p := range s.st.ProcsOf("world") {
		if c, ok := count[p.Name]; ok && c > n {
			best, n = p.Name, c
		}
	}
	return best
}

// worldCrash kills a world instance (kill -9: no release) and measures the
// time until every zone it owned is claimed by another instance.
func (s *scenario) worldCrash(ctx context.Context, name string) {
	at := time.Now()
	zones := s.tr.zonesOf(name, at)
	if err := s.st.Proc(name).Kill(); err != nil {
		s.t.Error(err)
		return
	}
	var worst time.Duration
	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		worst, missing = s.tr.reclaimedIn(name, at)
		if len(missing) == 0 {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	if len(missing) > 0 {
		s.t.Errorf("world crash %s: zones %v not owned again within 60s", name, missing)
	}
	s.record(faultRecord{Fault: "kill -9 world", Target: name, At: at.Sub(s.start).Seconds(), RecoveredIn: worst,
		Measure: "zones owned again", Detail: fmt.Sprintf("zones %v", zones)})
	s.restart(ctx, name)
}

// gatewayCrash kills a gateway and measures the time until every bot has a
// session again (on the other gateway or the restarted one). It is also the
// fault case of issue 10 defect 3: the bots of the killed gateway resume
// their sessions on the other one, where Welcome.last_seq must be right (a
// share of the bots continue from it; see checkAckedContent).
func (s *scenario) gatewayCrash(ctx context.Context, name string, bots int) {
	before := s.sw.Report()
	at := time.Now()
	if err := s.st.Proc(name).Kill(); err != nil {
		s.t.Error(err)
		return
	}
	restarted := false
	deadline := time.Now().Add(60 * time.Second)
	var took time.Duration
	for time.Now().Before(deadline) {
		// Every bot that lost its connection has a session again
		// (deliberate resumes going on at the same time do not count).
		if s.sw.Lost() == 0 && time.Since(at) > 500*time.Millisecond {
			took = time.Since(at)
			break
		}
		if !restarted && time.Since(at) > 2*time.Second {
			// Bring it back while the rest fail over.
			go s.restart(ctx, name)
			restarted = true
		}
		sleep(ctx, 20*time.Millisecond)
	}
	if took == 0 {
		s.t.Errorf("gateway crash %s: %d bots still without a session after 60s", name, s.sw.Lost())
	}
	if !restarted {
		s.restart(ctx, name)
	}
	after := s.sw.Report()
	elsewhere, rewinds := after.ResumesElsewhere-before.ResumesElsewhere, after.SeqRewinds-before.SeqRewinds
	if elsewhere == 0 {
		s.t.Errorf("gateway crash %s: no bot resumed its session on another gateway", name)
	}
	if rewinds > 0 {
		s.t.Errorf("gateway crash %s: %d resumes got a Welcome.last_seq below a seq already acknowledged (issue 10 defect 3)", name, rewinds)
	}
	s.record(faultRecord{Fault: "kill -9 gateway", Target: name, At: at.Sub(s.start).Seconds(), RecoveredIn: took,
		Measure: "all clients reconnected", Detail: fmt.Sprintf("%d resumes on another gateway, %d with a wrong last_seq", elsewhere, rewinds)})
}

// persistAckFloor is how far persist has durably written (its consumer acks
// only after every shard of a batch committed).
func persistAckFloor(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	c, err := js.Consumer(ctx, wire.StreamEvents, wire.DurablePersist)
	if err != nil {
		return 0, err
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return ci.AckFloor.Stream, nil
}

func lastEventSeq(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	st, err := js.Stream(ctx, wire.StreamEvents)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// waitPersisted waits until persist's ack floor reaches seq.
func (s *scenario) waitPersisted(ctx context.Context, seq uint64, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	var floor uint64
	var err error
	for time.Since(start) < limit {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		floor, err = persistAckFloor(cctx, s.st.JS())
		cancel()
		if err == nil && floor >= seq {
			return time.Since(start), nil
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return 0, fmt.Errorf("persist ack floor %d did not reach %d within %v (last error %v)", floor, seq, limit, err)
}

func (s *scenario) persistCrash(ctx context.Context, name string) {
	at := time.Now()
	if err := s.st.Proc(name).Kill(); err != nil {
		s.t.Error(err)
		return
	}
	sleep(ctx, 2*time.Second)
	s.restart(ctx, name)
	last, _ := lastEventSeq(ctx, s.st.JS())
	took, err := s.waitPersisted(ctx, last, 90*time.Second)
	if err != nil {
		s.t.Errorf("persist crash %s: %v", name, err)
	}
	s.record(faultRecord{Fault: "kill -9 persist", Target: name, At: at.Sub(s.start).Seconds(), RecoveredIn: took,
		Measure: "persist caught up (after restart)", Detail: fmt.Sprintf("to EVT seq %d", last)})
}

func (s *scenario) shardOutage(ctx context.Context, shard int, down time.Duration) {
	at := time.Now()
	s.st.PG[shard].Stop()
	sleep(ctx, down)
	s.st.PG[shard].Start()
	back := time.Now()
	last, _ := lastEventSeq(ctx, s.st.JS())
	took, err := s.waitPersisted(ctx, last, 90*time.Second)
	if err != nil {
		s.t.Errorf("shard %d outage: %v", shard, err)
	}
	s.record(faultRecord{Fault: "restart Postgres shard", Target: fmt.Sprintf("pg%d", shard), At: at.Sub(s.start).Seconds(),
		RecoveredIn: took, Measure: "persist caught up after the shard returned",
		Detail: fmt.Sprintf("down %v, caught up to EVT seq %d %v after it returned", down, last, time.Since(back).Round(time.Millisecond))})
}

func (s *scenario) monitorCrash(ctx context.Context, name string) {
	at := time.Now()
	if err := s.st.Proc(name).Kill(); err != nil {
		s.t.Error(err)
		return
	}
	s.restart(ctx, name)
	s.record(faultRecord{Fault: "kill -9 monitor", Target: name, At: at.Sub(s.start).Seconds(), RecoveredIn: time.Since(at),
		Measure: "ready again after restart"})
}

// waitAllReady waits until every service answers /readyz and returns how long it took.
func (s *scenario) waitAllReady(ctx context.Context, limit time.Duration) time.Duration {
	start := time.Now()
	for _, p := range s.st.Procs() {
		if !p.Running() {
			continue
		}
		if err := p.WaitReady(ctx, limit-time.Since(start)); err != nil {
			s.t.Errorf("after fault: %v", err)
		}
	}
	return time.Since(start)
}

// serverRestart stops a server, starts it again and measures the longest
// zone stall (time until the slowest zone appended again) once it is back.
func (s *scenario) serverRestart(ctx context.Context, what string, down time.Duration, stop, start func()) {
	at := time.Now()
	stop()
	sleep(ctx, down)
	start()
	ready := s.waitAllReady(ctx, 90*time.Second)
	sleep(ctx, 5*time.Second)
	stall, zone := s.tr.stall(at, time.Now())
	if stall > 45*time.Second {
		s.t.Errorf("%s restart: zone %s appended nothing for %v", what, zone, stall)
	}
	s.record(faultRecord{Fault: "restart " + what, Target: what, At: at.Sub(s.start).Seconds(), RecoveredIn: stall,
		Measure: "longest zone stall (fault -> zone appends again)",
		Detail:  fmt.Sprintf("down %v; all services ready %v after it returned; slowest zone %s", down, ready.Round(time.Millisecond), zone)})
}

// linkFaults injects latency, resets and a cut through the proxies.
func (s *scenario) linkFaults(ctx context.Context) {
	// Latency between world-2 and NATS.
	at := time.Now()
	p := s.st.Proxy("world-2", "nats")
	p.SetLatency(50 * time.Millisecond)
	sleep(ctx, 5*time.Second)
	p.SetLatency(0)
	sleep(ctx, 2*time.Second)
	stall, zone := s.tr.stall(at, time.Now())
	s.record(faultRecord{Fault: "latency 50ms", Target: "world-2->nats", At: at.Sub(s.start).Seconds(), RecoveredIn: stall,
		Measure: "longest zone stall", Detail: "5s of +50ms each way; slowest zone " + zone})

	// Connection resets: persist-2 -> pg0 and gateway-2 -> NATS.
	at = time.Now()
	for _, l := range [][2]string{{"persist-2", "pg0"}, {"gateway-2", "nats"}, {"world-1", "redis"}} {
		if px := s.st.Proxy(l[0], l[1]); px != nil {
			px.Reset()
		}
	}
	last, _ := lastEventSeq(ctx, s.st.JS())
	took, err := s.waitPersisted(ctx, last, 60*time.Second)
	if err != nil {
		s.t.Errorf("after resets: %v", err)
	}
	s.record(faultRecord{Fault: "TCP resets", Target: "persist-2->pg0, gateway-2->nats, world-1->redis", At: at.Sub(s.start).Seconds(),
		RecoveredIn: took, Measure: "persist caught up"})

	// Cut a world from Redis: its leases cannot be renewed; it must stop
	// before they expire and another instance takes its zones.
	at = time.Now()
	victim := s.busiestWorld("")
	zones := s.tr.zonesOf(victim, at)
	px := s.st.Proxy(victim, "redis")
	px.Cut()
	sleep(ctx, 8*time.Second)
	px.Restore()
	reclaimed, missing := s.tr.reclaimedIn(victim, at)
	sleep(ctx, 5*time.Second)
	stall, zone = s.tr.stallOf(zones, at, time.Now())
	detail := fmt.Sprintf("cut 8s; zones %v; slowest %s", zones, zone)
	if len(missing) > 0 {
		detail += fmt.Sprintf("; not taken over by another instance during the cut: %v", missing)
	} else {
		detail += fmt.Sprintf("; all taken over by other instances within %v", reclaimed.Round(time.Millisecond))
	}
	if stall > 45*time.Second {
		s.t.Errorf("cut %s->redis: zone %s appended nothing for %v", victim, zone, stall)
	}
	s.record(faultRecord{Fault: "cut world->redis", Target: victim + "->redis", At: at.Sub(s.start).Seconds(), RecoveredIn: stall,
		Measure: "longest stall of its zones (fault -> appends again)", Detail: detail})
}

// runOptions size a run.
type runOptions struct {
	Bots        int
	Duration    time.Duration // swarm run time
	Faults      bool
	ResumeEvery time.Duration
	LeaveEvery  time.Duration // mean interval between Leave and re-join per bot (0 = never)
	WSFraction  float64
	Progress    io.Writer
	Report      string // JSON report path ("" = none)
	// NoPersist runs without persist and Postgres (and skips their audit).
	NoPersist bool
	// ProcArgs adds flags to single processes (harness.StackConfig.ProcArgs).
	ProcArgs map[string][]string
}

// runStack starts the whole stack, plays opts.Duration with faults, then
// audits. It returns the result; the caller asserts.
func runStack(t testing.TB, opts runOptions) *runResult {
	logDir := os.Getenv("E2E_LOG_DIR")
	if logDir != "" {
		logDir = filepath.Join(logDir, t.Name())
		_ = os.RemoveAll(logDir)
	}
	t0 := time.Now()
	st := harness.StartStack(t, harness.StackConfig{Gateways: 2, Worlds: 3, Persists: 2, Shards: 2, Monitor: true, LogDir: logDir,
		NoPersist: opts.NoPersist, Args: extraArgs(opts.Faults), ProcArgs: opts.ProcArgs})
	t.Logf("stack up in %v; service logs in %s", time.Since(t0).Round(time.Millisecond), st.LogDir())
	// Wait until every zone is owned (the worlds claim at start) before the
	// bots come.
	if err := waitZonesOwned(st, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	tr, err := newTracker(tctx, st.NC(), st.JS())
	tcancel()
	if err != nil {
		t.Fatal(err)
	}
	defer tr.stop()
	swCfg := bots.Config{
		Gateways: gateways(st), Bots: opts.Bots, WSFraction: opts.WSFraction, ResumeEvery: opts.ResumeEvery,
		ResumeElsewhere: 0.5, LeaveEvery: opts.LeaveEvery, CrosserFraction: 0.2, TrustLastSeq: 0.3, RampUp: 5 * time.Second,
		ProgressEvery: 5 * time.Second, Seed: 7, KeepAcked: true, DrainTimeout: 10 * time.Second,
	}
	if opts.Progress != nil {
		swCfg.Progress = func(p bots.Progress) { fmt.Fprintln(opts.Progress, p) }
	}
	if path := os.Getenv("E2E_RECORD"); path != "" {
		// Every command sent and every answer, as JSON lines.
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		swCfg.Record = f
	}
	sw, err := bots.New(swCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The swarm plays for opts.Duration, or until the faults are over and it
	// has played 8s more in calm, whichever is later.
	swCtx, swCancel := context.WithCancel(ctx)
	defer swCancel()
	sc := &scenario{t: t, st: st, sw: sw, tr: tr, start: time.Now(), log: opts.Progress}
	if sc.log == nil {
		sc.log = io.Discard
	}
	done := make(chan *bots.Report, 1)
	go func() { done <- sw.Run(swCtx) }()
	firstSeq, _ := lastEventSeq(ctx, st.JS())

	if opts.Faults {
		step := func(at time.Duration) { sleep(ctx, time.Until(sc.start.Add(at))) }
		step(12 * time.Second)
		sc.worldCrash(ctx, sc.busiestWorld(""))
		step(24 * time.Second)
		sc.gatewayCrash(ctx, "gateway-1", opts.Bots)
		step(34 * time.Second)
		sc.persistCrash(ctx, "persist-1")
		step(42 * time.Second)
		sc.shardOutage(ctx, 1, 6*time.Second)
		sc.monitorCrash(ctx, "monitor-1")
		step(50 * time.Second)
		sc.ackStall(ctx, "gateway-2")
		step(62 * time.Second)
		sc.serverRestart(ctx, "redis", time.Second, st.Redis.Kill, st.Redis.Restart)
		step(74 * time.Second)
		sc.serverRestart(ctx, "nats", 2*time.Second, st.StopNATS, st.StartNATS)
		step(86 * time.Second)
		sc.linkFaults(ctx)
		sleep(ctx, 8*time.Second)
	}
	sleep(ctx, time.Until(sc.start.Add(opts.Duration)))
	swCancel()
	rep := <-done
	res := &runResult{Swarm: rep, Faults: sc.faults, Tracker: tr.summary()}
	if opts.Progress != nil {
		rep.Print(opts.Progress)
	}

	t.Logf("swarm done after %v", time.Since(t0).Round(time.Millisecond))
	// Audit: let the services finish what is in the streams.
	actx, acancel := context.WithTimeout(ctx, 4*time.Minute)
	defer acancel()
	busy, err := audit.WaitConsumersIdle(actx, st.JS(), wire.StreamCommands, func(n string) bool { return strings.HasPrefix(n, "world") }, 180*time.Second)
	if err != nil || len(busy) > 0 {
		t.Errorf("world consumers not idle after the run: %v %v", busy, err)
	}
	// The worlds still append system events for a while (respawns are due
	// 3s after a death): wait until the log is quiet so that the log read
	// below, Postgres and the read models all describe the same prefix.
	if err := waitQuiet(actx, st.JS(), 4*time.Second, 45*time.Second); err != nil {
		t.Errorf("event log never quiet after the run: %v", err)
	}
	if last, err := lastEventSeq(actx, st.JS()); err == nil {
		if !opts.NoPersist {
			if _, err := sc.waitPersisted(actx, last, 90*time.Second); err != nil {
				t.Errorf("after the run: %v", err)
			}
		}
		if last > firstSeq {
			res.EventsPerSec = float64(last-firstSeq) / rep.DurationSec
		}
	}
	cl, vs, err := audit.ReadCommands(actx, st.JS())
	if err != nil {
		t.Fatal(err)
	}
	res.Violations = append(res.Violations, vs...)
	var cvs []audit.Violation
	acked := sw.Acked()
	for _, p := range sc.probes {
		p.mu.Lock()
		acked = append(acked, p.acked...)
		p.mu.Unlock()
	}
	res.Commands, cvs = audit.CheckAcked(toAudit(acked), cl)
	res.Violations = append(res.Violations, cvs...)
	differs, cvs, err := checkAckedContent(actx, acked, sc)
	if err != nil {
		t.Errorf("content audit: %v", err)
	}
	res.AckedDiffers = differs
	res.Violations = append(res.Violations, cvs...)
	// Read the log; if it grew meanwhile (a late system event: an idle
	// removal, a respawn), wait for quiet and read again, so that the log,
	// Postgres and the read models all describe the same prefix. The check
	// is repeated after the read models were read too: a removal that lands
	// between the log read and the read-model read would otherwise make the
	// two disagree about a log neither is wrong about.
	for round := 0; ; round++ {
		var logs map[string]*audit.ZoneLog
		var rvs []audit.Violation
		for try := 0; ; try++ {
			var err error
			logs, _, vs, err = audit.ReadEvents(actx, st.JS())
			if err != nil {
				t.Fatal(err)
			}
			last, err := lastEventSeq(actx, st.JS())
			if err != nil || last <= audit.LastSeq(logs) || try == 3 {
				if err == nil && last > audit.LastSeq(logs) {
					t.Logf("audit: the log still grows (read up to %d, now %d); comparing the prefix", audit.LastSeq(logs), last)
				}
				break
			}
			t.Logf("audit: the log grew from %d to %d while reading; reading again", audit.LastSeq(logs), last)
			_ = waitQuiet(actx, st.JS(), 4*time.Second, 30*time.Second)
			if !opts.NoPersist {
				if last, err := lastEventSeq(actx, st.JS()); err == nil {
					_, _ = sc.waitPersisted(actx, last, 60*time.Second)
				}
			}
		}
		rvs = append(rvs, vs...)
		lf, applied, vs := audit.CheckLogs(logs)
		res.Logs = lf
		rvs = append(rvs, vs...)
		res.Unapplied, vs = audit.CheckApplied(cl, applied)
		rvs = append(rvs, vs...)
		for i, id := range audit.Unapplied(cl, applied) {
			if i == 5 {
				break
			}
			t.Logf("audit: not applied: %s", audit.Explain(cl, logs, id))
			for _, l := range worldLogLines(st.LogDir(), id) {
				t.Logf("audit:   %s", l)
			}
		}
		if !opts.NoPersist {
			pf, vs, err := audit.CheckPostgres(actx, st.PGURLs, logs, 60*time.Second)
			if err != nil {
				t.Errorf("postgres audit: %v", err)
			}
			res.PG = pf
			rvs = append(rvs, vs...)
			mf, vs, err := audit.CheckReadModels(actx, st.PGURLs, logs)
			if err != nil {
				t.Errorf("read model audit: %v", err)
			}
			res.Models = mf
			rvs = append(rvs, vs...)
		}
		last, err := lastEventSeq(actx, st.JS())
		if len(rvs) == 0 || err != nil || last <= audit.LastSeq(logs) || round == 2 {
			res.Violations = append(res.Violations, rvs...)
			break
		}
		t.Logf("audit: the log grew from %d to %d during the checks (%d findings on the old prefix); checking again", audit.LastSeq(logs), last, len(rvs))
		_ = waitQuiet(actx, st.JS(), 4*time.Second, 30*time.Second)
		if !opts.NoPersist {
			_, _ = sc.waitPersisted(actx, last, 60*time.Second)
		}
	}
	st.CheckNoCrashes(t)
	t.Logf("audit done after %v", time.Since(t0).Round(time.Millisecond))

	if opts.Report != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(opts.Report, append(b, '\n'), 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Logf("audit: commands %+v", res.Commands)
	t.Logf("audit: logs %d zones, %d events, %d claims, %d commands applied; by type %v", res.Logs.Zones, res.Logs.Events, res.Logs.Claims, res.Logs.Applied, res.Logs.ByType)
	t.Logf("audit: postgres %+v; read models %+v", res.PG, res.Models)
	t.Logf("events/s end to end: %.0f; %s", res.EventsPerSec, res.Tracker)
	return res
}

// waitZonesOwned waits until every zone of the default map has an ownership
// claim in its log.
func waitZonesOwned(st *harness.Stack, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		owned := map[string]bool{}
		_, err := audit.ReadStream(ctx, st.JS(), wire.StreamEvents, func(m audit.StreamMsg) error {
			owned[strings.TrimPrefix(m.Subject, wire.EventPrefix)] = true
			return nil
		})
		cancel()
		if err == nil && len(owned) >= len(worldmap.Default().Zones()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d zones have an event log after %v (err %v)", len(owned), limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// extraArgs reads E2E_<SERVICE>_ARGS (space-separated flags added to every
// process of that service), e.g. E2E_WORLD_ARGS="--tick 20ms". In a run with
// faults the worlds log at debug level unless told otherwise (a later
// --log-level wins): each committed tick and each command acked as a
// duplicate, what it takes to trace a command-not-applied of one CI run to
// the owner that acked it (about 1.5 MB of log per world per run).
func extraArgs(faults bool) map[string][]string {
	out := map[string][]string{}
	if faults {
		out["world"] = []string{"--log-level", "debug"}
	}
	for _, svc := range []string{"gateway", "world", "persist", "monitor"} {
		if v := os.Getenv("E2E_" + strings.ToUpper(svc) + "_ARGS"); v != "" {
			out[svc] = append(out[svc], strings.Fields(v)...)
		}
	}
	return out
}

// worldLogLines returns the lines of the world logs in dir that name the
// command id (cmd=<id>), each prefixed with its file.
func worldLogLines(dir, id string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "world-*.log"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "cmd="+id+" ") {
				out = append(out, filepath.Base(f)+": "+l)
			}
		}
	}
	return out
}

// waitQuiet waits until the EVT stream's last sequence has not moved for quiet.
func waitQuiet(ctx context.Context, js jetstream.JetStream, quiet, limit time.Duration) error {
	start := time.Now()
	last, err := lastEventSeq(ctx, js)
	if err != nil {
		return err
	}
	since := time.Now()
	for time.Since(start) < limit {
		sleep(ctx, 250*time.Millisecond)
		cur, err := lastEventSeq(ctx, js)
		if err != nil {
			return err
		}
		if cur != last {
			last, since = cur, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return nil
		}
	}
	return fmt.Errorf("EVT still growing after %v (last seq %d)", limit, last)
}
