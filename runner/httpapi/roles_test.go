package httpapi

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/runnel-ci/runnel/runner/access"
)

// newToken creates a token through the API with the admin token and
// returns its plaintext and id.
func (e *env) newToken(name string, role access.Role) (string, int64) {
	e.t.Helper()
	body, _ := json.Marshal(TokenRequest{Name: name, Role: role})
	code, b := e.do("POST", "/api/v1/tokens", body, e.auth())
	if code != 201 {
		e.t.Fatalf("create token %s: %d %s", name, code, b)
	}
	var v TokenView
	if err := json.Unmarshal([]byte(b), &v); err != nil || v.Token == "" || v.Role != role {
		e.t.Fatalf("create token %s: %v %s", name, err, b)
	}
	return v.Token, v.ID
}

func withToken(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// TestRoles checks every role against an endpoint of each permission:
// reads are open to all roles, run actions to operators and admins,
// configuration (tokens, repositories, environments) to admins only.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	read, _ := e.newToken("viewer", access.Read)
	op, _ := e.newToken("ops", access.Operator)
	e.do("POST", "/api/v1/repos", []byte(`{"name":"app","forge":"git","clone_url":"`+e.bare+`"}`), e.auth())
	sha := e.push("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n")
	code, b := e.do("POST", "/api/v1/repos/app/trigger", []byte(`{"commit":"`+sha+`"}`), e.auth())
	if code != 201 {
		t.Fatalf("trigger: %d %s", code, b)
	}
	var run RunView
	json.Unmarshal([]byte(b), &run)
	e.waitRun(run.ID)

	type call struct{ method, path, body string }
	const allowed = 0
	cancel := call{"POST", fmt.Sprintf("/api/v1/runs/%d/cancel", run.ID), ""}
	trigger := call{"POST", "/api/v1/repos/app/trigger", `{"commit":"` + sha + `"}`}
	tokenCreate := call{"POST", "/api/v1/tokens", `{"name":"x","role":"read"}`}
	for _, c := range []struct {
		call
		want map[string]int // by role; allowed means (any answer but 401 and 403)
	}{
		{call{"GET", "/api/v1/runs", ""}, map[string]int{"read": 200, "operator": allowed, "admin": allowed}},
		{call{"GET", fmt.Sprintf("/api/v1/runs/%d", run.ID), ""}, map[string]int{"read": 200, "operator": allowed, "admin": allowed}},
		{cancel, map[string]int{"read": 403, "operator": allowed, "admin": allowed}},
		{call{"POST", fmt.Sprintf("/api/v1/runs/%d/stages/a/approve", run.ID), ""}, map[string]int{"read": 403, "operator": allowed, "admin": allowed}},
		{call{"POST", fmt.Sprintf("/api/v1/runs/%d/approve", run.ID), ""}, map[string]int{"read": 403, "operator": allowed, "admin": allowed}},
		{trigger, map[string]int{"read": 403, "operator": allowed, "admin": allowed}},
		{tokenCreate, map[string]int{"read": 403, "operator": 403, "admin": allowed}},
		{call{"GET", "/api/v1/tokens", ""}, map[string]int{"read": 403, "operator": 403, "admin": allowed}},
		{call{"POST", "/api/v1/repos", `{"name":"other","forge":"generic"}`}, map[string]int{"read": 403, "operator": 403}},
		{call{"PUT", "/api/v1/repos/app/environments/prod", `{"branches":["main"]}`}, map[string]int{"read": 403, "operator": 403, "admin": allowed}},
	} {
		for role, tok := range map[string]string{"read": read, "operator": op, "admin": e.token} {
			want, ok := c.want[role]
			if !ok {
				continue
			}
			code, b := e.do(c.method, c.path, []byte(c.body), withToken(tok))
			if want == allowed && code != 401 && code != 403 {
				continue
			}
			if code != want {
				t.Errorf("%s %s as %s: %d %s, want %d", c.method, c.path, role, code, b, want)
			}
		}
	}
}

// TestRevokedTokenAtOnce: the request right after DELETE is refused.
func TestRevokedTokenAtOnce(t *testing.T) {
	e := newEnv(t)
	tok, id := e.newToken("temp", access.Operator)
	if code, b := e.do("GET", "/api/v1/runs", nil, withToken(tok)); code != 200 {
		t.Fatalf("before revocation: %d %s", code, b)
	}
	if code, b := e.do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", id), nil, e.auth()); code != 204 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if code, b := e.do("GET", "/api/v1/runs", nil, withToken(tok)); code != 401 {
		t.Errorf("after revocation: %d %s, want 401", code, b)
	}
	if code, _ := e.do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", id), nil, e.auth()); code != 404 {
		t.Errorf("revoke twice: %d, want 404", code)
	}
	code, b := e.do("GET", "/api/v1/tokens", nil, e.auth())
	var list struct{ Tokens []TokenView }
	json.Unmarshal([]byte(b), &list)
	if code != 200 || len(list.Tokens) != 1 || list.Tokens[0].Name != "alice" || list.Tokens[0].Token != "" {
		t.Errorf("token list after revocation: %d %s", code, b)
	}
}

func TestCreateTokenRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	for _, body := range []string{`{"name":"","role":"read"}`, `{"name":"x","role":"root"}`, `{"name":"a\u0007b"}`, `{"name":"x","admin":true}`} {
		if code, b := e.do("POST", "/api/v1/tokens", []byte(body), e.auth()); code != 400 {
			t.Errorf("%s: %d %s, want 400", body, code, b)
		}
	}
}
