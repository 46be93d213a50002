// Package notify delivers alert transitions to a webhook: one JSON POST per
// transition, retried with exponential backoff a bounded number of times,
// from a bounded queue (a slow or dead endpoint never blocks evaluation; when
// the queue is full the newest notification is dropped and counted).
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Payload is the JSON body POSTed to the webhook.
type Payload struct {
	Rule     string            `json:"rule"`
	Severity string            `json:"severity"` // info, warning, critical
	State    string            `json:"state"`    // firing or resolved
	Target   string            `json:"target"`   // shard=pg0, zone=z1_1, instance=world/w1, global
	Message  string            `json:"message"`
	Labels   map[string]string `json:"labels"`
	Value    float64           `json:"value"`
	Since    time.Time         `json:"since"`  // when the condition started to hold
	At       time.Time         `json:"at"`     // when it fired or resolved
	Source   string            `json:"source"` // monitor instance id
	Expr     string            `json:"expr"`
}

// WebhookOptions configure delivery.
type WebhookOptions struct {
	URL      string
	Attempts int           // total attempts per notification (>= 1)
	Backoff  time.Duration // first retry delay; doubles up to 30s
	Timeout  time.Duration // per attempt
	Queue    int           // queued notifications
}

// Result counts delivery outcomes; the service exports them as metrics.
type Result func(outcome string) // "delivered", "retried", "failed", "dropped"

// Webhook posts payloads from a queue in one goroutine, in order.
type Webhook struct {
	opt    WebhookOptions
	client *http.Client
	log    *slog.Logger
	q      chan Payload
	count  Result
	done   chan struct{}
}

// NewWebhook returns a webhook sender; call Run to start delivering.
func NewWebhook(opt WebhookOptions, log *slog.Logger, count Result) *Webhook {
	if opt.Attempts < 1 {
		opt.Attempts = 1
	}
	if opt.Queue < 1 {
		opt.Queue = 256
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 500 * time.Millisecond
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if count == nil {
		count = func(string) {}
	}
	return &Webhook{opt: opt, client: &http.Client{}, log: log, q: make(chan Payload, opt.Queue), count: count, done: make(chan struct{})}
}

// Enqueue queues p without blocking; it reports false (and counts a drop)
// when the queue is full.
func (w *Webhook) Enqueue(p Payload) bool {
	select {
	case w.q <- p:
		return true
	default:
		w.count("dropped")
		w.log.Warn("webhook queue full, alert notification dropped", "rule", p.Rule, "target", p.Target, "state", p.State)
		return false
	}
}

// Run delivers until ctx is cancelled, then tries what is still queued until
// drainCtx ends (the service gives it its shutdown deadline).
func (w *Webhook) Run(ctx, drainCtx context.Context) {
	defer close(w.done)
	for {
		select {
		case p := <-w.q:
			w.deliver(ctx, p)
		case <-ctx.Done():
			for {
				select {
				case p := <-w.q:
					if drainCtx.Err() != nil {
						w.count("dropped")
						continue
					}
					w.deliver(drainCtx, p)
				default:
					return
				}
			}
		}
	}
}

// Done is closed when Run has returned.
func (w *Webhook) Done() <-chan struct{} { return w.done }

func (w *Webhook) deliver(ctx context.Context, p Payload) {
	body, err := json.Marshal(p)
	if err != nil {
		w.count("failed")
		return
	}
	backoff := w.opt.Backoff
	for attempt := 1; ; attempt++ {
		err := w.post(ctx, body)
		if err == nil {
			w.count("delivered")
			return
		}
		if attempt >= w.opt.Attempts || ctx.Err() != nil {
			w.count("failed")
			w.log.Error("webhook delivery failed", "rule", p.Rule, "target", p.Target, "state", p.State,
				"attempts", attempt, "err", err)
			return
		}
		w.count("retried")
		w.log.Warn("webhook delivery failed, retrying", "rule", p.Rule, "attempt", attempt, "in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.opt.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "realmstream-monitor")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
