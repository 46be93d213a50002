package swarm

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"time"
)

// Latency is a distribution summary in milliseconds.
type Latency struct {
	Samples int64   `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p999_ms"`
	Mean    float64 `json:"mean_ms"`
	Max     float64 `json:"max_ms"`
}

func summarize(h *Histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Latency{Samples: h.Count(), P50: ms(h.Quantile(0.5)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Mean: ms(h.Mean()), Max: ms(h.Max())}
}

// Report is the machine-readable result of a run.
type Report struct {
	Bots        int     `json:"bots"`
	WSBots      int     `json:"ws_bots"`
	Crossers    int     `json:"crossers"`
	Gateways    int     `json:"gateways"`
	DurationSec float64 `json:"duration_s"`

	Sent        int64 `json:"sent"`
	Acked       int64 `json:"acked"`
	Duplicates  int64 `json:"acked_duplicate"`
	Busy        int64 `json:"busy"`
	Rejected    int64 `json:"rejected_by_world"`
	Errors      int64 `json:"errors"`
	Unanswered  int64 `json:"unanswered"`
	Updates     int64 `json:"updates"`
	Moves       int64 `json:"moves"`
	Chats       int64 `json:"chats"`
	Attacks     int64 `json:"attacks"`
	Joins       int64 `json:"joins"`
	Connects    int64 `json:"connects"`
	ConnFail    int64 `json:"connect_failures"`
	Disconnects int64 `json:"disconnects"`
	Resumes     int64 `json:"resumes"`
	Crossings   int64 `json:"crossings"`

	SentPerSec    float64 `json:"sent_per_s"`
	AckedPerSec   float64 `json:"acked_per_s"`
	UpdatesPerSec float64 `json:"updates_per_s"`

	InputToUpdate Latency          `json:"input_to_update"`
	SendToAck     Latency          `json:"send_to_ack"`
	Reconnect     Latency          `json:"reconnect"`
	ErrorCodes    map[string]int64 `json:"error_codes"`
	RejectReasons map[string]int64 `json:"reject_reasons"`
}

// Report summarises the run so far (final after Run returns).
func (s *Swarm) Report() *Report {
	end := s.stopped
	if end.IsZero() {
		end = time.Now()
	}
	dur := end.Sub(s.started).Seconds()
	if dur <= 0 {
		dur = 1e-9
	}
	r := &Report{
		Bots: len(s.bots), Gateways: len(s.cfg.Gateways), DurationSec: dur,
		Sent: s.C.Sent.Load(), Acked: s.C.Acked.Load(), Duplicates: s.C.Duplicates.Load(),
		Busy: s.C.Busy.Load(), Rejected: s.C.Rejected.Load(), Errors: s.C.Errors.Load(),
		Unanswered: s.C.Unanswered.Load(), Updates: s.C.Updates.Load(),
		Moves: s.C.Moves.Load(), Chats: s.C.Chats.Load(), Attacks: s.C.Attacks.Load(), Joins: s.C.Joins.Load(),
		Connects: s.C.Connects.Load(), ConnFail: s.C.ConnectFailures.Load(), Disconnects: s.C.Disconnects.Load(),
		Resumes: s.C.Resumes.Load(), Crossings: s.C.Crossings.Load(),
		InputToUpdate: summarize(&s.Lat), SendToAck: summarize(&s.Ack), Reconnect: summarize(&s.Reconnect),
		ErrorCodes: map[string]int64{}, RejectReasons: map[string]int64{},
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
	s.C.ErrorCodes.Range(func(k, v any) bool {
		r.ErrorCodes[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	s.C.RejectReasons.Range(func(k, v any) bool {
		r.RejectReasons[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return r
}

// Print writes a human summary.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "bots %d (%d WebSocket, %d crossers) on %d gateways for %.1fs\n", r.Bots, r.WSBots, r.Crossers, r.Gateways, r.DurationSec)
	fmt.Fprintf(w, "commands: sent %d (%.0f/s), acked %d (%.0f/s, %d duplicate), busy %d, errors %d, rejected by world %d, unanswered %d\n",
		r.Sent, r.SentPerSec, r.Acked, r.AckedPerSec, r.Duplicates, r.Busy, r.Errors, r.Rejected, r.Unanswered)
	fmt.Fprintf(w, "  moves %d, chats %d, attacks %d, joins %d; updates %d (%.0f/s)\n", r.Moves, r.Chats, r.Attacks, r.Joins, r.Updates, r.UpdatesPerSec)
	fmt.Fprintf(w, "sessions: connects %d, connect failures %d, lost connections %d, deliberate resumes %d, zone crossings %d\n",
		r.Connects, r.ConnFail, r.Disconnects, r.Resumes, r.Crossings)
	pl := func(name string, l Latency) {
		fmt.Fprintf(w, "%-16s n=%-8d p50 %7.2fms  p99 %7.2fms  p999 %7.2fms  max %7.2fms\n", name, l.Samples, l.P50, l.P99, l.P999, l.Max)
	}
	pl("input->update", r.InputToUpdate)
	pl("send->ack", r.SendToAck)
	pl("reconnect", r.Reconnect)
	printMap(w, "rejected by the world:", r.RejectReasons)
	printMap(w, "errors by code:", r.ErrorCodes)
}

func printMap(w io.Writer, title string, m map[string]int64) {
	if len(m) > 0 {
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
}
