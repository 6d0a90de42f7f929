package runner

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/runner/store"
)

func TestLabelRefusal(t *testing.T) {
	prod := map[string]string{"secure": "prod"}
	tests := []struct {
		name          string
		need, allowed map[string]string
		known         bool
		refused       bool
	}{
		{"label-less stage, label-less credential", nil, nil, true, false},
		{"label-less stage, unknown agent", nil, nil, false, false},
		{"label-less stage, labelled credential", nil, prod, true, false},
		{"prod stage, label-less credential", prod, nil, true, true},
		{"prod stage, os=linux credential", prod, map[string]string{"os": "linux"}, true, true},
		{"prod stage, secure=test credential", prod, map[string]string{"secure": "test"}, true, true},
		{"prod stage, prod credential", prod, prod, true, false},
		{"prod stage, wider credential", prod, map[string]string{"secure": "prod", "os": "linux"}, true, false},
		{"two labels, credential with one", map[string]string{"secure": "prod", "os": "linux"}, prod, true, true},
		{"prod stage, unknown agent", prod, nil, false, true},
		{"prod stage, unknown agent with labels given", prod, prod, false, true},
	}
	for _, tt := range tests {
		reason := labelRefusal("a1", tt.need, tt.allowed, tt.known)
		if (reason != "") != tt.refused {
			t.Errorf("%s: got reason %q, want refused %v", tt.name, reason, tt.refused)
		}
		if tt.refused && !strings.Contains(reason, "a1") {
			t.Errorf("%s: reason %q does not name the agent", tt.name, reason)
		}
	}
}

// TestClaimBeyondCredentialRefused: over the real embedded NATS, an agent
// whose credential allows no labels claims a secure=prod stage's attempt
// (as with an external NATS lacking the label permissions): the server
// refuses it, the attempt stays unclaimed and queued, and an agent whose
// credential allows secure=prod gets it.
func TestClaimBeyondCredentialRefused(t *testing.T) {
	f := newFixture(t, false, 0)
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  deploy:\n    labels: {secure: prod}\n    steps:\n      - name: s\n        run: echo\n"})
	ctx := context.Background()
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	run = f.waitStage(run.ID, "deploy", func(s *store.Stage) bool { return s.Status == store.StatusQueued })
	claim := func(creds natsbus.Creds, token string) *wire.ClaimReply {
		t.Helper()
		nc, err := natsbus.Connect(f.bus.NATS.ClientURL(), creds)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		b, err := wire.Encode(&wire.Claim{RunID: strconv.FormatInt(run.ID, 10), StageID: "deploy", Attempt: 1, Agent: creds.User, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		m, err := nc.Request(wire.ClaimSubject(creds.User), b, 10*time.Second)
		if err != nil {
			t.Fatalf("claim as %s: %v", creds.User, err)
		}
		var rep wire.ClaimReply
		if err := wire.Decode(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return &rep
	}
	rep := claim(f.bus.AddCredential("plain", nil), "t1")
	if rep.Granted || !strings.Contains(rep.Reason, "secure=prod") || rep.Release <= 0 {
		t.Fatalf("claim of a secure=prod stage by a label-less credential: got %+v, want refused naming secure=prod, the job handed back", rep)
	}
	now, err := f.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := stageByKey(now, "deploy")
	if st.Claim != "" || st.Status != store.StatusQueued {
		t.Fatalf("after the refusal: stage %s claimed %q by %q, want queued and unclaimed", st.Status, st.Claim, st.Agent)
	}
	if rep := claim(f.bus.AddCredential("prod", map[string]string{"secure": "prod"}), "t2"); !rep.Granted {
		t.Fatalf("claim by a secure=prod credential: got %+v, want granted", rep)
	}
}
