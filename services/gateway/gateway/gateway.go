// Package gateway is the Realmstream client gateway: TCP and WebSocket
// listeners, session handshake with signed tokens, per-connection rate limits
// and validation, a lock-free MPSC ring feeding ONE JetStream publisher on
// cmd.<zone>, and the downstream fan-out of zone updates (area of interest)
// and session notices through bounded per-client send queues.
//
// This package is Config, New and Run (what the stack composes) and the
// client connection that ties the parts together: its reader, session and
// writer. The parts are internal, each with a narrow dependency on the
// connection: internal/transport (the socket), internal/ingest (the ring,
// the publisher and its ingest.Client answers), internal/fanout (updates to
// a fanout.Member's fanout.Sink) and internal/login. See docs/gateway.md for
// the design, the lock order, guarantees and failure modes.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/opsserver"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/auth"
	"github.com/realmstream/realmstream/services/gateway/internal/fanout"
	"github.com/realmstream/realmstream/services/gateway/internal/handshake"
	"github.com/realmstream/realmstream/services/gateway/internal/ingest"
	"github.com/realmstream/realmstream/services/gateway/internal/packet"
	"github.com/realmstream/realmstream/services/gateway/internal/sendq"
	"github.com/realmstream/realmstream/services/gateway/internal/session"
	"github.com/realmstream/realmstream/services/gateway/internal/tracing"
	"github.com/realmstream/realmstream/services/gateway/internal/transport"
)

// Service is one gateway instance.
type Service struct {
	cfg    Config
	log    *slog.Logger
	signer *auth.Signer
	limits packet.Limits
	ops    *opsserver.Server
	m      *metrics
	figs   *telemetry.Figures // heartbeat figures
	tr     *tracing.Tracing

	sq   *sendq.Metrics // the connections' outgoing series
	acks sendq.Flusher  // connections with held acks (--ack-hold)

	pub  *ingest.Publisher
	down *fanout.Fanout
	disc *ingest.Disconnects // Disconnect commands of closed connections (disconnect.go)

	// Shared session state (session.go), set by Run.
	store     *session.Store
	deny      *session.DenyList
	hs        *handshake.Handshake // what a Hello is checked against
	cmdStream jetstream.Stream     // reads a duplicate's stored command
	dupWindow time.Duration        // JetStream's duplicate window of CMD
	dupSem    chan struct{}        // bounds concurrent duplicate checks
	world     *schema.WorldInfo

	nc *nats.Conn
	js jetstream.JetStream

	tcpLn net.Listener
	wsLn  net.Listener
	wsSrv *http.Server

	ready    chan struct{}
	draining atomic.Bool

	mu     sync.Mutex
	conns  map[*conn]struct{}
	nconns atomic.Int64
	connWG sync.WaitGroup
}

