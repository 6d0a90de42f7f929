package runner

import (
	"context"
	"encoding/base64"
	"reflect"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

func TestSecretAllowed(t *testing.T) {
	push := SecretScope{Event: "push", Branch: "main"}
	tests := []struct {
		name string
		sec  store.Secret
		sc   SecretScope
		ok   bool
	}{
		{"no limits", store.Secret{}, push, true},
		{"event allowed", store.Secret{Events: []string{"push", "tag"}}, push, true},
		{"event refused", store.Secret{Events: []string{"push"}}, SecretScope{Event: "pull_request", Branch: "main"}, false},
		{"branch glob", store.Secret{Branches: []string{"release/*"}}, SecretScope{Event: "push", Branch: "release/1.2"}, true},
		{"branch refused", store.Secret{Branches: []string{"main"}}, SecretScope{Event: "push", Branch: "feature"}, false},
		{"tag run has no branch", store.Secret{Branches: []string{"*"}}, SecretScope{Event: "tag"}, false},
		{"environment", store.Secret{Environments: []string{"prod"}}, SecretScope{Event: "push", Branch: "main", Environment: "prod"}, true},
		{"other environment", store.Secret{Environments: []string{"prod"}}, SecretScope{Event: "push", Branch: "main", Environment: "staging"}, false},
		{"no environment", store.Secret{Environments: []string{"prod"}}, push, false},
		{"all limits", store.Secret{Events: []string{"push"}, Branches: []string{"main"}, Environments: []string{"prod"}},
			SecretScope{Event: "push", Branch: "main", Environment: "prod"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := SecretAllowed(tt.sec, tt.sc)
			if ok != tt.ok || (ok == (why != "")) {
				t.Errorf("got %v %q, want %v", ok, why, tt.ok)
			}
		})
	}
}

func TestResolveSecrets(t *testing.T) {
	vals := map[string]*store.SecretValue{
		"A": {Secret: store.Secret{Name: "A"}, Value: "value-a"},
		"B": {Secret: store.Secret{Name: "B", Events: []string{"tag"}}, Value: "value-b"},
	}
	refs := []pipeline.SecretRef{{Name: "A", Env: "RENAMED"}, {Name: "B", Env: "B"}, {Name: "GONE", Env: "GONE"}, {Name: "A", File: "a.txt"}}
	out, withheld := ResolveSecrets(refs, vals, SecretScope{Event: "push", Branch: "main"}, "")
	wantOut := []wire.Secret{{Name: "A", Env: "RENAMED", Value: "value-a"}, {Name: "A", File: "a.txt", Value: "value-a"}}
	if !reflect.DeepEqual(out, wantOut) {
		t.Errorf("out = %+v, want %+v", out, wantOut)
	}
	wantWithheld := []string{"secret B withheld: only for events [tag], not push", "secret GONE withheld: it was removed after the run was created"}
	if !reflect.DeepEqual(withheld, wantWithheld) {
		t.Errorf("withheld = %q, want %q", withheld, wantWithheld)
	}
	out, withheld = ResolveSecrets(refs, vals, SecretScope{Event: "push", Branch: "main"}, "pull request from a fork, not approved")
	if len(out) != 0 || len(withheld) != 4 || withheld[0] != "secret A withheld: pull request from a fork, not approved" {
		t.Errorf("untrusted: out %+v, withheld %q", out, withheld)
	}
}

// TestReasonMasked: a stage's reason from an agent (which API answers,
// the UI and commit statuses show) is stored with the repository's
// secrets masked, whatever form they take.
func TestReasonMasked(t *testing.T) {
	f := newFixture(t, false, time.Minute)
	ctx := context.Background()
	const value = "leaky-value-42"
	if _, err := f.store.PutSecret(ctx, store.Secret{RepoID: f.repo.ID, Name: "TOKEN"}, value); err != nil {
		t.Fatal(err)
	}
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    secrets: [TOKEN]\n    steps:\n      - name: s\n        run: echo\n"})
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	f.update(run, wire.Update{Kind: wire.KindStarted, StageID: "a", Attempt: 1, Agent: "x"})
	f.update(run, wire.Update{Kind: wire.KindFinished, StageID: "a", Attempt: 1, Agent: "x", Status: rules.Error,
		Reason: "engine said " + value + " and " + base64.StdEncoding.EncodeToString([]byte(value))})
	cur, err := f.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := stageByKey(cur, "a")
	if st.Reason != "engine said *** and ***" {
		t.Errorf("stored reason %q, want the secret masked", st.Reason)
	}
}
