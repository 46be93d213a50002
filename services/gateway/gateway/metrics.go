package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/services/gateway/internal/ingest"
	"github.com/realmstream/realmstream/services/gateway/internal/sendq"
)

// metrics are the gateway's Prometheus series (registered on the ops server).
type metrics struct {
	conns        *prometheus.GaugeVec   // by transport
	accepted     prometheus.Counter     // commands enqueued
	acks         *prometheus.CounterVec // by duplicate
	busy         prometheus.Counter     // Busy answers
	errors       *prometheus.CounterVec // Error packets sent, by code
	bytes        *prometheus.CounterVec // by direction (in|out)
	pubLatency   prometheus.Histogram   // packet received -> PubAck
	batch        prometheus.Histogram   // items per publisher batch
	cmdBatch     prometheus.Histogram   // commands per published group (--command-batch)
	retries      prometheus.Counter     // publish retries
	slow         prometheus.Counter     // slow consumers disconnected
	updates      prometheus.Counter     // cell views forwarded to clients
	updateFrames prometheus.Counter     // update frames queued to clients (protocol 3: one per client per tick)
	writes       prometheus.Counter     // socket writes to clients (each carries a batch of packets)
	disconnects  prometheus.Counter     // Disconnect commands published for connections closed without Leave
	notices      *prometheus.CounterVec // session notices by kind
	dropped      *prometheus.CounterVec // connections closed, by reason
	codes        map[schema.ErrorCode]prometheus.Counter

	// Children resolved once: the per-packet paths do no label lookups.
	bytesIn, bytesOut  prometheus.Counter
	acksDup, acksFresh prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, ringDepth, inflight func() float64) *metrics {
	m := &metrics{
		conns:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "realm_gateway_connections", Help: "Open client connections by transport."}, []string{"transport"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_gateway_commands_accepted_total", Help: "Client commands accepted into the ring."}),
		acks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_gateway_acks_total", Help: "JetStream PubAcks forwarded to clients, by duplicate flag."}, []string{"duplicate"}),
		busy:     prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_gateway_busy_total", Help: "Commands answered Busy (ring full or too many pending acks)."}),
		errors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_gateway_errors_total", Help: "Error packets sent to clients, by code."}, []string{"code"}),
		bytes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_gateway_bytes_total", Help: "Client payload bytes by direction."}, []string{"direction"}),
		pubLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_gateway_publish_latency_seconds", Help: "From packet received to JetStream PubAck.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16)}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_gateway_publish_batch_size", Help: "Items drained from the ring per publisher batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		cmdBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_gateway_command_batch_size", Help: "Commands per JetStream message published from a zone's batch group (--command-batch; 1: a group published alone).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8)}),
		retries:      prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_gateway_publish_retries_total", Help: "Publishes retried with the same msg id."}),
		slow:         prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_gateway_slow_consumers_total", Help: "Clients disconnected as slow consumers (send queue over its packet, byte or age limit)."}),
		updates:      prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_gateway_updates_forwarded_total", Help: "Zone update cell views queued to clients (after AOI filtering)."}),
		updateFrames: prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_gateway_update_frames_total", Help: "Update frames queued to clients: one per client per zone tick (protocol 3, a few if a tick exceeds the frame bound), one per cell (protocols 1, 2)."}),
		disconnects:  prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_gateway_disconnects_sent_total", Help: "Disconnect commands sent to the world for connections closed without Leave."}),
		writes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_gateway_socket_writes_total", Help: "Socket writes to clients; each writes every packet queued for the client at that moment."}),
		notices:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_gateway_session_notices_total", Help: "Session notices from the world, by kind."}, []string{"kind"}),
		dropped:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_gateway_disconnects_total", Help: "Client connections closed, by reason."}, []string{"reason"}),
		codes:        map[schema.ErrorCode]prometheus.Counter{},
	}
	m.bytesIn, m.bytesOut = m.bytes.WithLabelValues("in"), m.bytes.WithLabelValues("out")
	m.acksDup, m.acksFresh = m.acks.WithLabelValues("true"), m.acks.WithLabelValues("false")
	for code, name := range schema.ErrorCode_name {
		m.codes[schema.ErrorCode(code)] = m.errors.WithLabelValues(name)
	}
	reg.MustRegister(m.conns, m.accepted, m.acks, m.busy, m.errors, m.bytes, m.pubLatency, m.batch, m.cmdBatch, m.retries, m.slow, m.updates, m.updateFrames, m.writes, m.disconnects, m.notices, m.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "realm_gateway_ring_depth", Help: "Items in the MPSC ring."}, ringDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "realm_gateway_inflight_acks", Help: "JetStream publishes awaiting their PubAck."}, inflight),
	)
	return m
}

// ingest is the publisher's share of the series.
func (m *metrics) ingest() ingest.Metrics {
	return ingest.Metrics{Batch: m.batch, Retries: m.retries, Latency: m.pubLatency, AcksDup: m.acksDup, AcksFresh: m.acksFresh, Commands: m.cmdBatch}
}

// sendq is the connections' outgoing share of the series.
func (m *metrics) sendq() *sendq.Metrics {
	return &sendq.Metrics{BytesOut: m.bytesOut, Writes: m.writes, Dropped: m.dropped, Slow: m.slow, SlowCode: m.codes[schema.ErrorCode_ERROR_CODE_SLOW_CONSUMER]}
}

func (m *metrics) errorCode(c schema.ErrorCode) {
	if ctr, ok := m.codes[c]; ok {
		ctr.Inc()
		return
	}
	m.errors.WithLabelValues(c.String()).Inc()
}
