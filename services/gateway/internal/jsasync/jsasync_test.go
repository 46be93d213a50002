package jsasync

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/wire"
)

// outcomes records every callback per message.
type outcomes struct {
	mu   sync.Mutex
	acks map[*nats.Msg][]Ack
	errs map[*nats.Msg][]error
	n    chan struct{}
}

func newOutcomes() *outcomes {
	return &outcomes{acks: map[*nats.Msg][]Ack{}, errs: map[*nats.Msg][]error{}, n: make(chan struct{}, 1<<16)}
}

func (o *outcomes) opts(timeout time.Duration) Options[*nats.Msg] {
	return Options[*nats.Msg]{Timeout: timeout,
		OnAck: func(m *nats.Msg, a Ack) {
			o.mu.Lock()
			o.acks[m] = append(o.acks[m], a)
			o.mu.Unlock()
			o.n <- struct{}{}
		},
		OnErr: func(m *nats.Msg, err error) {
			o.mu.Lock()
			o.errs[m] = append(o.errs[m], err)
			o.mu.Unlock()
			o.n <- struct{}{}
		}}
}

// wait for n more callbacks.
func (o *outcomes) wait(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for range n {
		select {
		case <-o.n:
		case <-deadline:
			t.Fatalf("not every outcome came within %v", within)
		}
	}
}

// quiet: no further callback within d.
func (o *outcomes) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-o.n:
		t.Fatal("a callback came for a message that already had its outcome")
	case <-time.After(d):
	}
}

