package bots

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// counters are one bot's figures, guarded by the bot's mutex (no shared
// cache line between bots); the swarm adds them up when asked.
type counters struct {
	sent, acked, dups, busy, rejected, tooFast, errors, unanswered int64
	updates, cells, moves, chats, attacks, joins, leaves, rejoins  int64
	connects, connectFail, disconnects, resumes, resumesElsewhere  int64
	crossings, outcomeUnknown, resent, seqRewinds                  int64
}

func (c *counters) add(o *counters) {
	c.sent += o.sent
	c.acked += o.acked
	c.dups += o.dups
	c.busy += o.busy
	c.rejected += o.rejected
	c.tooFast += o.tooFast
	c.errors += o.errors
	c.unanswered += o.unanswered
	c.updates += o.updates
	c.cells += o.cells
	c.moves += o.moves
	c.chats += o.chats
	c.attacks += o.attacks
	c.joins += o.joins
	c.leaves += o.leaves
	c.rejoins += o.rejoins
	c.connects += o.connects
	c.connectFail += o.connectFail
	c.disconnects += o.disconnects
	c.resumes += o.resumes
	c.resumesElsewhere += o.resumesElsewhere
	c.crossings += o.crossings
	c.outcomeUnknown += o.outcomeUnknown
	c.resent += o.resent
	c.seqRewinds += o.seqRewinds
}

// Progress is a snapshot while the swarm runs; rates and percentiles are
// over the last interval.
type Progress struct {
	Elapsed                                time.Duration
	Connected, Bots                        int
	Sent, Acked, Busy, Rejected, Errors    int64
	Updates, Resumes, Crossings, Leaves    int64
	SentPerSec, AckedPerSec, UpdatesPerSec float64
	AckP50, AckP99                         time.Duration
	UpdateP50, UpdateP99                   time.Duration
}

// String is the progress line.
func (p Progress) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("t=%-5s bots %d/%d  sent %.0f/s  acked %.0f/s  upd %.0f/s  busy %d rej %d err %d  resumes %d cross %d leaves %d  ack p50 %v p99 %v  input->update p50 %v p99 %v",
		p.Elapsed.Round(time.Second), p.Connected, p.Bots, p.SentPerSec, p.AckedPerSec, p.UpdatesPerSec,
		p.Busy, p.Rejected, p.Errors, p.Resumes, p.Crossings, p.Leaves, r(p.AckP50), r(p.AckP99), r(p.UpdateP50), r(p.UpdateP99))
}

// Report is the machine-readable result of a run.
type Report struct {
	Bots        int     `json:"bots"`
	WSBots      int     `json:"ws_bots"`
	Crossers    int     `json:"crossers"`
	Gateways    int     `json:"gateways"`
	MoveRate    float64 `json:"move_rate"`
	DurationSec float64 `json:"duration_s"`
	Connected   int     `json:"connected"` // bots that had a session at least once

	Sent       int64 `json:"sent"`
	Acked      int64 `json:"acked"`
	Duplicates int64 `json:"acked_duplicate"`
	Busy       int64 `json:"busy"`
	Rejected   int64 `json:"rejected_by_world"`
	TooFast    int64 `json:"rejected_too_fast"`
	Errors     int64 `json:"errors"`
	// Unanswered commands were sent but their outcome never reached the
	// bot: the connection dropped after the gateway took them, no answer
	// within 30 s, or still unanswered when the drain ended.
	Unanswered     int64 `json:"unanswered"`
	OutcomeUnknown int64 `json:"outcome_unknown"` // OUTCOME_UNKNOWN answers (resent with the same seq)
	Resent         int64 `json:"resent"`
	// Updates are update frames received; UpdateCells the cell views in
	// them (protocol 3 merges a zone tick's cells into one frame).
	Updates     int64 `json:"updates"`
	UpdateCells int64 `json:"update_cells"`
	Moves       int64 `json:"moves"`
	Chats       int64 `json:"chats"`
	Attacks     int64 `json:"attacks"`
	Joins       int64 `json:"joins"`
	Leaves      int64 `json:"leaves"`
	Rejoins     int64 `json:"rejoins"`
	Connects    int64 `json:"connects"`
	ConnFail    int64 `json:"connect_failures"`
	Disconnects int64 `json:"disconnects"`
	Resumes     int64 `json:"resumes"`
	// ResumesElsewhere are resumes (deliberate or after a lost connection)
	// served by another gateway than the session's previous one.
	ResumesElsewhere int64 `json:"resumes_elsewhere"`
	Crossings        int64 `json:"crossings"`
	// SeqRewinds are resumes whose Welcome.last_seq was below a seq the
	// gateways had already acknowledged in that session (a wrong last_seq;
	// TrustLastSeq bots then use those seqs again).
	SeqRewinds int64 `json:"seq_rewinds"`

	SentPerSec    float64 `json:"sent_per_s"`
	AckedPerSec   float64 `json:"acked_per_s"`
	UpdatesPerSec float64 `json:"updates_per_s"`
	CellsPerSec   float64 `json:"update_cells_per_s"`

	InputToUpdate Latency           `json:"input_to_update"`
	SendToAck     Latency           `json:"send_to_ack"`
	Reconnect     Latency           `json:"reconnect"`
	PingRTT       Latency           `json:"ping_rtt"`
	ErrorCodes    map[string]int64  `json:"error_codes"`
	ErrorExamples map[string]string `json:"error_examples,omitempty"`
	RejectReasons map[string]int64  `json:"reject_reasons"`
}

