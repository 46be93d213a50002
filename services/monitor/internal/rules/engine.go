package rules

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
)

// Alert states.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Active is an alert that is pending or firing.
type Active struct {
	Rule     string            `json:"rule"`
	Severity string            `json:"severity"`
	State    string            `json:"state"` // pending or firing
	Target   string            `json:"target"`
	Labels   map[string]string `json:"labels"`
	Message  string            `json:"message"`
	Help     string            `json:"help,omitempty"`
	Value    float64           `json:"value"`
	Since    time.Time         `json:"since"` // when the expression started to hold
	FiredAt  time.Time         `json:"fired_at,omitzero"`
}

// Transition is an alert that fired or resolved in one evaluation.
type Transition struct {
	Rule    *Rule
	State   string // firing or resolved
	Target  string
	Labels  map[string]string // rule labels + target labels
	Message string
	Value   float64
	Since   time.Time
	At      time.Time
}

// Engine keeps the state of every (rule, target) pair between evaluations.
//
// Concurrency: Eval is called by one goroutine (the evaluation loop); Active
// may be called from any goroutine. mu guards states.
type Engine struct {
	set *Set

	mu     sync.Mutex
	states map[string]*Active // key rule + "|" + target
}

// NewEngine returns an engine for a validated set.
func NewEngine(set *Set) *Engine { return &Engine{set: set, states: map[string]*Active{}} }

// Rules returns the engine's rules.
func (e *Engine) Rules() []*Rule { return e.set.Rules }

// Restore marks alerts as already firing (from a previous run), so that an
// alert still true after a restart is not announced twice. Alerts whose rule
// no longer exists are ignored.
func (e *Engine) Restore(alerts []Active) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range alerts {
		if e.rule(a.Rule) == nil || a.State != StateFiring {
			continue
		}
		a := a
		e.states[a.Rule+"|"+a.Target] = &a
	}
}

func (e *Engine) rule(name string) *Rule {
	for _, r := range e.set.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// EvalError is a rule that failed at run time on one target; the rule is
// treated as not holding there.
type EvalError struct {
	Rule, Target string
	Err          error
}

func (e EvalError) Error() string { return fmt.Sprintf("rule %q on %s: %v", e.Rule, e.Target, e.Err) }

// Eval evaluates every rule on every target of its scope at now and returns
// the alerts that fired or resolved, plus any run-time errors. Rules of the
// frozen scopes are not evaluated and keep their state (the monitor freezes
// the heartbeat scopes until it has had time to hear every instance).
func (e *Engine) Eval(now time.Time, targets map[Scope][]Target, frozen ...Scope) ([]Transition, []EvalError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	var errs []EvalError
	seen := map[string]bool{}
	isFrozen := map[Scope]bool{}
	for _, sc := range frozen {
		isFrozen[sc] = true
	}
	for _, r := range e.set.Rules {
		if isFrozen[r.Scope] {
			for key, st := range e.states {
				if st.Rule == r.Name {
					seen[key] = true
				}
			}
			continue
		}
		for _, t := range targets[r.Scope] {
			key := r.Name + "|" + t.Key
			seen[key] = true
			v, err := expr.Run(r.prog, t.Env)
			holds := false
			if err != nil {
				errs = append(errs, EvalError{Rule: r.Name, Target: t.Key, Err: err})
			} else {
				holds = v.(bool)
			}
			st := e.states[key]
			if !holds {
				if st != nil {
					if st.State == StateFiring {
						st.Message = r.renderResolved(t.Env, st.Message)
						st.Value = r.eval(t.Env, st.Value)
						out = append(out, transition(r, st, StateResolved, now))
					}
					delete(e.states, key)
				}
				continue
			}
			if st == nil {
				st = &Active{Rule: r.Name, Severity: r.SevName, State: StatePending, Target: t.Key,
					Labels: mergeLabels(r.Labels, t.Labels), Help: r.Help, Since: now}
				e.states[key] = st
			}
			st.Message = r.render(t.Env, st.Message)
			st.Value = r.eval(t.Env, st.Value)
			if st.State == StatePending && now.Sub(st.Since) >= r.For {
				st.State, st.FiredAt = StateFiring, now
				out = append(out, transition(r, st, StateFiring, now))
			}
		}
	}
	// Targets that disappeared (a forgotten shard, a zone no longer listed):
	// their alerts resolve.
	for key, st := range e.states {
		if seen[key] {
			continue
		}
		if st.State == StateFiring {
			if r := e.rule(st.Rule); r != nil {
				st.Message = "resolved: " + st.Message + " (target gone)"
				out = append(out, transition(r, st, StateResolved, now))
			}
		}
		delete(e.states, key)
	}
	return out, errs
}

func transition(r *Rule, st *Active, state string, now time.Time) Transition {
	return Transition{Rule: r, State: state, Target: st.Target, Labels: st.Labels, Message: st.Message,
		Value: st.Value, Since: st.Since, At: now}
}

// Active returns the pending and firing alerts, firing first, then by severity and rule.
func (e *Engine) Active() []Active {
	e.mu.Lock()
	out := make([]Active, 0, len(e.states))
	for _, st := range e.states {
		a := *st
		out = append(out, a)
	}
	e.mu.Unlock()
	rank := map[string]int{"critical": 0, "warning": 1, "info": 2}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.State != b.State {
			return a.State == StateFiring
		}
		if a.Severity != b.Severity {
			return rank[a.Severity] < rank[b.Severity]
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Target < b.Target
	})
	return out
}

func (r *Rule) render(env map[string]any, fallback string) string {
	var b strings.Builder
	if err := r.tmpl.Execute(&b, env); err != nil {
		if fallback != "" {
			return fallback
		}
		return r.Name + ": " + err.Error()
	}
	return b.String()
}

// renderResolved is the text of a resolution: the rule's resolved template
// over the recovered figures, or "resolved: " and the last firing text (the
// firing template rendered now would describe the recovered state as an
// outage: "stopped sending heartbeats 0s ago").
func (r *Rule) renderResolved(env map[string]any, firing string) string {
	if r.done == nil {
		return "resolved: " + firing
	}
	var b strings.Builder
	if err := r.done.Execute(&b, env); err != nil {
		return "resolved: " + firing
	}
	return b.String()
}

func (r *Rule) eval(env map[string]any, fallback float64) float64 {
	if r.value == nil {
		return fallback
	}
	v, err := expr.Run(r.value, env)
	if err != nil {
		return fallback
	}
	f, ok := v.(float64)
	if !ok {
		return fallback
	}
	return f
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