// newPub makes a publisher of 4 registry slots (Capacity 2), so that the
// tests go through the overflow map as well as the slots.
func newPub(t *testing.T, nc *nats.Conn, o *outcomes, timeout time.Duration) *Publisher[*nats.Msg] {
	t.Helper()
	opts := o.opts(timeout)
	opts.Capacity = 2
	p, err := New(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func cmdMsg(id string) *nats.Msg {
	return &nats.Msg{Subject: wire.CommandSubject("z1_1"), Data: []byte("payload " + id), Header: nats.Header{nats.MsgIdHdr: []string{id}}}
}

// TestAcksExactlyOnce: concurrent publishers, each message acked once with
// its own stream sequence; a resend of a stored id is acked Duplicate at the
// first one's sequence.
func TestAcksExactlyOnce(t *testing.T) {
	srv, _, _ := natstest.StartWithStreams(t)
	nc, _ := natstest.Connect(t, srv.URL)
	o := newOutcomes()
	p := newPub(t, nc, o, 5*time.Second)

	const workers, per = 4, 500
	msgs := make([]*nats.Msg, workers*per)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				m := cmdMsg("m" + strconv.Itoa(w*per+i))
				msgs[w*per+i] = m
				if err := p.Publish(m, m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	o.wait(t, len(msgs), 30*time.Second)
	seqs := map[uint64]bool{}
	first := map[string]uint64{}
	for _, m := range msgs {
		a := o.acks[m]
		if len(a) != 1 || len(o.errs[m]) != 0 {
			t.Fatalf("%s: acks %v errs %v, want one ack", m.Header.Get(nats.MsgIdHdr), a, o.errs[m])
		}
		if a[0].Stream != wire.StreamCommands || a[0].Duplicate || a[0].Sequence == 0 || seqs[a[0].Sequence] {
			t.Fatalf("bad or repeated ack %+v", a[0])
		}
		seqs[a[0].Sequence] = true
		first[m.Header.Get(nats.MsgIdHdr)] = a[0].Sequence
	}
	if p.Pending() != 0 {
		t.Fatalf("pending %d after every answer", p.Pending())
	}
	for i := range 20 {
		id := "m" + strconv.Itoa(i*37)
		m := cmdMsg(id)
		if err := p.Publish(m, m); err != nil {
			t.Fatal(err)
		}
		o.wait(t, 1, 10*time.Second)
		a := o.acks[m]
		if len(a) != 1 || !a[0].Duplicate || a[0].Sequence != first[id] {
			t.Fatalf("resend of %s: %+v, want duplicate at %d", id, a, first[id])
		}
	}
}

// TestNoStream: a subject no stream takes is answered by the server's no
// responders status: jetstream.ErrNoStreamResponse, not a timeout.
func TestNoStream(t *testing.T) {
	srv, _, _ := natstest.StartWithStreams(t)
	nc, _ := natstest.Connect(t, srv.URL)
	o := newOutcomes()
	p := newPub(t, nc, o, 5*time.Second)
	m := &nats.Msg{Subject: "nostream.here", Data: []byte("x"), Header: nats.Header{}}
	start := time.Now()
	if err := p.Publish(m, m); err != nil {
		t.Fatal(err)
	}
	o.wait(t, 1, 3*time.Second)
	if errs := o.errs[m]; len(errs) != 1 || !errors.Is(errs[0], jetstream.ErrNoStreamResponse) {
		t.Fatalf("errs %v, want ErrNoStreamResponse", errs)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("no responders took as long as a timeout")
	}
}

// TestStreamRefuses: the stream's own refusal (a wrong expected last
// sequence) is a *jetstream.APIError with the server's code.
func TestStreamRefuses(t *testing.T) {
	srv, _, _ := natstest.StartWithStreams(t)
	nc, _ := natstest.Connect(t, srv.URL)
	o := newOutcomes()
	p := newPub(t, nc, o, 5*time.Second)
	m := cmdMsg("x")
	m.Header.Set(jetstream.ExpectedLastSeqHeader, "999")
	if err := p.Publish(m, m); err != nil {
		t.Fatal(err)
	}
	o.wait(t, 1, 5*time.Second)
	var apiErr *jetstream.APIError
	if errs := o.errs[m]; len(errs) != 1 || !errors.As(errs[0], &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("errs %v, want the wrong-last-sequence API error", errs)
	}
}

// TestTimeoutThenLateAnswer: a responder that answers after the timeout: the
// publish fails with ErrTimeout once, and the late answer is ignored.
func TestTimeoutThenLateAnswer(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.URL)
	held := make(chan *nats.Msg, 4)
	if _, err := nc.Subscribe("slow.>", func(m *nats.Msg) { held <- m }); err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	p := newPub(t, nc, o, 200*time.Millisecond)
	m := &nats.Msg{Subject: "slow.one", Data: []byte("x"), Header: nats.Header{}}
	start := time.Now()
	if err := p.Publish(m, m); err != nil {
		t.Fatal(err)
	}
	req := <-held
	o.wait(t, 1, 3*time.Second)
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("timed out after %v, before the 200ms timeout", took)
	}
	if errs := o.errs[m]; len(errs) != 1 || !errors.Is(errs[0], ErrTimeout) || !errors.Is(errs[0], nats.ErrTimeout) {
		t.Fatalf("errs %v, want ErrTimeout", errs)
	}
	if err := req.Respond([]byte(`{"stream":"S","seq":7}`)); err != nil {
		t.Fatal(err)
	}
	o.quiet(t, 300*time.Millisecond)
	if p.Pending() != 0 {
		t.Fatalf("pending %d", p.Pending())
	}
}

// TestAnswers: what a responder says, as the callbacks see it: every form of
// a stored message, an error object, and unreadable answers.
func TestAnswers(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.URL)
	if _, err := nc.Subscribe("answer.>", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	p := newPub(t, nc, o, 5*time.Second)
	for _, c := range []struct {
		body string
		ack  Ack
		err  error
	}{
		{body: `{"stream":"CMD","seq":42}`, ack: Ack{Stream: "CMD", Sequence: 42}},
		{body: `{"stream":"CMD","seq":42,"duplicate": true}`, ack: Ack{Stream: "CMD", Sequence: 42, Duplicate: true}},
		{body: `{"stream":"CMD","domain":"hub","seq":3}`, ack: Ack{Stream: "CMD", Domain: "hub", Sequence: 3}},
		{body: `{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"CMD","seq":0}`, err: &jetstream.APIError{Code: 503, ErrorCode: 10077}},
		{body: `not json`, err: jetstream.ErrInvalidJSAck},
		{body: `{"seq":5}`, err: jetstream.ErrInvalidJSAck},
	} {
		m := &nats.Msg{Subject: "answer.x", Data: []byte(c.body), Header: nats.Header{}}
		if err := p.Publish(m, m); err != nil {
			t.Fatal(err)
		}
		o.wait(t, 1, 5*time.Second)
		switch {
		case c.err == nil:
			if a := o.acks[m]; len(a) != 1 || a[0] != c.ack {
				t.Fatalf("%s: acks %+v errs %v, want %+v", c.body, a, o.errs[m], c.ack)
			}
		default:
			errs := o.errs[m]
			if len(errs) != 1 {
				t.Fatalf("%s: errs %v acks %v, want %v", c.body, errs, o.acks[m], c.err)
			}
			var want, got *jetstream.APIError
			if errors.As(c.err, &want) {
				if !errors.As(errs[0], &got) || got.Code != want.Code || got.ErrorCode != want.ErrorCode {
					t.Fatalf("%s: %v, want API error %d/%d", c.body, errs[0], want.Code, want.ErrorCode)
				}
			} else if !errors.Is(errs[0], c.err) {
				t.Fatalf("%s: %v, want %v", c.body, errs[0], c.err)
			}
		}
	}
}

// TestPublishErrorHasNoCallback: a publish the connection refuses returns
// its error and gets no callback; after Close, Publish fails with
// ErrClosed.
func TestPublishErrorHasNoCallback(t *testing.T) {
	srv, _, _ := natstest.StartWithStreams(t)
	nc, _ := natstest.Connect(t, srv.URL)
	o := newOutcomes()
	p := newPub(t, nc, o, 100*time.Millisecond)
	nc.Close()
	m := cmdMsg("gone")
	if err := p.Publish(m, m); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("publish on a closed connection: %v", err)
	}
	o.quiet(t, 400*time.Millisecond) // past the timeout: not swept either
	p.Close()
	p.Close()
	if err := p.Publish(cmdMsg("after"), cmdMsg("after")); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
}

