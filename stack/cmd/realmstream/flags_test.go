package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
)

// TestGatewaySettingsReachStack is the regression test of issue 10 #12: the
// one-process stack honours the gateway's settings, as flags and as REALM_*
// variables. Before the fix `realmstream run` built the gateway from its
// defaults: REALM_MAX_FRAME, REALM_RATE, REALM_BURST and REALM_TOKEN_TTL had
// no effect and there were no flags for them.
func TestGatewaySettingsReachStack(t *testing.T) {
	t.Setenv("REALM_MAX_FRAME", "300")
	t.Setenv("REALM_TOKEN_TTL", "1h")
	t.Setenv("REALM_BURST", "3")
	ports := freePorts(t, 2)
	base := freeBase(t)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	tcp := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := []string{"--data-dir", t.TempDir(), "--nats-port", "-1", "--tcp-addr", tcp, "--ws-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--http-base", strconv.Itoa(base), "--log-level", "warn", "--rate", "0.01"}
	go func() { done <- runStack(ctx, args, out, io.Discard) }()
	var c *client.Conn
	waitStack(t, 90*time.Second, done, out, func() error {
		var err error
		c, err = client.Dial(ctx, "tcp://"+tcp, client.Options{})
		return err
	})
	defer c.Close()
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	defer hcancel()
	w, err := c.Hello(hctx, &schema.Hello{Name: "flags"}) // token 1 of a burst of 3
	if err != nil {
		t.Fatal(err)
	}
	if ttl := time.Until(time.Unix(0, w.TokenExpiresAtNs)); ttl < 55*time.Minute || ttl > 65*time.Minute {
		t.Fatalf("token lives %v, want REALM_TOKEN_TTL=1h", ttl)
	}
	if l := w.GetLimits(); l.GetMaxFrameBytes() != 300 || l.GetBurst() != 3 || l.GetRatePerSec() != 0.01 {
		t.Fatalf("Welcome.limits %v, want max frame 300, burst 3, rate 0.01", l)
	}
	answers := map[string]int{}
	for range 4 { // tokens 2 and 3, then the bucket is empty (--rate 0.01/s)
		seq, _ := c.Move(ctx, 1, 1)
		p := <-c.Packets()
		if p.AckSeq != seq {
			t.Fatalf("answer %v for seq %d", p, seq)
		}
		answers[p.GetError().GetCode().String()]++
	}
	if answers["ERROR_CODE_RATE_LIMITED"] != 2 {
		t.Fatalf("answers %v, want 2 RATE_LIMITED (--rate, REALM_BURST)", answers)
	}
	_ = c.SendBytes(ctx, make([]byte, 400))
	p := <-c.Packets()
	if e := p.GetError(); e.GetCode() != schema.ErrorCode_ERROR_CODE_TOO_LARGE || !strings.Contains(e.GetMessage(), "300") {
		t.Fatalf("400-byte frame: %v, want TOO_LARGE at REALM_MAX_FRAME=300", p)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("stack did not stop")
	}
}
