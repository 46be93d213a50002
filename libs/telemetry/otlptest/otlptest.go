// Package otlptest is an OTLP/HTTP trace receiver for tests: a real HTTP
// server in the test process that accepts what the OpenTelemetry OTLP/HTTP
// exporter sends (POST /v1/traces, protobuf, optionally gzip), decodes the
// ExportTraceServiceRequest and keeps every span, so a test can check the
// trace the services exported, whether they run in the test process or as
// separate processes pointed at URL. Only tests import it.
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	Service  string // resource attribute service.name
	Scope    string // instrumentation scope
	Name     string
	TraceID  string // hex
	SpanID   string // hex
	ParentID string // hex, "" for a root
	Start    uint64 // unix ns
	End      uint64 // unix ns
	Attrs    map[string]string
	Links    []Link
	Events   []string
	Error    bool // status code ERROR
}

// Link is one span link of a received span.
type Link struct {
	TraceID, SpanID string
	Attrs           map[string]string
}

// Receiver is the running receiver.
type Receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	spans   []Span
	exports int
}

// Start starts a receiver on a free loopback port; Close stops it.
func Start() *Receiver {
	r := &Receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.export)
	r.srv = httptest.NewServer(mux)
	return r
}

// URL is the endpoint to give the exporter (--otlp-endpoint): the base URL;
// the exporter appends /v1/traces (telemetry.TracesURL).
func (r *Receiver) URL() string { return r.srv.URL }

// Close stops the server.
func (r *Receiver) Close() { r.srv.Close() }

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Exports is the number of export requests decoded.
func (r *Receiver) Exports() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exports
}

func (r *Receiver) export(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "content type "+ct+": want application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	var msg coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range msg.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, flatten(service, ss.GetScope().GetName(), s))
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.exports++
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func flatten(service, scope string, s *tracepb.Span) Span {
	out := Span{Service: service, Scope: scope, Name: s.GetName(), TraceID: hex.EncodeToString(s.GetTraceId()),
		SpanID: hex.EncodeToString(s.GetSpanId()), ParentID: hex.EncodeToString(s.GetParentSpanId()),
		Start: s.GetStartTimeUnixNano(), End: s.GetEndTimeUnixNano(), Attrs: attrs(s.GetAttributes()),
		Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR}
	for _, l := range s.GetLinks() {
		out.Links = append(out.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId()), Attrs: attrs(l.GetAttributes())})
	}
	for _, e := range s.GetEvents() {
		out.Events = append(out.Events, e.GetName())
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	default:
		return fmt.Sprint(v)
	}
}

// Trace returns the spans of traceID, by start time.
func (r *Receiver) Trace(traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// Find returns the spans named name whose attribute key equals value.
func (r *Receiver) Find(name, key, value string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.Name == name && s.Attrs[key] == value {
			out = append(out, s)
		}
	}
	return out
}

// LinkedTo returns the spans named name with a link to (traceID, spanID).
func (r *Receiver) LinkedTo(name, traceID, spanID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.Name != name {
			continue
		}
		for _, l := range s.Links {
			if l.TraceID == traceID && l.SpanID == spanID {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// Describe renders spans one a line, for test failure messages.
func Describe(spans []Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "%s %s/%s trace=%s span=%s parent=%s links=%d attrs=%v\n", s.Service, s.Scope, s.Name, s.TraceID, s.SpanID, s.ParentID, len(s.Links), s.Attrs)
	}
	return b.String()
}