func TestNewNeedsOptions(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.URL)
	if _, err := New(nc, Options[*nats.Msg]{Timeout: time.Second}); err == nil {
		t.Fatal("New without callbacks succeeded")
	}
}

// TestAbandon: Abandon hands back every unanswered publish; neither its
// answer nor its timeout calls back afterwards.
func TestAbandon(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.URL)
	held := make(chan *nats.Msg, 8)
	if _, err := nc.Subscribe("slow.>", func(m *nats.Msg) { held <- m }); err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	p := newPub(t, nc, o, 150*time.Millisecond)
	sent := map[*nats.Msg]bool{}
	for range 3 {
		m := &nats.Msg{Subject: "slow.x", Data: []byte("x"), Header: nats.Header{}}
		sent[m] = true
		if err := p.Publish(m, m); err != nil {
			t.Fatal(err)
		}
	}
	reqs := []*nats.Msg{<-held, <-held, <-held}
	got := p.Abandon()
	if len(got) != 3 || p.Pending() != 0 {
		t.Fatalf("abandoned %d, pending %d; want 3, 0", len(got), p.Pending())
	}
	for _, m := range got {
		if !sent[m] {
			t.Fatal("abandoned a value never published")
		}
		delete(sent, m)
	}
	for _, r := range reqs {
		_ = r.Respond([]byte(`{"stream":"S","seq":1}`))
	}
	o.quiet(t, 400*time.Millisecond) // past the timeout too
}

// TestCloseForgetsPending: an answer that comes after Close calls nothing.
func TestCloseForgetsPending(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.URL)
	held := make(chan *nats.Msg, 2)
	if _, err := nc.Subscribe("slow.>", func(m *nats.Msg) { held <- m }); err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	p := newPub(t, nc, o, 150*time.Millisecond)
	m := &nats.Msg{Subject: "slow.x", Data: []byte("x"), Header: nats.Header{}}
	if err := p.Publish(m, m); err != nil {
		t.Fatal(err)
	}
	req := <-held
	p.Close()
	if p.Pending() != 0 {
		t.Fatalf("pending %d after Close", p.Pending())
	}
	_ = req.Respond([]byte(`{"stream":"S","seq":1}`))
	o.quiet(t, 400*time.Millisecond) // past the timeout too
}
