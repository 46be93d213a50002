// Package rules loads, validates and evaluates the monitor's alert rules.
//
// A rule is a boolean expression (github.com/expr-lang/expr, which is
// side-effect free, bounded and type-checked at compile time) evaluated on
// every target of its scope (each shard, each zone, each service instance, or
// once globally) at every evaluation tick. When it holds continuously for the
// rule's `for:` duration the alert fires; when it stops holding, or its target
// disappears, the alert resolves. Rules are checked completely at load time
// (names, scopes, expressions against the figures of their scope, window
// function arguments, durations, severities, message templates), so the
// service never starts with a rule that can only fail later.
package rules

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/realmstream/realmstream/libs/schema"
)

// DefaultYAML is the embedded default rules file (also shipped as
// services/monitor/internal/rules/default_rules.yaml, the template for a user's own file).
//
//go:embed default_rules.yaml
var DefaultYAML []byte

// Scope is what a rule is evaluated on.
type Scope string

// Scopes.
const (
	ScopeShard    Scope = "shard"
	ScopeZone     Scope = "zone"
	ScopeInstance Scope = "instance"
	ScopeGlobal   Scope = "global"
)

var scopes = []Scope{ScopeShard, ScopeZone, ScopeInstance, ScopeGlobal}

// File is the YAML document.
type File struct {
	Rules []RuleSpec `yaml:"rules"`
}

// RuleSpec is one rule as written in YAML.
type RuleSpec struct {
	Name     string `yaml:"name"`
	Scope    string `yaml:"scope"`    // shard (default), zone, instance, global
	Expr     string `yaml:"expr"`     // boolean expression over the scope's figures
	For      string `yaml:"for"`      // how long expr must hold before firing; "" = at once
	Severity string `yaml:"severity"` // info, warning, critical
	Message  string `yaml:"message"`  // text/template over the same figures
	// Resolved is the text of the resolved notification (a template over the
	// figures at resolution). Default: "resolved: " + the last firing message,
	// which never describes the recovered state as if it were current.
	Resolved string            `yaml:"resolved"`
	Value    string            `yaml:"value"`  // optional numeric expression reported as the alert's value
	Labels   map[string]string `yaml:"labels"` // extra labels on the alert
	Help     string            `yaml:"help"`   // optional: what to do about it (shown on the dashboard)
}

// Rule is a validated, compiled rule.
type Rule struct {
	RuleSpec
	Scope    Scope
	For      time.Duration
	Severity schema.Severity
	SevName  string

	prog  *vm.Program
	value *vm.Program
	tmpl  *template.Template
	done  *template.Template // Resolved, or nil
}

// Set is a validated rule set.
type Set struct {
	Source string
	Rules  []*Rule
}