// New checks cfg and builds a gateway; Run starts it.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: invalid config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = buildVersion()
	}
	keys, err := cfg.keys()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	signer, err := auth.NewSigner(keys...)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	dupWindow := cfg.Streams.DuplicateWindow
	if dupWindow == 0 {
		dupWindow = wire.DefaultDuplicateWindow
	}
	s := &Service{
		cfg:       cfg,
		log:       log,
		signer:    signer,
		limits:    packet.NewLimits(cfg.Map),
		ops:       opsserver.New(),
		ready:     make(chan struct{}),
		conns:     map[*conn]struct{}{},
		dupWindow: dupWindow,
		dupSem:    make(chan struct{}, 64),
		world:     packet.WorldInfo(cfg.Map, cfg.Obstacles),
	}
	if s.tr, err = newTracing(cfg); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.m = newMetrics(s.ops.Registry, func() float64 { return float64(s.pub.Len()) }, func() float64 { return float64(s.pub.Inflight()) })
	s.sq = s.m.sendq()
	s.pub = ingest.New(ingest.Config{RingSize: cfg.RingSize, MaxPending: cfg.MaxPending, BatchSize: cfg.BatchSize,
		PublishRetries: cfg.PublishRetries, PublishTimeout: cfg.PublishTimeout,
		CommandBatch: cfg.CommandBatch, Linger: cfg.CommandLinger, BatchMax: cfg.CommandBatchMax, Instance: cfg.InstanceID}, s.m.ingest(), log)
	subscribe := func(subject string, cb nats.MsgHandler) (*nats.Subscription, error) {
		return s.nc.Subscribe(subject, cb)
	} // s.nc: set by Run, before any client joins
	s.disc = &ingest.Disconnects{Retries: cfg.PublishRetries, Timeout: cfg.PublishTimeout, Sent: s.m.disconnects, Log: log}
	s.down = fanout.New(subscribe, cfg.Map, fanout.Metrics{Updates: s.m.updates, UpdateFrames: s.m.updateFrames}, s.tr, log)
	s.figs = newFigures(s.ops.Registry)
	s.ops.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "realm_gateway_refusal_spans_dropped_total",
		Help: "Refusals of untraced commands not traced because the per-process span budget (50/s) was spent."},
		func() float64 { return float64(s.tr.RefusalSpansDropped()) }))
	return s, nil
}

// newTracing sets up the gateway's spans (internal/tracing): off unless an
// OTLP endpoint is configured or the embedder gives a TracerProvider.
func newTracing(cfg Config) (*tracing.Tracing, error) {
	return tracing.New(tracing.Config{TracerProvider: cfg.TracerProvider, OTLPEndpoint: cfg.OTLPEndpoint, SampleRatio: cfg.TraceSampleRatio})
}

// Ready is closed once the gateway accepts clients.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// TCPAddr is the bound TCP listener address (after Ready; "" if disabled).
func (s *Service) TCPAddr() string { return addrOf(s.tcpLn) }

// WSAddr is the bound WebSocket listener address (after Ready; "" if disabled).
func (s *Service) WSAddr() string { return addrOf(s.wsLn) }

// HTTPAddr is the bound ops server address (after Ready).
func (s *Service) HTTPAddr() string { return s.ops.Addr() }

// Connections is the number of open client connections.
func (s *Service) Connections() int { return int(s.nconns.Load()) }

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// IssueToken signs a token for player with the signing key (for tools and
// tests that act as a login service).
func (s *Service) IssueToken(player, name string, ttl time.Duration) (string, error) {
	return s.signer.Issue(auth.Claims{Player: player, Name: name, Expiry: time.Now().Add(ttl)})
}

// Revoke adds key (player.<id>, session.<id> or token.<jti>) to the shared
// deny list (after Ready).
func (s *Service) Revoke(ctx context.Context, key string) error { return s.deny.Revoke(ctx, key) }

