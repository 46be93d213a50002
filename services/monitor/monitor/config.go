// Package monitor is the Realmstream monitor service: it consumes the DB
// stats events persist publishes on stats.db.<shard> (stream STATS) and the
// services' heartbeats (svc.hb.>), keeps a window of recent samples per
// shard, evaluates alert rules, publishes firing and resolved alerts on
// alerts.<severity> (and to a webhook), exports Prometheus metrics and serves
// a live dashboard.
package monitor

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// Config is the monitor's configuration. DefaultConfig documents every default.
type Config struct {
	// Common is the block every service has (svcmain.Common): --nats-url,
	// NATS credentials, --http-addr (ops server, /metrics and the dashboard
	// at /; default 127.0.0.1:8083), --instance-id, logs, --shutdown-timeout
	// (drain of the webhook queue and NATS), --heartbeat, --stream-replicas,
	// --create-streams. --otlp-endpoint is accepted for uniformity: the
	// monitor creates no spans of its own.
	svcmain.Common

	// RulesPath is the YAML rules file; "" uses the embedded defaults.
	RulesPath string
	// WebhookURL receives every firing/resolved alert as a JSON POST; "" = none.
	WebhookURL string
	// WebhookAttempts is the number of tries per notification. Default 5.
	WebhookAttempts int
	// WebhookTimeout bounds one POST. Default 5s.
	WebhookTimeout time.Duration
	// PlayURL is the browser demo's URL, linked from the dashboard's header
	// when set (realmstream run sets it to its /play/ page). Default "".
	PlayURL string
	// WebhookBackoff is the first retry delay, doubled each retry (max 30s). Default 500ms.
	WebhookBackoff time.Duration
	// WebhookQueue bounds notifications waiting for delivery. Default 256.
	WebhookQueue int

	// Window is how much history per shard is kept in memory (and reloaded from
	// the stream at start). Default 15m.
	Window time.Duration
	// WindowMaxSamples bounds the samples kept per shard. Default 1000.
	WindowMaxSamples int
	// EvalInterval is how often the rules are evaluated (and the dashboard updated). Default 5s.
	EvalInterval time.Duration
	// AlertRepeat: every firing alert is published again on alerts.<severity>
	// this often, marked repeat (the webhook is not called again). Alerts are
	// core NATS messages: a subscriber that was reconnecting or started late
	// when an alert fired learns of it within AlertRepeat. 0 = never. Default 1m.
	AlertRepeat time.Duration
	// AbsenceAfter: a shard with no DB stats event for this long is "not reporting".
	// Default 45s (three samples at persist's default 15s interval).
	AbsenceAfter time.Duration
	// HeartbeatTimeout: an instance with no heartbeat for this long is not alive. Default 10s.
	HeartbeatTimeout time.Duration
	// ForgetAfter drops shards and instances silent this long (their alerts resolve). Default 1h.
	ForgetAfter time.Duration
	// Zones are the zones that must have an owner: "" = every zone of the
	// default world grid (worldmap.Default), "none" = only zones seen in heartbeats,
	// or a comma-separated list.
	Zones string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Common:           svcmain.DefaultCommon(ServiceName, 8083),
		WebhookAttempts:  5,
		WebhookTimeout:   5 * time.Second,
		WebhookBackoff:   500 * time.Millisecond,
		WebhookQueue:     256,
		Window:           15 * time.Minute,
		WindowMaxSamples: 1000,
		EvalInterval:     5 * time.Second,
		AlertRepeat:      time.Minute,
		AbsenceAfter:     45 * time.Second,
		HeartbeatTimeout: 10 * time.Second,
		ForgetAfter:      time.Hour,
	}
}

