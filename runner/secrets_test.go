package runner

import (
	"reflect"
	"testing"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
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