// Run connects to NATS, ensures the streams, serves clients until ctx is
// cancelled, then drains: stop accepting, stop taking commands (Error
// SHUTTING_DOWN), flush the ring, wait for every ack (bounded by
// ShutdownTimeout), flush client send queues, close. It returns nil after a
// clean drain.
func (s *Service) Run(ctx context.Context) error {
	nc, err := svcmain.Connect("gateway", &s.cfg.Common, s.log, nats.ReconnectBufSize(64<<20))
	if err != nil {
		return err
	}
	defer nc.Close()
	s.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("gateway: jetstream: %w", err)
	}
	apub, err := s.pub.AsyncPublisher(nc)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer apub.Close()
	s.js = js
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = s.cfg.EnsureStreams(sctx, js)
	if err == nil {
		err = s.openSessions(sctx, js)
	}
	cancel()
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}

	s.ops.AddCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected to NATS")
		}
		return nil
	})
	s.ops.AddCheck("streams", func(ctx context.Context) error {
		_, err := js.Stream(ctx, wire.StreamCommands)
		return err
	})
	if err := s.ops.Listen(s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("gateway: ops listener %s: %w", s.cfg.HTTPAddr, err)
	}
	if s.cfg.TCPAddr != "" {
		if s.tcpLn, err = transport.Listen(s.cfg.TCPAddr, s.cfg.TLSCertFile, s.cfg.TLSKeyFile, s.log); err != nil {
			_ = s.ops.Shutdown(context.Background())
			return fmt.Errorf("gateway: tcp listener %s: %w", s.cfg.TCPAddr, err)
		}
	}
	if s.cfg.WSAddr != "" {
		if s.wsLn, err = transport.Listen(s.cfg.WSAddr, s.cfg.TLSCertFile, s.cfg.TLSKeyFile, s.log); err != nil {
			s.closeListeners()
			_ = s.ops.Shutdown(context.Background())
			return fmt.Errorf("gateway: websocket listener %s: %w", s.cfg.WSAddr, err)
		}
	}

	drainDeadline := make(chan struct{})
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); s.pub.Run(apub, drainDeadline) }()

	var acceptWG sync.WaitGroup
	if s.tcpLn != nil {
		acceptWG.Add(1)
		go func() { defer acceptWG.Done(); s.acceptTCP() }()
	}
	if s.wsLn != nil {
		s.wsSrv = &http.Server{Handler: s.wsHandler(), ReadHeaderTimeout: 5 * time.Second}
		acceptWG.Add(1)
		go func() { defer acceptWG.Done(); _ = s.wsSrv.Serve(s.wsLn) }()
	}
	hbDone := make(chan struct{})
	hbCtx, hbStop := context.WithCancel(context.Background())
	go func() { defer close(hbDone); s.heartbeats(hbCtx) }()
	if s.cfg.AckHold > 0 {
		go s.acks.Run(hbCtx, s.cfg.AckHold) // until the connections have drained
	}

	s.ops.SetReady(true)
	close(s.ready)
	s.log.Info("gateway serving", "tcp", s.TCPAddr(), "ws", s.WSAddr(), "http", s.HTTPAddr(), "instance", s.cfg.InstanceID, "dev", s.cfg.Dev,
		"version", s.cfg.Version, "protocol", fmt.Sprintf("%d..%d", MinProtocol, MaxProtocol), "token_kid", s.signer.SigningKeyID(), "login", s.cfg.Login && s.wsLn != nil)
	if s.cfg.Dev {
		s.log.Warn("DEV MODE: Hello{name} without a token logs in as player p-<name>; never run a public gateway with --dev")
	}

	<-ctx.Done()

	// Drain. 1: stop accepting and stop taking commands.
	start := time.Now()
	timer := time.AfterFunc(s.cfg.ShutdownTimeout, func() { close(drainDeadline) })
	defer timer.Stop()
	s.ops.SetReady(false)
	s.draining.Store(true)
	s.closeListeners()
	acceptWG.Wait()
	// 2: flush the ring: readers that raced past the draining check get
	// ErrClosed from TryEnqueue and answer SHUTTING_DOWN; everything accepted
	// is published, 3: and acked (or the deadline passes).
	s.pub.Close()
	<-pubDone
	lost := s.pub.Lost()
	// 4: flush every client's queued answers, then close the connections.
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	connsDone := make(chan struct{})
	go func() { s.connWG.Wait(); close(connsDone) }()
	select {
	case <-connsDone:
	case <-drainDeadline:
		s.mu.Lock()
		for c := range s.conns {
			c.q.Kill()
		}
		s.mu.Unlock()
		<-connsDone
	}
	s.disc.Wait(drainDeadline)
	hbStop()
	<-hbDone
	s.publishHeartbeat(false, true)
	_ = nc.Flush()
	sdCtx, sdCancel := context.WithTimeout(context.Background(), time.Second)
	_ = s.ops.Shutdown(sdCtx)
	sdCancel()
	s.log.Info("gateway stopped", "drain", time.Since(start).String(), "unacknowledged", lost)
	if lost > 0 {
		return fmt.Errorf("gateway: %d publishes unacknowledged at the shutdown deadline", lost)
	}
	return nil
}

