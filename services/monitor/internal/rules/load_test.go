package rules

import (
	"strings"
	"testing"
)

func TestDefaultsLoad(t *testing.T) {
	set, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cache_hit_ratio_low", "connections_near_max", "default_partition_rows", "partitions_ahead_low",
		"consumer_lag_growing", "dead_tuples_high", "long_transaction", "shard_not_reporting", "zone_without_owner"}
	have := map[string]*Rule{}
	for _, r := range set.Rules {
		have[r.Name] = r
	}
	for _, w := range want {
		if have[w] == nil {
			t.Errorf("default rules lack %s", w)
		}
	}
	if r := have["shard_not_reporting"]; r == nil || r.Severity.String() != "SEVERITY_CRITICAL" {
		t.Errorf("shard_not_reporting should be critical")
	}
	if r := have["zone_without_owner"]; r == nil || r.Scope != ScopeZone {
		t.Errorf("zone_without_owner should have zone scope")
	}
}

// TestBadRules: every problem is reported, each naming the rule and what is wrong.
func TestBadRules(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"empty", ``, []string{"empty"}},
		{"no rules", "rules: []\n", []string{"no rules"}},
		{"unknown field", "rules:\n  - name: a\n    severty: warning\n", []string{"field severty not found"}},
		{"not yaml", "rules: [\n", []string{"rules file t.yaml"}},
		{"unknown figure", `rules:
  - name: lag
    expr: consumer_lagg > 5
    severity: warning
    message: x
`, []string{`rule "lag" (#1): expr: unknown name consumer_lagg`}},
		{"not boolean", `rules:
  - name: lag
    expr: consumer_lag + 5
    severity: warning
    message: x
`, []string{`rule "lag" (#1): expr: expected bool`}},
		{"window function", `rules:
  - name: lag
    expr: 'growing("consumer_lagg", "2x")'
    severity: warning
    message: x
`, []string{`unknown figure "consumer_lagg"`, `"2x"): not a positive duration`}},
		{"many problems", `rules:
  - name: ok_rule
    expr: up
    severity: info
    message: ok
  - name: Bad-Name
    scope: galaxy
    expr: up
    for: soon
    severity: fatal
    message: x
  - expr: up
    severity: warning
  - name: ok_rule
    expr: up
    severity: warning
    message: '{{.nosuchfigure}}'
    for: -1s
`, []string{
			`rule "Bad-Name" (#2): name "Bad-Name": want lower-case`,
			`rule "Bad-Name" (#2): scope "galaxy": want one of shard, zone, instance, global`,
			`rule "Bad-Name" (#2): severity "fatal": want info, warning or critical`,
			`rule "Bad-Name" (#2): for "soon": not a duration`,
			`rule #3: name: missing`,
			`rule #3: message: missing`,
			`rule "ok_rule" (#4): name: duplicate of rule #1`,
			`rule "ok_rule" (#4): for "-1s": must not be negative`,
			`rule "ok_rule" (#4): message:`, `nosuchfigure`,
		}},
		{"zone scope variables", `rules:
  - name: z
    scope: zone
    expr: cache_hit_ratio < 0.5
    severity: warning
    message: x
`, []string{`rule "z" (#1): expr: unknown name cache_hit_ratio`}},
		{"template syntax", `rules:
  - name: t
    expr: up
    severity: warning
    message: "{{.shard"
`, []string{`rule "t" (#1): message:`}},
		{"value not numeric", `rules:
  - name: v
    expr: up
    value: shard
    severity: warning
    message: x
`, []string{`rule "v" (#1): value:`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(c.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile("/nonexistent/rules.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/rules.yaml") {
		t.Fatalf("err = %v", err)
	}
}
