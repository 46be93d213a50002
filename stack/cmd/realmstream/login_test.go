package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
)

// TestLoginAgainstStack: the reference login end to end on the one-process
// stack: POST /v1/session creates a device account in persist (Pebble), a
// second login finds the same player, the token opens a session over
// WebSocket whose Welcome names that player, and a custom id without create
// is 404.
func TestLoginAgainstStack(t *testing.T) {
	ports := freePorts(t, 2)
	base := freeBase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	ws := fmt.Sprintf("127.0.0.1:%d", ports[1])
	args := []string{"--data-dir", t.TempDir(), "--nats-port", "-1",
		"--tcp-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--ws-addr", ws,
		"--http-base", strconv.Itoa(base), "--bots", "0", "--log-level", "warn"}
	out := &syncBuffer{}
	go func() { done <- runStack(ctx, args, out, io.Discard) }()

	var first *client.LoginResponse
	waitStack(t, 90*time.Second, done, out, func() error {
		r, err := client.Login(ctx, "ws://"+ws, client.LoginRequest{DeviceID: "stack-device-0001", Name: "Stacy"})
		if err != nil {
			return err
		}
		first = r
		return nil
	})
	if !first.Created || first.Name != "Stacy" || first.PlayerID == "" {
		t.Fatalf("first login %+v", first)
	}
	again, err := client.Login(ctx, "http://"+ws, client.LoginRequest{DeviceID: "stack-device-0001"})
	if err != nil || again.Created || again.PlayerID != first.PlayerID {
		t.Fatalf("second login %+v, %v", again, err)
	}
	no := false
	_, err = client.Login(ctx, ws, client.LoginRequest{CustomID: "nobody-at-all", Create: &no})
	var le *client.LoginError
	if !errors.As(err, &le) || le.Status != 404 || le.Code != "not_found" {
		t.Fatalf("unknown custom id: %v", err)
	}
	c, err := client.Dial(ctx, "ws://"+ws+"/", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	defer hcancel()
	w, err := c.Hello(hctx, &schema.Hello{Token: again.Token, WantWorld: true})
	if err != nil || w.PlayerId != first.PlayerID || w.PlayerName != "Stacy" || len(w.World.GetZones()) == 0 {
		t.Fatalf("hello with the login token: %v, %v", w, err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("stack did not stop")
	}
}
