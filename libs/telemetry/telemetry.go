// Package telemetry wires OpenTelemetry tracing, trace propagation through
// NATS headers, and slog logs that carry the trace id.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is the W3C trace-context propagator used on every NATS message.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Propagator returns the propagator used on NATS headers.
func Propagator() propagation.TextMapPropagator { return propagator }

// HeaderCarrier adapts nats.Header to the OpenTelemetry carrier interface.
type HeaderCarrier nats.Header

// Get returns the first value of key.
func (h HeaderCarrier) Get(key string) string { return nats.Header(h).Get(key) }

// Set sets key to value.
func (h HeaderCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }

// Keys lists the header names.
func (h HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(h))
	for k := range h {
		out = append(out, k)
	}
	return out
}

// Inject writes ctx's span context into h (traceparent/tracestate).
func Inject(ctx context.Context, h nats.Header) {
	propagator.Inject(ctx, HeaderCarrier(h))
}

// Extract returns ctx with the remote span context found in h.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return propagator.Extract(ctx, HeaderCarrier(h))
}

// Setup returns a tracer provider for service with the house sampler
// (Sampler) and a shutdown function. Spans are exported by exporter when one
// is given; without one they are recorded but not exported (tests read them
// from the span context).
func Setup(service string, exporter sdktrace.SpanExporter) (*sdktrace.TracerProvider, func(context.Context) error) {
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSampler(Sampler()),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service)))}
	if exporter != nil {
		opts = append(opts, sdktrace.WithBatcher(exporter))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTextMapPropagator(propagator)
	return tp, tp.Shutdown
}

// TraceHandler is a slog.Handler that adds trace_id and span_id of the
// record's context to every record.
type TraceHandler struct{ slog.Handler }

// Handle adds the trace attributes and forwards the record.
func (h TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper.
func (h TraceHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return TraceHandler{h.Handler.WithAttrs(a)}
}

// WithGroup keeps the wrapper.
func (h TraceHandler) WithGroup(name string) slog.Handler {
	return TraceHandler{h.Handler.WithGroup(name)}
}

// NewLogger returns a JSON slog logger (text when format is "text") at level,
// tagged with the service name and carrying trace ids.
func NewLogger(service, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if format == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	return slog.New(TraceHandler{h}).With("service", service)
}

// TracesURL returns the OTLP/HTTP traces URL for endpoint: the OTLP exporter
// posts to exactly the URL it is given, so a bare collector address such as
// http://otel:4318 gets the standard /v1/traces path (spans sent to "/" would
// be lost without an error).
func TracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return endpoint
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String()
}

// NewExporter returns the OTLP/HTTP span exporter that posts to
// TracesURL(endpoint).
func NewExporter(ctx context.Context, endpoint string) (sdktrace.SpanExporter, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(TracesURL(endpoint)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter for %s: %w", endpoint, err)
	}
	return exp, nil
}

// StartTracing installs the global tracer provider of service. With an
// endpoint, spans are exported over OTLP/HTTP to TracesURL(endpoint); without
// one tracing is off: the global provider stays the no-op one and the
// gateway starts no trace (its HeadSampler is off), so tracing costs nothing.
// The returned function flushes and stops the provider.
func StartTracing(ctx context.Context, service, endpoint string) (func(context.Context) error, error) {
	if endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	exporter, err := NewExporter(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	tp, shutdown := Setup(service, exporter)
	otel.SetTracerProvider(tp)
	return shutdown, nil
}
