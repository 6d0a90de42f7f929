package natsserver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
)

// TestClaimBindsSender: a claim is answered only when it names the agent
// whose claim subject it came on, and an agent cannot use another's claim
// subject (NATS permissions).
func TestClaimBindsSender(t *testing.T) {
	srv, creds := start(t, "a", "b")
	d, _ := dispatcher(t, srv, StreamLimits{})
	ctx, cancel := context.WithCancel(context.Background())
	rec := eventRecorder{events: make(chan string, 16)}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = d.Run(ctx, rec) })
	nc, err := natsbus.Connect(srv.ClientURL(), creds["a"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	claim := func(subject, agent string, wait time.Duration) (*wire.ClaimReply, error) {
		b, err := wire.Encode(&wire.Claim{RunID: "r", StageID: "s", Attempt: 1, Agent: agent, Token: "t"})
		if err != nil {
			return nil, err
		}
		m, err := nc.Request(subject, b, wait)
		if err != nil {
			return nil, err
		}
		var rep wire.ClaimReply
		return &rep, wire.Decode(m.Data, &rep)
	}
	// The dispatcher subscribes when Run starts: ask until it answers.
	deadline := time.Now().Add(time.Minute)
	for {
		rep, err := claim(wire.ClaimSubject("a"), "a", time.Second)
		if err == nil {
			if !rep.Granted {
				t.Fatalf("own claim: got %+v, want granted", rep)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("own claim not answered: %v", err)
		}
	}
	if rep, err := claim(wire.ClaimSubject("a"), "b", 2*time.Second); err == nil {
		t.Errorf("claim naming b on a's subject answered: %+v", rep)
	}
	if rep, err := claim(wire.ClaimSubject("b"), "b", 2*time.Second); err == nil {
		t.Errorf("a's claim on b's subject answered: %+v", rep)
	}
	for {
		select {
		case e := <-rec.events:
			if e != "claim s a" {
				t.Errorf("handler saw %q, want only claims of a", e)
			}
		default:
			return
		}
	}
}
