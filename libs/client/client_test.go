package client

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// fakeGateway answers Hello with Welcome, Ping with Pong and anything else
// with an Ack, over real TCP frames. (The real gateway's end-to-end tests in
// services/gateway exercise this SDK over TCP and WebSocket.)
func fakeGateway(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fr := wire.NewFrameReader(c, 0)
				for {
					b, err := fr.Next()
					if err != nil {
						return
					}
					var p schema.ClientPacket
					if proto.Unmarshal(b, &p) != nil {
						return
					}
					out := &schema.ServerPacket{AckSeq: p.Seq}
					switch body := p.Body.(type) {
					case *schema.ClientPacket_Hello:
						out.Body = &schema.ServerPacket_Welcome{Welcome: &schema.Welcome{SessionId: "s1", PlayerId: "p-" + body.Hello.Name, LastSeq: 41}}
					case *schema.ClientPacket_Ping:
						out.Body = &schema.ServerPacket_Pong{Pong: &schema.Pong{ClientTimeNs: body.Ping.ClientTimeNs}}
					default:
						out.Body = &schema.ServerPacket_Ack{Ack: &schema.Ack{StreamSeq: p.Seq}}
					}
					ob, _ := proto.Marshal(out)
					if wire.WriteFrame(c, ob) != nil {
						return
					}
				}
			}()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

func TestHelloSendPing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, fakeGateway(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Hello(ctx, &schema.Hello{Name: "ann"})
	if err != nil || w.PlayerId != "p-ann" {
		t.Fatalf("hello: %v %v", w, err)
	}
	c.SetSeq(w.LastSeq)
	seq, err := c.Move(ctx, 1, 2)
	if err != nil || seq != 42 {
		t.Fatalf("move seq %d %v, want 42 (continues after last_seq)", seq, err)
	}
	if r := c.Reserve(); r != 43 {
		t.Fatalf("reserve %d", r)
	}
	if err := c.SendRaw(ctx, &schema.ClientPacket{Seq: 43, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: "x"}}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{42, 43} {
		select {
		case p := <-c.Packets():
			if p.AckSeq != want || p.GetAck() == nil {
				t.Fatalf("got %v, want ack %d", p, want)
			}
		case <-ctx.Done():
			t.Fatal("no ack")
		}
	}
	rtt, err := c.Ping(ctx)
	if err != nil || rtt <= 0 {
		t.Fatalf("ping %v %v", rtt, err)
	}
	_ = c.Close()
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed")
	}
	if _, err := c.Move(ctx, 1, 1); err == nil {
		t.Fatal("send after close succeeded")
	}
}

func TestDialRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Dial(context.Background(), addr, Options{DialTimeout: time.Second}); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

// TestResendSameSeq: the answers that ask for a same-seq resend (issue 10 #4).
func TestResendSameSeq(t *testing.T) {
	errp := func(c schema.ErrorCode) *schema.ServerPacket {
		return &schema.ServerPacket{AckSeq: 3, Body: &schema.ServerPacket_Error{Error: &schema.Error{Code: c}}}
	}
	for _, c := range []struct {
		p    *schema.ServerPacket
		want bool
	}{
		{errp(schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN), true},
		{errp(schema.ErrorCode_ERROR_CODE_INTERNAL), true},
		{errp(schema.ErrorCode_ERROR_CODE_SHUTTING_DOWN), true},
		{&schema.ServerPacket{AckSeq: 3, Body: &schema.ServerPacket_Busy{Busy: &schema.Busy{RetryAfterMs: 50}}}, true},
		{errp(schema.ErrorCode_ERROR_CODE_STALE_SEQ), false},
		{errp(schema.ErrorCode_ERROR_CODE_SEQ_REUSED), false},
		{errp(schema.ErrorCode_ERROR_CODE_REJECTED), false},
		{&schema.ServerPacket{AckSeq: 3, Body: &schema.ServerPacket_Ack{Ack: &schema.Ack{StreamSeq: 9}}}, false},
	} {
		if got := ResendSameSeq(c.p); got != c.want {
			t.Errorf("%v: ResendSameSeq %v, want %v", c.p, got, c.want)
		}
		if e := c.p.GetError(); e != nil {
			if got := (&ServerError{Code: e.Code}).ResendSameSeq(); got != c.want {
				t.Errorf("ServerError %v: %v", e.Code, got)
			}
		}
	}
}

func TestZoneUpdates(t *testing.T) {
	a := &schema.ZoneUpdate{Zone: "z0_0", Cell: 1}
	b := &schema.ZoneUpdate{Zone: "z0_0", Cell: 2}
	merged := &schema.ServerPacket{Body: &schema.ServerPacket_Updates{Updates: &schema.Updates{ZoneUpdates: []*schema.ZoneUpdate{a, b}}}}
	one := &schema.ServerPacket{Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: a}}}
	ack := &schema.ServerPacket{AckSeq: 3, Body: &schema.ServerPacket_Ack{Ack: &schema.Ack{}}}
	if got := ZoneUpdates(merged); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("Updates: %v", got)
	}
	if got := ZoneUpdates(one); len(got) != 1 || got[0] != a {
		t.Fatalf("Update: %v", got)
	}
	if got := ZoneUpdates(ack); got != nil {
		t.Fatalf("Ack: %v", got)
	}
}
