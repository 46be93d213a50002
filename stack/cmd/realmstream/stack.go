package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/natsconn"
	"github.com/realmstream/realmstream/libs/natsembed"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/gateway"
	"github.com/realmstream/realmstream/services/monitor/monitor"
	"github.com/realmstream/realmstream/services/persist/persist"
	"github.com/realmstream/realmstream/services/world/world"
	"github.com/realmstream/realmstream/stack/internal/play"
)

// stackConfig is the configuration of the one-process stack.
type stackConfig struct {
	DataDir      string        // --data-dir: NATS and Pebble data, default ./data
	NATSPort     int           // --nats-port: embedded NATS client port, default 4222 (-1 = any free port)
	NATSSync     string        // --nats-sync: JetStream fsync policy: default | always | <duration>
	NATSCluster  int           // --nats-cluster: embedded NATS servers (1, or 3 for an R3 cluster in this process)
	TCPAddr      string        // --tcp-addr: gateway TCP, default :7000
	WSAddr       string        // --ws-addr: gateway WebSocket, default :7001
	HTTPBase     int           // --http-base: first ops port (gateway; world +1, persist +2, monitor +3), default 8080
	Bots         int           // --bots: bots to run against the stack, default 0
	BotsDuration time.Duration // --bots-duration: 0 = until stopped
	Transport    string        // --bots-transport: tcp | ws
	LogLevel     string        // --log-level
	ShutdownWait time.Duration // --shutdown-timeout: per service drain bound
}

func (c *stackConfig) register(s *envflag.Set) {
	s.String(&c.DataDir, "data-dir", "./data", "directory for the embedded NATS store and the Pebble database")
	s.Int(&c.NATSPort, "nats-port", 4222, "client port of the embedded NATS server (-1 picks a free port)")
	s.String(&c.NATSSync, "nats-sync", "default", "JetStream fsync policy: default (every 2m, ack before fsync), always (fsync before each ack) or a duration")
	s.Int(&c.NATSCluster, "nats-cluster", 1, "embedded NATS servers: 1, or 3 for a JetStream cluster in this process with every stream and bucket replicated 3 times (R3: each append through a Raft quorum, as in production); client ports --nats-port, +1, +2")
	s.String(&c.TCPAddr, "tcp-addr", ":7000", "gateway TCP listen address (length-prefixed protobuf frames)")
	s.String(&c.WSAddr, "ws-addr", ":7001", "gateway WebSocket listen address (binary messages)")
	s.Int(&c.HTTPBase, "http-base", 8080, "ops HTTP port of the gateway; world, persist and monitor use the next three (monitor serves the dashboard), the browser demo the fifth (/play/)")
	s.Int(&c.Bots, "bots", 0, "number of bots to run against the stack (0 = none)")
	s.Duration(&c.BotsDuration, "bots-duration", 0, "how long the bots play (0 = until the stack stops)")
	s.String(&c.Transport, "bots-transport", "tcp", "bot transport: tcp or ws")
	s.String(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	s.Duration(&c.ShutdownWait, "shutdown-timeout", 10*time.Second, "bound on each service's graceful drain")
}

func (c *stackConfig) validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	if c.Bots < 0 {
		return fmt.Errorf("--bots %d: must be >= 0", c.Bots)
	}
	if c.Transport != "tcp" && c.Transport != "ws" {
		return fmt.Errorf("--bots-transport %q: want tcp or ws", c.Transport)
	}
	if c.HTTPBase < 1 || c.HTTPBase > 65531 {
		return fmt.Errorf("--http-base %d: want a port between 1 and 65531", c.HTTPBase)
	}
	if _, err := natsembed.ParseSync(c.NATSSync); err != nil {
		return err
	}
	if c.NATSCluster != 1 && c.NATSCluster != 3 {
		return fmt.Errorf("--nats-cluster %d: want 1 or 3", c.NATSCluster)
	}
	return nil
}

