package svcmain

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/natsconn"
	"github.com/realmstream/realmstream/libs/wire"
)

// DefaultNATSURL is the NATS server a service connects to when no --nats-url
// (REALM_NATS_URL) is given. A binary started that way creates no streams
// (see Common.CreateStreams and Run).
const DefaultNATSURL = "nats://127.0.0.1:4222"

// Common is the configuration block every service embeds: where NATS and the
// ops server are, who this instance is, logging, tracing, the heartbeat and
// the streams. One declaration, one set of flags and one Validate, so the
// four services cannot drift apart (compose, Kubernetes and --help name the
// same REALM_* variables everywhere).
type Common struct {
	// NATSURL (--nats-url) is the NATS server. Default DefaultNATSURL.
	NATSURL string
	// NATS are the credentials and TLS of the connection (--nats-creds,
	// --nats-user/--nats-password, --nats-tls*: libs/natsconn).
	NATS natsconn.Options
	// HTTPAddr (--http-addr) serves /healthz, /readyz, /metrics and pprof.
	// Default 127.0.0.1:<the service's port>: the ops port is for operators
	// and binds loopback unless told otherwise (deploy sets ":<port>").
	HTTPAddr string
	// InstanceID (--instance-id) names the instance in heartbeats, leases,
	// logs and stats. Default <hostname>-<pid>.
	InstanceID string
	// LogLevel (--log-level: debug|info|warn|error, default info) and
	// LogFormat (--log-format: json|text, default json) build the logger.
	LogLevel, LogFormat string
	// ShutdownTimeout (--shutdown-timeout) bounds the graceful drain. Default 10s.
	ShutdownTimeout time.Duration
	// OTLPEndpoint (--otlp-endpoint) is the OTLP/HTTP trace endpoint URL;
	// "" turns tracing off. Sampling is decided per command at the gateway
	// (--trace-sample-ratio); the other services follow it.
	OTLPEndpoint string
	// Heartbeat (--heartbeat) is the period of svc.hb.<service>.<instance>. Default 2s.
	Heartbeat time.Duration
	// CreateStreams (--create-streams) lets the service create or update the
	// contract's streams at start; without it the service only checks that
	// they exist and refuses to start otherwise. Default true, but a binary
	// started without --nats-url does not create streams unless
	// --create-streams is given explicitly (Run): it must not silently set up
	// streams on whatever listens on the default port.
	CreateStreams bool
	// Streams are the settings passed to wire.EnsureStreams; Replicas is
	// --stream-replicas (default 1; every service must use the same value).
	Streams wire.StreamOptions
}

// DefaultCommon returns the documented defaults of service, whose ops server
// listens on port by default.
func DefaultCommon(service string, port int) Common {
	host, _ := os.Hostname()
	if host == "" || !wire.ValidToken(host+"-"+strconv.Itoa(os.Getpid())) {
		host = service
	}
	return Common{
		NATSURL:         DefaultNATSURL,
		HTTPAddr:        "127.0.0.1:" + strconv.Itoa(port),
		InstanceID:      host + "-" + strconv.Itoa(os.Getpid()),
		LogLevel:        "info",
		LogFormat:       "json",
		ShutdownTimeout: 10 * time.Second,
		Heartbeat:       2 * time.Second,
		CreateStreams:   true,
		Streams:         wire.StreamOptions{Replicas: 1},
	}
}

// RegisterFlags binds the common flags to c; the current values of c are the
// defaults.
func (c *Common) RegisterFlags(s *envflag.Set) {
	s.String(&c.NATSURL, "nats-url", c.NATSURL, "NATS server URL (without it a binary creates no streams; see --create-streams)")
	c.NATS.Register(s)
	s.String(&c.HTTPAddr, "http-addr", c.HTTPAddr, "ops HTTP address (/healthz, /readyz, /metrics, /debug/pprof); loopback unless told, e.g. :8080 for every interface")
	s.String(&c.InstanceID, "instance-id", c.InstanceID, "instance id (heartbeat subject, leases, logs, stats)")
	s.String(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	s.String(&c.LogFormat, "log-format", c.LogFormat, "log format: json or text")
	s.Duration(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bound on the graceful drain at stop")
	s.String(&c.OTLPEndpoint, "otlp-endpoint", c.OTLPEndpoint, "OTLP/HTTP trace endpoint URL (e.g. http://otel:4318); empty = tracing off. Sampling is parent-based: a command is traced when the gateway sampled it (its --trace-sample-ratio); refusals and write errors are always traced")
	s.Duration(&c.Heartbeat, "heartbeat", c.Heartbeat, "heartbeat interval on svc.hb.<service>.<instance>")
	s.Bool(&c.CreateStreams, "create-streams", c.CreateStreams, "create or update the JetStream streams at start (false: only check they exist); a binary without --nats-url creates none unless this is given")
	if c.Streams.Replicas == 0 {
		c.Streams.Replicas = 1
	}
	s.Int(&c.Streams.Replicas, "stream-replicas", c.Streams.Replicas, "replicas of the JetStream streams this service ensures at start (1 on one machine, 3 in a cluster); every service must use the same value")
}

// Validate checks the common block and says what is wrong.
func (c *Common) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.NATSURL == "" {
		add("--nats-url is required")
	}
	if err := c.NATS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.HTTPAddr == "" {
		add("--http-addr is required")
	}
	if !wire.ValidToken(c.InstanceID) {
		add("--instance-id %q: want 1..64 characters of [A-Za-z0-9_-]", c.InstanceID)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		add("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		add("--log-format %q: want json or text", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		add("--shutdown-timeout must be > 0")
	}
	if c.Heartbeat <= 0 {
		add("--heartbeat must be > 0")
	}
	if c.Streams.Replicas < 1 || c.Streams.Replicas > 5 {
		add("--stream-replicas %d: want 1..5", c.Streams.Replicas)
	}
	if err := c.Streams.Validate(); err != nil {
		add("streams: %v", err)
	}
	return errors.Join(errs...)
}

// Logging returns the logging settings of c (for Spec.Logging).
func (c *Common) Logging() Logging {
	return Logging{Level: c.LogLevel, Format: c.LogFormat, OTLPEndpoint: c.OTLPEndpoint}
}
