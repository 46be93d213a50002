package gateway

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// Config configures a gateway. Every field with a flag is filled by
// RegisterFlags (flag --x-y, env REALM_X_Y); the rest are for embedding.
type Config struct {
	// Common is the block every service has (svcmain.Common): --nats-url,
	// NATS credentials, --http-addr (ops, default 127.0.0.1:8080),
	// --instance-id, logs, --shutdown-timeout (bound on the graceful drain),
	// --otlp-endpoint (empty = tracing off), --heartbeat, --stream-replicas,
	// --create-streams.
	svcmain.Common

	TCPAddr     string // --tcp-addr, length-prefixed frames, default :7000 ("" disables)
	WSAddr      string // --ws-addr, WebSocket binary messages, default :7001 ("" disables)
	TLSCertFile string // --tls-cert-file, PEM certificate (chain) of both client listeners; reloaded on change; "" = no TLS
	TLSKeyFile  string // --tls-key-file, PEM private key of --tls-cert-file
	// TraceSampleRatio (--trace-sample-ratio, default 0.1) is the share of
	// client commands traced; the decision is taken here, at the head of the
	// trace, and the world and persist follow it (parent-based). Refusals are
	// always traced. Without an endpoint or TracerProvider nothing is.
	TraceSampleRatio float64
	// TracerProvider, when set by an embedder, makes the gateway's spans
	// (and turns tracing on); nil = the global provider, on with OTLPEndpoint.
	TracerProvider trace.TracerProvider

	TokenKey string        // --token-key, one HS256 key of tokens (>= 16 bytes), kid "default"; see TokenKeys
	TokenTTL time.Duration // --token-ttl, life of tokens the gateway issues (login, Welcome), default 24h
	Dev      bool          // --dev, issue tokens from Hello{name} (and use a fixed key if none is set)
	// TokenKeys (--token-keys) is the key ring "kid:secret,kid:secret": the
	// first signs, all verify (rotation; docs/clients.md). With TokenKey
	// both are used, TokenKeys first.
	TokenKeys string
	// SessionLifetime (--session-lifetime) is the absolute life of a session
	// from its first Hello; resuming does not extend it. Default 24h.
	SessionLifetime time.Duration
	// Login (--login) serves the reference login POST /v1/session on the
	// WebSocket listener (accounts through persist). Default true.
	Login bool
	// Version is the server version sent in Welcome (default: the build's
	// module version, or "dev").
	Version string

	MaxFrame       int           // --max-frame, max packet bytes, default 4096
	Rate           float64       // --rate, packets/s per connection (token bucket), default 100
	Burst          int           // --burst, token bucket depth, default 200
	RingSize       int           // --ring-size, MPSC ring capacity (power of two), default 16384
	MaxPending     int           // --max-pending, in-flight JetStream publishes before Busy, default 8192
	BatchSize      int           // --batch-size, items the publisher drains per batch, default 256
	SendQueue      int           // --send-queue, per-client outgoing packets before SLOW_CONSUMER, default 1024
	MaxConns       int           // --max-conns, default 10000
	PublishRetries int           // --publish-retries, retries of a failed publish (same msg id), default 3
	PublishTimeout time.Duration // --publish-timeout, wait for one PubAck, default 5s
	HelloTimeout   time.Duration // --hello-timeout, a connection must say Hello within it, default 10s
	WriteTimeout   time.Duration // --write-timeout, one socket write, default 5s
	// MaxBadFrames (--max-bad-frames) is how many malformed frames a
	// connection may send (one more is earned back per second) before it is
	// closed. Default 10.
	MaxBadFrames int
	// SendQueueBytes (--send-queue-bytes) bounds the bytes queued for one
	// client; above it the client is a slow consumer (SLOW_CONSUMER, closed).
	// Default 1 MiB.
	SendQueueBytes int
	// SendQueueAge (--send-queue-age): a client whose oldest queued packet
	// has waited this long is a slow consumer. Default 2s.
	SendQueueAge time.Duration
	// AckHold (--ack-hold): an Ack waits up to this long for the client's
	// next socket write (its zone's next update frame, or another answer)
	// and goes out in it, instead of a write of its own: at 10 commands/s
	// and 20 update frames/s per client a third of the gateway's socket
	// writes (and of the client's reads) were lone acks. 0 = every Ack is
	// written at once. Default 50ms (one tick): acks come later by up to
	// that, updates never.
	AckHold time.Duration
	// CommandBatch (--command-batch) publishes the fresh commands of one zone
	// that arrive within CommandLinger (--command-linger) of each other as one
	// JetStream message of up to CommandBatchMax (--command-batch-max)
	// commands, instead of one message each (docs/command-batches.md).
	// Default off; linger 2ms, max 64.
	CommandBatch    bool
	CommandLinger   time.Duration
	CommandBatchMax int

	// Map is the world layout (zone names, AOI cells). Default worldmap.Default().
	Map worldmap.Map
	// Obstacles (zone coordinates, the same in every zone) are announced in
	// WorldInfo; the world's rules are their source (the stack sets them).
	Obstacles []*schema.Rect
}