func runStack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg stackConfig
	es := envflag.New(fs)
	cfg.register(es)
	// Every gateway setting is a flag of the stack too (with its REALM_* env).
	gc := gateway.DefaultConfig()
	// The embedded NATS has no users and no TLS: the connection flags
	// (libs/natsconn) of the services are not the stack's.
	noConn := natsconn.FlagNames()
	adoptFlags(fs, gc.RegisterFlags, append(stackOwnedGatewayFlags, noConn...)...)
	// World, persist and monitor settings too (--tick, --snapshot-every,
	// --trim-keep-age, --batch-size, --rules, ...); a name defined already
	// (by the stack or the gateway) keeps that meaning.
	wc := world.DefaultConfig()
	adoptFlags(fs, wc.RegisterFlags, append(noConn, "nats-url", "http-addr", "instance-id", "log-format", "create-streams", "redis-addr", "redis-sentinel-master", "redis-sentinel-addrs")...)
	pc := persist.DefaultConfig()
	adoptFlags(fs, pc.RegisterFlags, append(noConn, "nats-url", "http-addr", "instance-id", "log-format", "create-streams", "pg-urls", "pebble-dir")...)
	mc := monitor.DefaultConfig()
	adoptFlags(fs, mc.RegisterFlags, append(noConn, "nats-url", "http-addr", "instance-id", "log-format", "create-streams")...)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: realmstream run [flags]\n\nStarts the whole backend in this process: an embedded NATS server with\nJetStream, the gateway, one world instance (in-process lock table), persist\non Pebble and monitor (dashboard on the monitor's ops port).\n\nEvery gateway flag (--max-frame, --rate, --burst, --token-ttl, --send-queue-bytes,\n...) applies to the embedded gateway, with its REALM_* variable.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := es.Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", cfg.LogLevel, err)
	}
	log := telemetry.NewLogger("realmstream", "text", level).With("version", version)
	svcLog := func(name string) *slog.Logger { return telemetry.NewLogger(name, "text", level) }
	// Tracing (--otlp-endpoint, --trace-sample-ratio): one provider for the
	// four services of the process, set before any of them starts.
	stopTracing, err := telemetry.StartTracing(ctx, "realmstream", gc.OTLPEndpoint)
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }()

	natsDir := filepath.Join(cfg.DataDir, "nats")
	if err := os.MkdirAll(natsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", natsDir, err)
	}
	if cfg.NATSPort > 0 {
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(cfg.NATSPort)); err != nil {
			// Another NATS server (often the system one) holds the port: the
			// embedded one takes a free port instead; the services are given
			// its URL, so nothing else needs to change.
			log.Warn("NATS port taken; the embedded server uses a free port instead (set --nats-port to choose one)", "port", cfg.NATSPort, "err", err)
			cfg.NATSPort = -1
		} else {
			l.Close()
		}
	}
	ns, err := natsembed.StartCluster(natsembed.Config{Port: cfg.NATSPort, StoreDir: natsDir, Sync: natsembed.SyncPolicy(cfg.NATSSync)}, cfg.NATSCluster)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	natsURL := ns.URL()
	replicas := cfg.NATSCluster
	log.Info("embedded NATS with JetStream started", "url", natsURL, "store", natsDir, "sync", cfg.NATSSync, "servers", cfg.NATSCluster, "replicas", replicas)

	nc, err := nats.Connect(natsURL, nats.Name("realmstream-stack"))
	if err != nil {
		return fmt.Errorf("connect to the embedded NATS server: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{Replicas: replicas}); err != nil {
		return err
	}
	wc.Streams.Replicas, pc.Streams.Replicas, mc.Streams.Replicas, gc.Streams.Replicas = replicas, replicas, replicas, replicas

	port := func(off int) string { return "127.0.0.1:" + strconv.Itoa(cfg.HTTPBase+off) }

	wc.NATSURL, wc.HTTPAddr, wc.ShutdownTimeout = natsURL, port(1), cfg.ShutdownWait
	wc.InstanceID = "world-embedded"
	wc.RedisAddr = "" // in-process lock table
	pc.NATSURL, pc.HTTPAddr, pc.ShutdownTimeout = natsURL, port(2), cfg.ShutdownWait
	pc.InstanceID = "persist-embedded"
	pc.PGURLs = nil
	pc.PebbleDir = filepath.Join(cfg.DataDir, "pebble")
	mc.NATSURL, mc.HTTPAddr, mc.ShutdownTimeout = natsURL, port(3), cfg.ShutdownWait
	mc.InstanceID = "monitor-embedded"
	gc.NATSURL, gc.HTTPAddr, gc.ShutdownTimeout = natsURL, port(0), cfg.ShutdownWait
	gc.InstanceID = "gateway-embedded"
	gc.TCPAddr, gc.WSAddr, gc.Dev = cfg.TCPAddr, cfg.WSAddr, true

	// The browser demo (/play/ on the fifth ops port), linked from the dashboard.
	playURL := servePlay(ctx, log, port(4), cfg.WSAddr)
	if strings.HasPrefix(playURL, "http") {
		mc.PlayURL = playURL
	}

	// Start order: persist and world before the gateway accepts players;
	// stop order is the reverse, so the gateway drains its accepted commands
	// into JetStream before the world hands its zones over.
	type build struct {
		name string
		new  func() (svcmain.Readier, error)
	}
	builds := []build{
		{"persist", func() (svcmain.Readier, error) { return persist.New(pc, svcLog("persist")) }},
		{"world", func() (svcmain.Readier, error) { return world.New(wc, svcLog("world")) }},
		{"monitor", func() (svcmain.Readier, error) { return monitor.New(mc, svcLog("monitor")) }},
		{"gateway", func() (svcmain.Readier, error) { return gateway.New(gc, svcLog("gateway")) }},
	}
	var started []*svcmain.Running
	stopAll := func() {
		for i := len(started) - 1; i >= 0; i-- {
			r := started[i]
			if err := r.Stop(cfg.ShutdownWait + 5*time.Second); err != nil {
				log.Error("service stopped with an error", "service", r.Name, "err", err)
			} else {
				log.Info("service stopped", "service", r.Name)
			}
		}
	}
	defer stopAll()
	failed := make(chan string, len(builds))
	for _, b := range builds {
		svc, err := b.new()
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		r, err := svcmain.Start(ctx, b.name, svc, 60*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		started = append(started, r)
		log.Info("service ready", "service", b.name)
		go func() {
			<-r.Done()
			if r.Unexpected() {
				failed <- fmt.Sprintf("%s stopped unexpectedly: %v", r.Name, r.Err())
			}
		}()
	}

	gwAddr := cfg.TCPAddr
	if cfg.Transport == "ws" {
		gwAddr = cfg.WSAddr
	}
	fmt.Fprintf(stdout, "\nRealmstream is running.\n  gateway   tcp %s  ws %s (dev tokens)\n  play      %s\n  dashboard http://%s/\n  metrics   http://%s/metrics (gateway), :%d world, :%d persist, :%d monitor\n  NATS      %s (store %s)\n  data      %s\nPress Ctrl-C to stop (the services drain and hand over their zones).\n\n",
		cfg.TCPAddr, cfg.WSAddr, playURL, port(3), port(0), cfg.HTTPBase+1, cfg.HTTPBase+2, cfg.HTTPBase+3, natsURL, natsDir, cfg.DataDir)

	botsDone := make(chan error, 1)
	if cfg.Bots > 0 {
		go func() {
			botsDone <- swarm(ctx, botOptions{
				Addr:      localAddr(gwAddr),
				Transport: cfg.Transport,
				Count:     cfg.Bots,
				Duration:  cfg.BotsDuration,
			}, stdout)
		}()
	}
	select {
	case <-ctx.Done():
		log.Info("stopping: draining services")
	case msg := <-failed:
		return fmt.Errorf("%s", msg)
	case err := <-botsDone:
		if err != nil {
			return fmt.Errorf("bots: %w", err)
		}
		log.Info("bots finished; the stack keeps running until Ctrl-C")
		select {
		case <-ctx.Done():
		case msg := <-failed:
			return fmt.Errorf("%s", msg)
		}
	}
	return nil
}

// localAddr turns a listen address (":7000") into one to dial ("127.0.0.1:7000").
func localAddr(listen string) string {
	if strings.HasPrefix(listen, ":") {
		return "127.0.0.1" + listen
	}
	return listen
}

// servePlay serves the browser demo (stack/internal/play) on addr until ctx
// ends and returns its URL. A taken port only costs the demo: the stack runs on.
func servePlay(ctx context.Context, log *slog.Logger, addr, wsAddr string) string {
	_, p, err := net.SplitHostPort(wsAddr)
	wsPort, _ := strconv.Atoi(p)
	if err != nil || wsPort == 0 {
		log.Warn("browser demo not served: it needs a fixed --ws-addr port", "ws_addr", wsAddr)
		return "(off: no WebSocket port)"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("browser demo not served: port taken", "addr", addr, "err", err)
		return "(off: " + addr + " taken)"
	}
	srv := &http.Server{Handler: play.Handler(play.Config{WSPort: wsPort}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return "http://" + addr + "/play/"
}