// RegisterFlags binds every field to a flag (and its REALM_* variable), with
// the current values as defaults.
func (c *Config) RegisterFlags(s *envflag.Set) {
	c.Common.RegisterFlags(s)
	s.String(&c.RulesPath, "rules", c.RulesPath, "alert rules YAML file; empty = the embedded defaults")
	s.String(&c.WebhookURL, "webhook-url", c.WebhookURL, "POST every firing/resolved alert as JSON to this URL; empty = no webhook")
	s.Int(&c.WebhookAttempts, "webhook-attempts", c.WebhookAttempts, "attempts per webhook notification")
	s.Duration(&c.WebhookTimeout, "webhook-timeout", c.WebhookTimeout, "timeout of one webhook POST")
	s.String(&c.PlayURL, "play-url", c.PlayURL, "URL of a browser game client to link from the dashboard (empty = no link)")
	s.Duration(&c.WebhookBackoff, "webhook-backoff", c.WebhookBackoff, "first webhook retry delay (doubles, max 30s)")
	s.Int(&c.WebhookQueue, "webhook-queue", c.WebhookQueue, "webhook notifications queued before new ones are dropped")
	s.Duration(&c.Window, "window", c.Window, "history of DB stats kept per shard (and reloaded from the stream at start)")
	s.Int(&c.WindowMaxSamples, "window-max-samples", c.WindowMaxSamples, "samples kept per shard at most")
	s.Duration(&c.EvalInterval, "eval-interval", c.EvalInterval, "how often alert rules are evaluated and the dashboard refreshed")
	s.Duration(&c.AlertRepeat, "alert-repeat", c.AlertRepeat, "publish every firing alert again this often, marked repeat, for subscribers that missed it (0 = never; the webhook is not called again)")
	s.Duration(&c.AbsenceAfter, "absence-after", c.AbsenceAfter, "a shard silent this long is not reporting (absence alert)")
	s.Duration(&c.HeartbeatTimeout, "heartbeat-timeout", c.HeartbeatTimeout, "an instance without heartbeat this long is not alive")
	s.Duration(&c.Heartbeat, "heartbeat-interval", c.Heartbeat, "old name of --heartbeat")
	s.Duration(&c.ForgetAfter, "forget-after", c.ForgetAfter, "forget shards and instances silent this long")
	s.String(&c.Zones, "zones", c.Zones, `zones that must have an owner: empty = the default world grid, "none" = only zones seen in heartbeats, or a comma-separated list`)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("monitor: "+format, a...)) }
	if err := c.Common.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("monitor: %w", err))
	}
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("--webhook-url %q: want an http:// or https:// URL", c.WebhookURL)
		}
	}
	if c.PlayURL != "" {
		u, err := url.Parse(c.PlayURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("--play-url %q: want an http:// or https:// URL", c.PlayURL)
		}
	}
	if c.WebhookAttempts < 1 || c.WebhookAttempts > 100 {
		bad("--webhook-attempts %d: want 1..100", c.WebhookAttempts)
	}
	if c.WebhookTimeout <= 0 || c.WebhookBackoff <= 0 {
		bad("--webhook-timeout and --webhook-backoff must be positive")
	}
	if c.WebhookQueue < 1 {
		bad("--webhook-queue %d: want >= 1", c.WebhookQueue)
	}
	if c.Window <= 0 || c.WindowMaxSamples < 2 {
		bad("--window must be positive and --window-max-samples >= 2")
	}
	if c.EvalInterval < 10*time.Millisecond {
		bad("--eval-interval %v: want >= 10ms", c.EvalInterval)
	}
	if c.AlertRepeat != 0 && c.AlertRepeat < c.EvalInterval {
		bad("--alert-repeat %v: want 0 (never) or at least --eval-interval %v", c.AlertRepeat, c.EvalInterval)
	}
	if c.AbsenceAfter <= 0 || c.HeartbeatTimeout <= 0 {
		bad("--absence-after and --heartbeat-timeout must be positive")
	}
	if c.ForgetAfter < c.AbsenceAfter {
		bad("--forget-after %v must be at least --absence-after %v", c.ForgetAfter, c.AbsenceAfter)
	}
	if _, err := c.expectedZones(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) expectedZones() ([]string, error) {
	switch strings.TrimSpace(c.Zones) {
	case "":
		return worldmap.Default().Zones(), nil
	case "none":
		return nil, nil
	}
	var out []string
	for _, z := range strings.Split(c.Zones, ",") {
		z = strings.TrimSpace(z)
		if !wire.ValidToken(z) {
			return nil, fmt.Errorf("monitor: --zones: %q is not a valid zone name", z)
		}
		out = append(out, z)
	}
	return out, nil
}
