package otlptest

import (
	"fmt"
)

// CommandTrace is the trace of one client command from the gateway to its
// stored row, as Realmstream exports it (docs/observability.md):
//
//	Gateway  gateway.command          root of the command's trace
//	Decide   world.decide             child of Gateway
//	Row      persist.row              child of Decide, with realm.row_key
//	Commit   world.commit             the tick's commit: its own trace, a link to Decide
//	Write    persist.write            the stored batch: its own trace, a link to Decide
type CommandTrace struct {
	Gateway, Decide, Row, Commit, Write Span
}

// RowKey is the key of the command's event row (zone/seq/index).
func (c CommandTrace) RowKey() string { return c.Row.Attrs["realm.row_key"] }

// CommandTrace finds the trace of commandID and checks its shape: one trace
// id from the gateway to the row, each span the child of the one before,
// started in that order, each with the command id; the tick commit and the
// batch write linked to the command's world.decide span. It returns an
// error naming what is missing (poll it: spans arrive in export batches).
func (r *Receiver) CommandTrace(commandID string) (CommandTrace, error) {
	var ct CommandTrace
	gw := r.Find("gateway.command", "realm.command_id", commandID)
	if len(gw) != 1 {
		return ct, fmt.Errorf("%d gateway.command spans of %s, want 1", len(gw), commandID)
	}
	ct.Gateway = gw[0]
	spans := r.Trace(ct.Gateway.TraceID)
	one := func(name, parent string) (Span, error) {
		var got []Span
		for _, s := range spans {
			if s.Name == name {
				got = append(got, s)
			}
		}
		if len(got) != 1 {
			return Span{}, fmt.Errorf("%d %s spans in trace %s, want 1:\n%s", len(got), name, ct.Gateway.TraceID, Describe(spans))
		}
		if got[0].ParentID != parent {
			return Span{}, fmt.Errorf("%s's parent is %s, want %s:\n%s", name, got[0].ParentID, parent, Describe(spans))
		}
		if got[0].Attrs["realm.command_id"] != commandID {
			return Span{}, fmt.Errorf("%s has command id %q, want %q", name, got[0].Attrs["realm.command_id"], commandID)
		}
		return got[0], nil
	}
	var err error
	if ct.Decide, err = one("world.decide", ct.Gateway.SpanID); err != nil {
		return ct, err
	}
	if ct.Row, err = one("persist.row", ct.Decide.SpanID); err != nil {
		return ct, err
	}
	if ct.RowKey() == "" {
		return ct, fmt.Errorf("persist.row without realm.row_key: %v", ct.Row.Attrs)
	}
	commits := r.LinkedTo("world.commit", ct.Gateway.TraceID, ct.Decide.SpanID)
	if len(commits) != 1 || commits[0].TraceID == ct.Gateway.TraceID {
		return ct, fmt.Errorf("%d world.commit spans linked to the decide span (want 1, in a trace of its own):\n%s", len(commits), Describe(commits))
	}
	ct.Commit = commits[0]
	writes := r.LinkedTo("persist.write", ct.Gateway.TraceID, ct.Decide.SpanID)
	if len(writes) == 0 {
		return ct, fmt.Errorf("no persist.write span linked to the decide span")
	}
	ct.Write = writes[len(writes)-1]
	for _, w := range writes {
		if len(ct.Row.Links) > 0 && w.SpanID == ct.Row.Links[0].SpanID {
			ct.Write = w
		}
	}
	order := []Span{ct.Gateway, ct.Decide, ct.Commit, ct.Row}
	for i := 1; i < len(order); i++ {
		if order[i].Start < order[i-1].Start {
			return ct, fmt.Errorf("%s starts before %s", order[i].Name, order[i-1].Name)
		}
	}
	if ct.Decide.End > ct.Commit.Start {
		return ct, fmt.Errorf("world.commit starts before the decide span ends")
	}
	return ct, nil
}