// Report summarises the run so far (final after Run returns).
func (s *Swarm) Report() *Report {
	end := s.stopped
	if end.IsZero() {
		end = time.Now()
	}
	dur := end.Sub(s.started).Seconds()
	if s.started.IsZero() || dur <= 0 {
		dur = 1e-9
	}
	c := s.sum()
	r := &Report{
		Bots: len(s.bots), Gateways: len(s.cfg.Gateways), MoveRate: s.cfg.MoveRate, DurationSec: dur,
		Connected: int(s.everOnline.Load()),
		Sent:      c.sent, Acked: c.acked, Duplicates: c.dups, Busy: c.busy, Rejected: c.rejected, TooFast: c.tooFast,
		Errors: c.errors, Unanswered: c.unanswered, OutcomeUnknown: c.outcomeUnknown, Resent: c.resent, Updates: c.updates, UpdateCells: c.cells,
		Moves: c.moves, Chats: c.chats, Attacks: c.attacks, Joins: c.joins, Leaves: c.leaves, Rejoins: c.rejoins,
		Connects: c.connects, ConnFail: c.connectFail + s.connectFail.Load(), Disconnects: c.disconnects,
		Resumes: c.resumes, ResumesElsewhere: c.resumesElsewhere, Crossings: c.crossings, SeqRewinds: c.seqRewinds,
		InputToUpdate: s.Lat.Summary(), SendToAck: s.Ack.Summary(), Reconnect: s.Reconnect.Summary(), PingRTT: s.Ping.Summary(),
		ErrorCodes: mapOf(&s.codes), RejectReasons: mapOf(&s.reasons),
	}
	for _, b := range s.bots {
		if b.ws {
			r.WSBots++
		}
		if b.crosser {
			r.Crossers++
		}
	}
	r.SentPerSec = float64(r.Sent) / dur
	r.AckedPerSec = float64(r.Acked) / dur
	r.UpdatesPerSec = float64(r.Updates) / dur
	r.CellsPerSec = float64(r.UpdateCells) / dur
	s.exMu.Lock()
	if len(s.example) > 0 {
		r.ErrorExamples = make(map[string]string, len(s.example))
		for k, v := range s.example {
			r.ErrorExamples[k] = v
		}
	}
	s.exMu.Unlock()
	return r
}

func mapOf(m *sync.Map) map[string]int64 {
	out := map[string]int64{}
	m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// Print writes a human summary.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "bots %d (%d connected, %d WebSocket, %d crossers) on %d gateways at %.0f moves/s for %.1fs\n",
		r.Bots, r.Connected, r.WSBots, r.Crossers, r.Gateways, r.MoveRate, r.DurationSec)
	fmt.Fprintf(w, "commands: sent %d (%.0f/s), acked %d (%.0f/s, %d duplicate), busy %d, errors %d, rejected by world %d (too fast %d), unanswered %d, outcome unknown %d\n",
		r.Sent, r.SentPerSec, r.Acked, r.AckedPerSec, r.Duplicates, r.Busy, r.Errors, r.Rejected, r.TooFast, r.Unanswered, r.OutcomeUnknown)
	fmt.Fprintf(w, "  moves %d, chats %d, attacks %d, joins %d, leaves %d, re-joins %d; update frames %d (%.0f/s) carrying %d cell views (%.0f/s)\n",
		r.Moves, r.Chats, r.Attacks, r.Joins, r.Leaves, r.Rejoins, r.Updates, r.UpdatesPerSec, r.UpdateCells, r.CellsPerSec)
	fmt.Fprintf(w, "sessions: connects %d, connect failures %d, lost connections %d, deliberate resumes %d, resumes on another gateway %d, zone crossings %d\n",
		r.Connects, r.ConnFail, r.Disconnects, r.Resumes, r.ResumesElsewhere, r.Crossings)
	pl := func(name string, l Latency) {
		fmt.Fprintf(w, "%-14s n=%-8d p50 %8.2fms  p99 %8.2fms  p999 %8.2fms  max %8.2fms\n", name, l.Samples, l.P50, l.P99, l.P999, l.Max)
	}
	pl("input->update", r.InputToUpdate)
	pl("send->ack", r.SendToAck)
	pl("ping rtt", r.PingRTT)
	pl("reconnect", r.Reconnect)
	printMap(w, "rejected by the world:", r.RejectReasons)
	printMap(w, "errors by code:", r.ErrorCodes)
	if len(r.ErrorExamples) > 0 {
		keys := make([]string, 0, len(r.ErrorExamples))
		for k := range r.ErrorExamples {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  e.g. %s: %s\n", k, r.ErrorExamples[k])
		}
	}
}

func printMap(w io.Writer, title string, m map[string]int64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprint(w, title)
	for _, k := range keys {
		fmt.Fprintf(w, " [%s]=%d", k, m[k])
	}
	fmt.Fprintln(w)
}