// DevTokenKey is the key used with --dev when no --token-key is set. Never use it in production.
const DevTokenKey = "realmstream-dev-token-key-not-secret"

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Common:          svcmain.DefaultCommon("gateway", 8080),
		TCPAddr:         ":7000",
		WSAddr:          ":7001",
		TokenTTL:        24 * time.Hour,
		SessionLifetime: 24 * time.Hour,
		Login:           true,
		MaxFrame:        wire.DefaultMaxFrame,
		Rate:            100,
		Burst:           200,
		RingSize:        16384,
		MaxPending:      8192,
		BatchSize:       256,
		SendQueue:       1024,
		MaxConns:        10000,
		PublishRetries:  3,
		PublishTimeout:  5 * time.Second,
		HelloTimeout:    10 * time.Second,
		WriteTimeout:    5 * time.Second,
		MaxBadFrames:    10,
		SendQueueBytes:  1 << 20,
		SendQueueAge:    2 * time.Second,
		AckHold:         50 * time.Millisecond,
		CommandLinger:   2 * time.Millisecond,
		CommandBatchMax: 64,
		Map:             worldmap.Default(),

		TraceSampleRatio: 0.1, // 10% of the commands when tracing is on
	}
}

// RegisterFlags binds every flag to c; the current values of c are the defaults.
func (c *Config) RegisterFlags(s *envflag.Set) {
	c.Common.RegisterFlags(s)
	s.String(&c.TCPAddr, "tcp-addr", c.TCPAddr, "TCP client listener (length-prefixed frames); empty disables")
	s.String(&c.WSAddr, "ws-addr", c.WSAddr, "WebSocket client listener (binary messages); empty disables")
	s.String(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "PEM certificate of the TCP and WebSocket listeners (TLS, reloaded when the file changes); empty = plaintext")
	s.String(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "PEM private key of --tls-cert-file")
	s.Float(&c.TraceSampleRatio, "trace-sample-ratio", c.TraceSampleRatio, "share of client commands traced, 0..1 (head sampling here; world and persist follow the command's decision; refusals are always traced, at most 50 spans/s); needs --otlp-endpoint")
	s.String(&c.TokenKey, "token-key", c.TokenKey, "HMAC key of session tokens (at least 16 bytes); required unless --dev")
	s.Duration(&c.TokenTTL, "token-ttl", c.TokenTTL, "life of tokens issued by the gateway")
	s.Bool(&c.Dev, "dev", c.Dev, "dev mode: Hello{name} without a token is issued one (never in production)")
	s.String(&c.TokenKeys, "token-keys", c.TokenKeys, "token key ring kid:secret,kid:secret (first signs, all verify; secrets >= 16 bytes)")
	s.Duration(&c.SessionLifetime, "session-lifetime", c.SessionLifetime, "absolute life of a session from its first Hello; resume does not extend it")
	s.Bool(&c.Login, "login", c.Login, "serve the reference login POST /v1/session on the WebSocket listener")
	s.Int(&c.MaxFrame, "max-frame", c.MaxFrame, "maximum client packet size in bytes")
	s.Float(&c.Rate, "rate", c.Rate, "packets per second allowed per connection (token bucket rate)")
	s.Int(&c.Burst, "burst", c.Burst, "token bucket burst per connection")
	s.Int(&c.RingSize, "ring-size", c.RingSize, "capacity of the MPSC ring between readers and the publisher (power of two)")
	s.Int(&c.MaxPending, "max-pending", c.MaxPending, "in-flight JetStream publishes; above it clients get Busy")
	s.Int(&c.BatchSize, "batch-size", c.BatchSize, "items the publisher takes from the ring per batch")
	s.Int(&c.SendQueue, "send-queue", c.SendQueue, "per-client queue of outgoing packets; overflow disconnects (SLOW_CONSUMER)")
	s.Int(&c.MaxConns, "max-conns", c.MaxConns, "maximum client connections")
	s.Int(&c.PublishRetries, "publish-retries", c.PublishRetries, "retries of a failed publish with the same msg id")
	s.Duration(&c.PublishTimeout, "publish-timeout", c.PublishTimeout, "wait for one JetStream PubAck")
	s.Duration(&c.HelloTimeout, "hello-timeout", c.HelloTimeout, "a connection must send Hello within this time")
	s.Duration(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "timeout of one socket write to a client")
	s.Int(&c.MaxBadFrames, "max-bad-frames", c.MaxBadFrames, "malformed frames a connection may send (one earned back per second) before it is closed")
	s.Int(&c.SendQueueBytes, "send-queue-bytes", c.SendQueueBytes, "bytes queued for one client before it is disconnected as a slow consumer (SLOW_CONSUMER)")
	s.Duration(&c.SendQueueAge, "send-queue-age", c.SendQueueAge, "a client whose oldest queued packet waited this long is disconnected as a slow consumer")
	s.Bool(&c.CommandBatch, "command-batch", c.CommandBatch, "publish the fresh commands of one zone as one JetStream message per --command-linger (docs/command-batches.md); resends, retries and traced commands stay single")
	s.Duration(&c.CommandLinger, "command-linger", c.CommandLinger, "with --command-batch: how long a batch waits for more commands of its zone after its first (0: only what the publisher drained at once)")
	s.Int(&c.CommandBatchMax, "command-batch-max", c.CommandBatchMax, "with --command-batch: the most commands in one batch message")
	s.Duration(&c.AckHold, "ack-hold", c.AckHold, "an Ack waits up to this long to ride the client's next update frame instead of a socket write of its own (0 = write each Ack at once)")
}