func (s *Service) closeListeners() {
	if s.tcpLn != nil {
		_ = s.tcpLn.Close()
	}
	if s.wsSrv != nil {
		// Shutdown stops the listener; hijacked WebSocket connections are ours.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.wsSrv.Shutdown(ctx)
		cancel()
	} else if s.wsLn != nil {
		_ = s.wsLn.Close()
	}
}

func (s *Service) acceptTCP() {
	var backoff time.Duration
	for {
		nc, err := s.tcpLn.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary (e.g. EMFILE): back off, do not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		tr := transport.NewTCP(nc, s.cfg.MaxFrame, s.cfg.WriteTimeout)
		if !s.admit(tr) {
			continue
		}
	}
}

func (s *Service) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Clients authenticate with signed tokens inside the protocol, not
		// with cookies, so cross-origin pages gain nothing from a socket.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	ws.SetReadLimit(int64(s.cfg.MaxFrame) + 1)
	// The connection's context must outlive this handler's request.
	ctx, cancel := context.WithCancel(context.Background())
	tr := transport.NewWebSocket(ctx, ws, s.cfg.MaxFrame, s.cfg.WriteTimeout)
	done := make(chan struct{})
	s.admitWS(tr, done)
	<-done
	cancel()
}

func (s *Service) admit(tr transport.Conn) bool {
	return s.admitWS(tr, nil)
}

// admitWS registers a connection and starts serving it; done (if not nil) is
// closed when it ends.
func (s *Service) admitWS(tr transport.Conn, done chan struct{}) bool {
	s.mu.Lock()
	if s.draining.Load() || len(s.conns) >= s.cfg.MaxConns {
		s.mu.Unlock()
		// Refuse with Busy, off the accept loop (the write may wait).
		go func() {
			b, _ := proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Busy{Busy: &schema.Busy{RetryAfterMs: 1000}}})
			_ = tr.WritePackets([][]byte{b})
			tr.CloseGracefully(sendq.LingerTime, nil)
			if done != nil {
				close(done)
			}
		}()
		s.m.dropped.WithLabelValues("max_conns").Inc()
		return false
	}
	c := newConn(s, tr)
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	s.nconns.Add(1)
	s.m.conns.WithLabelValues(tr.Name()).Inc()
	go func() {
		defer s.connWG.Done()
		if done != nil {
			defer close(done)
		}
		c.serve()
	}()
	return true
}

// forget is called once when a connection has closed.
func (s *Service) forget(c *conn) {
	if c.sesSub != nil {
		_ = c.sesSub.Unsubscribe()
	}
	if c.session != "" {
		c.closeSession() // before leave: the record keeps the zone
	}
	s.sendDisconnect(c, c.currentZone(), "connection closed")
	s.down.Leave(&c.down)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.nconns.Add(-1)
	s.m.conns.WithLabelValues(c.tr.Name()).Dec()
}

func (s *Service) heartbeats(ctx context.Context) {
	svcmain.Heartbeats(ctx, s.cfg.Heartbeat, func() { s.publishHeartbeat(!s.draining.Load(), s.draining.Load()) })
}

func (s *Service) publishHeartbeat(ready, stopping bool) {
	hb := &schema.Heartbeat{
		Service:     "gateway",
		InstanceId:  s.cfg.InstanceID,
		SentAtNs:    time.Now().UnixNano(),
		Ready:       ready,
		Stopping:    stopping,
		HttpAddr:    s.HTTPAddr(),
		Connections: s.nconns.Load(),
		Figures: map[string]float64{
			"ring_depth":    float64(s.pub.Len()),
			"inflight_acks": float64(s.pub.Inflight()),
		},
	}
	for k, v := range s.figs.Sample(time.Now()) {
		hb.Figures[k] = v
	}
	if err := svcmain.PublishHeartbeat(s.nc, hb); err != nil {
		s.log.Debug("heartbeat", "err", err)
	}
}
