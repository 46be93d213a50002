package deploy

import (
	"fmt"
	"math"
	"strconv"
	"testing"
)

// TraceSampleRatio is the share of client commands each environment traces
// (the gateway's REALM_TRACE_SAMPLE_RATIO; docs/observability.md#sampling):
// every command on a developer's machine, a tenth in staging, a hundredth in
// prod, where the rate is highest and the traces are for the slow and the
// refused (refusals are traced whatever the ratio).
var TraceSampleRatio = map[string]float64{"compose": 1, "dev": 1, "staging": 0.1, "prod": 0.01}

// samplingProblems checks the tracing settings of one environment, given
// each service's environment: the gateway's ratio is the environment's and
// a valid one (0..1, what telemetry.NewHeadSampler accepts; the deploy
// module does not import telemetry, which would pull in the Prometheus
// client), and the gateway, world and
// persist export to the same OTLP endpoint (a trace needs all three; a
// ratio without an endpoint traces nothing), which staging and prod set.
func samplingProblems(env string, svcEnv map[string]map[string]string) []string {
	var out []string
	bad := func(f string, a ...any) { out = append(out, fmt.Sprintf(env+": "+f, a...)) }
	v, ok := svcEnv["gateway"]["REALM_TRACE_SAMPLE_RATIO"]
	ratio, err := strconv.ParseFloat(v, 64)
	switch {
	case !ok:
		bad("gateway: REALM_TRACE_SAMPLE_RATIO is not set (the default would apply, not the environment's %v)", TraceSampleRatio[env])
	case err != nil:
		bad("gateway: REALM_TRACE_SAMPLE_RATIO=%q: %v", v, err)
	default:
		if math.IsNaN(ratio) || ratio < 0 || ratio > 1 {
			bad("gateway: REALM_TRACE_SAMPLE_RATIO=%v: want 0..1", ratio)
		}
		if ratio != TraceSampleRatio[env] {
			bad("gateway: REALM_TRACE_SAMPLE_RATIO=%v, want %v", ratio, TraceSampleRatio[env])
		}
	}
	ep := svcEnv["gateway"]["REALM_OTLP_ENDPOINT"]
	for _, s := range []string{"world", "persist"} {
		if e := svcEnv[s]["REALM_OTLP_ENDPOINT"]; e != ep {
			bad("%s: REALM_OTLP_ENDPOINT %q, the gateway's is %q: the trace would stop at one of them", s, e, ep)
		}
	}
	if ep == "" && (env == "staging" || env == "prod") {
		bad("no REALM_OTLP_ENDPOINT: nothing is traced")
	}
	return out
}

// overlayServiceEnv is the environment of each Realmstream Deployment's
// container in an overlay.
func overlayServiceEnv(t *testing.T, env string) map[string]map[string]string {
	t.Helper()
	objs := buildOverlay(t, env)
	out := map[string]map[string]string{}
	for _, s := range Services {
		e, err := ContainerEnv(objs, dep(objs, s).Spec.Template.Spec.Containers[0])
		if err != nil {
			t.Fatal(err)
		}
		out[s] = map[string]string{}
		for k, v := range e {
			out[s][k] = v.Value
		}
	}
	return out
}

// TestTraceSampleRatioPerEnvironment: compose and each overlay trace the
// share of commands TraceSampleRatio gives them, with every service
// exporting where the gateway does.
func TestTraceSampleRatioPerEnvironment(t *testing.T) {
	for _, env := range Overlays {
		for _, m := range samplingProblems(env, overlayServiceEnv(t, env)) {
			t.Error(m)
		}
	}
	p := loadCompose(t)
	for _, world := range []string{"world-1", "world-2"} {
		svcEnv := map[string]map[string]string{"gateway": ComposeEnv(p.Services["gateway"]),
			"world": ComposeEnv(p.Services[world]), "persist": ComposeEnv(p.Services["persist"])}
		for _, m := range samplingProblems("compose", svcEnv) {
			t.Error(world + ": " + m)
		}
	}
}

// TestSamplingChecksCatchFixtures: the sampling check fails a wrong ratio,
// an invalid one, a missing one, and a service exporting elsewhere.
func TestSamplingChecksCatchFixtures(t *testing.T) {
	good := func() map[string]map[string]string {
		ep := "http://otel-collector:4318/v1/traces"
		return map[string]map[string]string{
			"gateway": {"REALM_TRACE_SAMPLE_RATIO": "0.01", "REALM_OTLP_ENDPOINT": ep},
			"world":   {"REALM_OTLP_ENDPOINT": ep}, "persist": {"REALM_OTLP_ENDPOINT": ep},
		}
	}
	if p := samplingProblems("prod", good()); len(p) != 0 {
		t.Fatalf("the good fixture fails: %v", p)
	}
	for name, f := range map[string]func(map[string]map[string]string){
		"staging's ratio in prod": func(e map[string]map[string]string) { e["gateway"]["REALM_TRACE_SAMPLE_RATIO"] = "0.1" },
		"ratio above 1":           func(e map[string]map[string]string) { e["gateway"]["REALM_TRACE_SAMPLE_RATIO"] = "10" },
		"not a number":            func(e map[string]map[string]string) { e["gateway"]["REALM_TRACE_SAMPLE_RATIO"] = "1%" },
		"no ratio":                func(e map[string]map[string]string) { delete(e["gateway"], "REALM_TRACE_SAMPLE_RATIO") },
		"persist exports nowhere": func(e map[string]map[string]string) { e["persist"]["REALM_OTLP_ENDPOINT"] = "" },
		"no endpoint":             func(e map[string]map[string]string) { e["gateway"]["REALM_OTLP_ENDPOINT"] = "" },
	} {
		e := good()
		f(e)
		if p := samplingProblems("prod", e); len(p) == 0 {
			t.Errorf("%s: no problem found", name)
		}
	}
}