// Validate checks the configuration and says what is wrong.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := c.Common.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !(c.TraceSampleRatio >= 0 && c.TraceSampleRatio <= 1) {
		add("--trace-sample-ratio %v: want 0..1", c.TraceSampleRatio)
	}
	if c.TCPAddr == "" && c.WSAddr == "" {
		add("at least one of --tcp-addr and --ws-addr is required")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		add("--tls-cert-file and --tls-key-file go together")
	}
	if !c.Dev && len(c.TokenKey) < 16 && c.TokenKeys == "" {
		add("--token-keys (or --token-key) is required unless --dev")
	}
	if _, err := c.keys(); err != nil {
		add("%v", err)
	}
	if c.TokenKey != "" && len(c.TokenKey) < 16 {
		add("--token-key must be at least 16 bytes")
	}
	if c.MaxFrame < 64 || c.MaxFrame > 1<<20 {
		add("--max-frame %d: want 64..1048576", c.MaxFrame)
	}
	if c.Rate <= 0 || c.Burst < 1 {
		add("--rate must be > 0 and --burst >= 1")
	}
	if c.RingSize < 2 || c.RingSize > 1<<24 || c.RingSize&(c.RingSize-1) != 0 {
		add("--ring-size %d: want a power of two in 2..16777216", c.RingSize)
	}
	if c.MaxPending < 1 {
		add("--max-pending must be >= 1")
	}
	if c.BatchSize < 1 {
		add("--batch-size must be >= 1")
	}
	if c.SendQueue < 1 {
		add("--send-queue must be >= 1")
	}
	if c.MaxConns < 1 {
		add("--max-conns must be >= 1")
	}
	if c.MaxBadFrames < 1 {
		add("--max-bad-frames must be >= 1")
	}
	if c.SendQueueBytes < 4096 {
		add("--send-queue-bytes %d: want at least 4096", c.SendQueueBytes)
	}
	if c.AckHold < 0 || c.AckHold >= c.SendQueueAge {
		add("--ack-hold %v: want 0 (off) up to below --send-queue-age %v", c.AckHold, c.SendQueueAge)
	}
	if c.CommandLinger < 0 || c.CommandLinger > 100*time.Millisecond {
		add("--command-linger %v: want 0..100ms (it adds up to that to every batched command's latency)", c.CommandLinger)
	}
	if c.CommandBatchMax < 2 || c.CommandBatchMax > wire.MaxBatchCommands {
		add("--command-batch-max %d: want 2..%d", c.CommandBatchMax, wire.MaxBatchCommands)
	}
	if c.SendQueueAge <= 0 {
		add("--send-queue-age must be > 0")
	}
	if c.PublishRetries < 0 {
		add("--publish-retries must be >= 0")
	}
	for name, d := range map[string]time.Duration{"--token-ttl": c.TokenTTL, "--session-lifetime": c.SessionLifetime,
		"--publish-timeout": c.PublishTimeout, "--hello-timeout": c.HelloTimeout, "--write-timeout": c.WriteTimeout} {
		if d <= 0 {
			add("%s must be > 0", name)
		}
	}
	if err := c.Map.Validate(); err != nil {
		add("map: %v", err)
	}
	return errors.Join(errs...)
}
