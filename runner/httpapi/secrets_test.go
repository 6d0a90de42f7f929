package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/store"
)

func TestSecretsAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/web", Forge: store.ForgeGit, CloneURL: e.bare}); err != nil {
		t.Fatal(err)
	}
	const value = "s3cr3t-value-\"quoted\""
	body := func(v any) []byte { b, _ := json.Marshal(v); return b }
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		code   int
		want   string
	}{
		{"set for a repo", "PUT", "/api/v1/secrets/DEPLOY_TOKEN?repo=acme/web", body(SecretRequest{Value: value, Branches: []string{"main"}}), http.StatusCreated, `"branches": [`},
		{"replace", "PUT", "/api/v1/secrets/DEPLOY_TOKEN?repo=acme/web", body(SecretRequest{Value: value + "2", Events: []string{"push"}}), http.StatusOK, `"updated_by": "alice"`},
		{"set global", "PUT", "/api/v1/secrets/GLOBAL_KEY", body(SecretRequest{Value: value}), http.StatusCreated, `"name": "GLOBAL_KEY"`},
		{"too short", "PUT", "/api/v1/secrets/SHORT", body(SecretRequest{Value: "abc"}), http.StatusBadRequest, "at least 6"},
		{"bad name", "PUT", "/api/v1/secrets/1BAD", body(SecretRequest{Value: value}), http.StatusBadRequest, "not starting with a digit"},
		{"reserved name", "PUT", "/api/v1/secrets/RUNNEL_X", body(SecretRequest{Value: value}), http.StatusBadRequest, "Runnel's own"},
		{"bad event", "PUT", "/api/v1/secrets/X_TOKEN", body(SecretRequest{Value: value, Events: []string{"fork"}}), http.StatusBadRequest, `is not one of push`},
		{"unknown field", "PUT", "/api/v1/secrets/X_TOKEN", []byte(`{"value":"abcdefgh","nope":1}`), http.StatusBadRequest, "unknown field"},
		{"unknown repo", "PUT", "/api/v1/secrets/X_TOKEN?repo=acme/none", body(SecretRequest{Value: value}), http.StatusNotFound, "not found"},
		{"list repo", "GET", "/api/v1/secrets?repo=acme/web", nil, http.StatusOK, `"name": "DEPLOY_TOKEN"`},
		{"list global", "GET", "/api/v1/secrets", nil, http.StatusOK, `"name": "GLOBAL_KEY"`},
		{"remove", "DELETE", "/api/v1/secrets/DEPLOY_TOKEN?repo=acme/web", nil, http.StatusNoContent, ""},
		{"remove again", "DELETE", "/api/v1/secrets/DEPLOY_TOKEN?repo=acme/web", nil, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got := e.do(tt.method, tt.path, tt.body, e.auth())
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Fatalf("%s %s = %d %s; want %d containing %q", tt.method, tt.path, code, got, tt.code, tt.want)
			}
			// No answer ever carries a value.
			if strings.Contains(got, "s3cr3t") {
				t.Fatalf("answer carries the value: %s", got)
			}
		})
	}
	// Only admins manage secrets.
	tok, _, err := e.st.CreateToken(ctx, "bob", access.Operator)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		code, _ := e.do(m, "/api/v1/secrets/GLOBAL_KEY", body(SecretRequest{Value: value}), map[string]string{"Authorization": "Bearer " + tok})
		if m == "GET" {
			code, _ = e.do(m, "/api/v1/secrets", nil, map[string]string{"Authorization": "Bearer " + tok})
		}
		if code != http.StatusForbidden {
			t.Errorf("operator %s: %d, want 403", m, code)
		}
	}
}