var (
	nameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Severities maps severity names to the schema enum; the name is the last
// token of the alert subject (alerts.<severity>).
var Severities = map[string]schema.Severity{
	"info":     schema.Severity_SEVERITY_INFO,
	"warning":  schema.Severity_SEVERITY_WARNING,
	"critical": schema.Severity_SEVERITY_CRITICAL,
}

// LoadFile reads and validates a rules file; path "" means the embedded defaults.
func LoadFile(path string) (*Set, error) {
	if path == "" {
		return Parse("embedded default rules", DefaultYAML)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return Parse(path, b)
}

// Parse validates a rules document. The error lists every problem found, one
// per line, each naming the rule (by name and position) and what is wrong.
func Parse(source string, doc []byte) (*Set, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("rules file %s: empty: want a top-level 'rules:' list", source)
		}
		return nil, fmt.Errorf("rules file %s: %w", source, err)
	}
	if len(f.Rules) == 0 {
		return nil, fmt.Errorf("rules file %s: no rules: want a top-level 'rules:' list with at least one rule", source)
	}
	set := &Set{Source: source}
	var errs []error
	seen := map[string]int{}
	for i, spec := range f.Rules {
		r, problems := compile(spec)
		id := fmt.Sprintf("rule #%d", i+1)
		if spec.Name != "" {
			id = fmt.Sprintf("rule %q (#%d)", spec.Name, i+1)
			if j, dup := seen[spec.Name]; dup {
				problems = append(problems, fmt.Sprintf("name: duplicate of rule #%d", j))
			}
			seen[spec.Name] = i + 1
		}
		for _, p := range problems {
			errs = append(errs, fmt.Errorf("rules file %s: %s: %s", source, id, p))
		}
		if len(problems) == 0 {
			set.Rules = append(set.Rules, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

func compile(spec RuleSpec) (*Rule, []string) {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	r := &Rule{RuleSpec: spec}

	if spec.Name == "" {
		bad("name: missing")
	} else if !nameRE.MatchString(spec.Name) {
		bad("name %q: want lower-case letters, digits and _ (starting with a letter, at most 63)", spec.Name)
	}
	r.Scope = Scope(spec.Scope)
	if spec.Scope == "" {
		r.Scope = ScopeShard
	}
	env, ok := sampleEnv(r.Scope)
	if !ok {
		bad("scope %q: want one of %s", spec.Scope, scopeList())
	}
	if sev, ok := Severities[spec.Severity]; ok {
		r.Severity, r.SevName = sev, spec.Severity
	} else if spec.Severity == "" {
		bad("severity: missing: want info, warning or critical")
	} else {
		bad("severity %q: want info, warning or critical", spec.Severity)
	}
	if spec.For != "" {
		d, err := time.ParseDuration(spec.For)
		switch {
		case err != nil:
			bad("for %q: not a duration (e.g. 30s, 2m, 1h)", spec.For)
		case d < 0:
			bad("for %q: must not be negative", spec.For)
		default:
			r.For = d
		}
	}
	for k := range spec.Labels {
		if !labelRE.MatchString(k) {
			bad("labels: key %q: want letters, digits and _", k)
		}
	}
	if !ok {
		return r, problems
	}
	if strings.TrimSpace(spec.Expr) == "" {
		bad("expr: missing")
	} else {
		prog, err := compileExpr(spec.Expr, r.Scope, env, expr.AsBool())
		if err != nil {
			bad("expr: %v", err)
		} else {
			r.prog = prog
			if _, err := expr.Run(prog, env); err != nil {
				bad("expr: fails on a zero sample: %v", err)
			}
		}
	}
	if strings.TrimSpace(spec.Value) != "" {
		prog, err := compileExpr(spec.Value, r.Scope, env, expr.AsFloat64())
		if err != nil {
			bad("value: %v", err)
		} else {
			r.value = prog
		}
	}
	if strings.TrimSpace(spec.Message) == "" {
		bad("message: missing")
	} else {
		t, err := template.New(spec.Name).Funcs(tmplFuncs).Option("missingkey=error").Parse(spec.Message)
		if err != nil {
			bad("message: %v", err)
		} else if err := t.Execute(io.Discard, env); err != nil {
			bad("message: %v", err)
		} else {
			r.tmpl = t
		}
	}
	if strings.TrimSpace(spec.Resolved) != "" {
		t, err := template.New(spec.Name + ".resolved").Funcs(tmplFuncs).Option("missingkey=error").Parse(spec.Resolved)
		if err != nil {
			bad("resolved: %v", err)
		} else if err := t.Execute(io.Discard, env); err != nil {
			bad("resolved: %v", err)
		} else {
			r.done = t
		}
	}
	return r, problems
}

func scopeList() string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ", ")
}

// compileExpr compiles src against env and checks the literal arguments of
// the window functions (figure name and duration) so a typo is a load error.
func compileExpr(src string, scope Scope, env map[string]any, opts ...expr.Option) (*vm.Program, error) {
	chk := &windowCheck{scope: scope}
	opts = append([]expr.Option{expr.Env(env), expr.Patch(chk), expr.MaxNodes(2000)}, opts...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	if len(chk.errs) > 0 {
		return nil, errors.Join(chk.errs...)
	}
	return prog, nil
}

// windowCheck is an expr AST visitor that validates calls of the window functions.
type windowCheck struct {
	scope Scope
	errs  []error
}

// Visit checks one node.
func (c *windowCheck) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok {
		return
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || !windowFuncs[id.Value] {
		return
	}
	if len(call.Arguments) != 2 {
		c.errs = append(c.errs, fmt.Errorf("%s(figure, duration): want 2 arguments, got %d", id.Value, len(call.Arguments)))
		return
	}
	name, ok1 := call.Arguments[0].(*ast.StringNode)
	dur, ok2 := call.Arguments[1].(*ast.StringNode)
	if !ok1 || !ok2 {
		c.errs = append(c.errs, fmt.Errorf("%s(figure, duration): both arguments must be string literals, e.g. %s(\"consumer_lag\", \"2m\")", id.Value, id.Value))
		return
	}
	if !knownFigure(name.Value) {
		c.errs = append(c.errs, fmt.Errorf("%s(%q, ...): unknown figure %q (see docs/monitor.md for the list)", id.Value, name.Value, name.Value))
	}
	if d, err := time.ParseDuration(dur.Value); err != nil || d <= 0 {
		c.errs = append(c.errs, fmt.Errorf("%s(..., %q): not a positive duration (e.g. 2m)", id.Value, dur.Value))
	}
}
