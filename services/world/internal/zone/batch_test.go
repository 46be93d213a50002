package zone

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// batchCmd is one command of a batch built by sendBatch.
type batchCmd struct {
	session, player string
	seq             uint64
	cmd             *schema.Command
}

// sendBatch publishes cmds to cmd.<z> as one command batch (what a gateway
// with --command-batch sends) under the message id id.
func (e *env) sendBatch(z, id string, cmds ...batchCmd) {
	e.t.Helper()
	var data []byte
	for _, c := range cmds {
		c.cmd.CommandId = wire.CommandID(c.session, c.seq)
		c.cmd.SessionId, c.cmd.ClientSeq, c.cmd.PlayerId, c.cmd.Zone = c.session, c.seq, c.player, z
		c.cmd.ReceivedAtNs = time.Now().UnixNano()
		b, _ := proto.Marshal(c.cmd)
		data = wire.AppendCommandBatchEntry(data, b)
	}
	m := nats.NewMsg(wire.CommandSubject(z))
	m.Data = data
	new(wire.CommandBatchHeaderBuf).Fill(m.Header, id, len(cmds))
	e.publish(m)
}

func (e *env) publish(m *nats.Msg) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		e.t.Fatalf("publish %s: %v", m.Header.Get(wire.HeaderMsgID), err)
	}
}

// TestCommandBatchDecided: the commands of a batch are decided in order,
// each causing its own event (its own event id), and the batch is acked
// once its tick is committed.
func TestCommandBatchDecided(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	r := e.start(e.config(z))
	defer r.stop(t)
	e.sendBatch(z, "b/gw/boot/1",
		batchCmd{"s", "p", 1, joinCmd(z)}, batchCmd{"t", "q", 1, joinCmd(z)},
		batchCmd{"s", "p", 2, chatCmd("one")}, batchCmd{"s", "p", 3, chatCmd("three")}, batchCmd{"t", "q", 2, chatCmd("two")})
	l := e.waitApplied(z, "s:1", "t:1", "s:2", "s:3", "t:2")
	var order []string
	for _, en := range l {
		if id := en.Event.GetCommandId(); id != "" {
			order = append(order, id)
		}
	}
	if got := strings.Join(order, " "); got != "s:1 t:1 s:2 s:3 t:2" {
		t.Fatalf("events in order %q, want the batch's order", got)
	}
	waitfor.True(t, 10*time.Second, func() error {
		if n := e.pendingAcks(z); n != 0 {
			return fmt.Errorf("%d messages unacked", n)
		}
		return nil
	})
	if a := metric(t, r.m.Commands.WithLabelValues("applied")); a != 5 {
		t.Fatalf("%v commands applied, want 5", a)
	}
}

// TestCommandBatchMalformedRefusedWhole: a batch with one undecodable entry
// is terminated as a whole (counted malformed once): none of its commands
// is applied, not even the valid ones before the bad entry.
func TestCommandBatchMalformedRefusedWhole(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	r := e.start(e.config(z))
	defer r.stop(t)
	good := &schema.Command{CommandId: "s:1", SessionId: "s", ClientSeq: 1, PlayerId: "p", Zone: z, Body: joinCmd(z).Body}
	b, _ := proto.Marshal(good)
	data := wire.AppendCommandBatchEntry(nil, b)
	data = wire.AppendCommandBatchEntry(data, []byte{0xff, 0xff}) // not a Command
	m := nats.NewMsg(wire.CommandSubject(z))
	m.Data = data
	new(wire.CommandBatchHeaderBuf).Fill(m.Header, "b/gw/boot/1", 2)
	e.publish(m)
	e.send(z, "t", 1, "q", joinCmd(z), time.Now()) // behind it: applied
	e.waitApplied(z, "t:1")
	for _, en := range e.log(z) {
		if en.Event.GetCommandId() == "s:1" {
			t.Fatal("a command of a malformed batch was applied")
		}
	}
	if n := metric(t, r.m.Commands.WithLabelValues("malformed")); n != 1 {
		t.Fatalf("malformed %v, want 1 (the batch)", n)
	}
	waitfor.True(t, 10*time.Second, func() error {
		if n := e.pendingAcks(z); n != 0 {
			return fmt.Errorf("%d messages unacked (the malformed batch must be terminated)", n)
		}
		return nil
	})
}

// TestBatchAckedOnlyAfterCommit kills the owner after the commit of a tick
// holding a batch and before its ack: the batch comes back to the next
// owner, which recognises every command in it (duplicates of the session
// seq windows: no second event) and acks it.
func TestBatchAckedOnlyAfterCommit(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	cfg := e.config(z)
	arm, reached := crashAtAck(&cfg, func(id string) bool { return id == "ack:b/gw/boot/2" })
	a := e.start(cfg)
	e.sendBatch(z, "b/gw/boot/1", batchCmd{"s", "p", 1, joinCmd(z)}, batchCmd{"t", "q", 1, joinCmd(z)})
	e.waitApplied(z, "s:1", "t:1")
	arm()
	var cmds []batchCmd
	var ids []string
	for q := uint64(2); q < 6; q++ {
		cmds = append(cmds, batchCmd{"s", "p", q, chatCmd("x")}, batchCmd{"t", "q", q, chatCmd("y")})
		ids = append(ids, wire.CommandID("s", q), wire.CommandID("t", q))
	}
	e.sendBatch(z, "b/gw/boot/2", cmds...)
	reached(t)
	a.crash(t)
	if n := e.pendingAcks(z); n == 0 {
		t.Fatal("the batch was acked by the killed owner")
	}
	b := e.start(e.config(z))
	defer b.stop(t)
	e.waitApplied(z, ids...)
	waitfor.True(t, 10*time.Second, func() error {
		if n := e.pendingAcks(z); n != 0 {
			return fmt.Errorf("%d messages not acked by the new owner", n)
		}
		return nil
	})
	if d := metric(t, b.m.Commands.WithLabelValues("duplicate")); d != float64(len(cmds)) {
		t.Errorf("the new owner took %v redelivered commands for duplicates, want %d", d, len(cmds))
	}
	seen := map[string]int{}
	for _, en := range e.log(z) {
		if id := en.Event.GetCommandId(); id != "" {
			seen[id]++
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("%s caused %d events, want 1", id, seen[id])
		}
	}
}
