package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
)

// pushBody is a GitHub push payload for repository name at commit sha.
func pushBody(name, sha string) []byte {
	b, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": sha,
		"repository": map[string]any{"full_name": name}, "head_commit": map[string]any{"id": sha, "message": "c"}})
	return b
}

func githubHeaders(delivery, secret string, body []byte) map[string]string {
	return map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
		"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}
}

// TestDeliveryBoundToVerifyingRepo (issue 11, item 3): a delivery signed
// with repository A's secret that names repository B in its payload is
// A's, also when it is triggered from the store after a restart: the run
// is A's, B gets none. With the body's name only (/hooks/github), the
// secret is B's, so A's signature is refused.
func TestDeliveryBoundToVerifyingRepo(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Both read the same bare repository, so that the commit exists for
	// either: only the binding decides whose run it is.
	a, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/a", Forge: "github", CloneURL: e.bare, WebhookSecret: "secret-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.st.CreateRepo(ctx, store.Repo{Name: "acme/b", Forge: "github", CloneURL: e.bare, WebhookSecret: "secret-b"})
	if err != nil {
		t.Fatal(err)
	}
	sha := e.push(onePipeline)
	body := pushBody(b.Name, sha)
	if code, out := e.do("POST", "/hooks/github", body, githubHeaders("x0", "secret-a", body)); code != 401 {
		t.Errorf("A's signature on B's name without a URL repo: got %d %s, want 401", code, out)
	}
	// The process stops before it triggers what it accepts.
	e.q.Drain(ctx)
	code, out := e.do("POST", "/hooks/github/acme/a", body, githubHeaders("x1", "secret-a", body))
	if code != 202 {
		t.Fatalf("A's signature on A's URL: got %d %s, want 202", code, out)
	}
	var acc struct{ Delivery string }
	json.Unmarshal([]byte(out), &acc)
	pending, err := e.st.PendingDeliveries(ctx, 0)
	if err != nil || len(pending) != 1 || pending[0].RepoID != a.ID {
		t.Fatalf("stored delivery: got %+v %v, want one of repo %d", pending, err, a.ID)
	}
	// The next process triggers it from the store.
	e.newQueue().Resume()
	d := e.waitDelivery(pending[0].ID)
	if d.State != store.DeliveryProcessed || d.RunID == 0 {
		t.Fatalf("delivery: got %s run %d (%s), want processed with a run", d.State, d.RunID, d.Error)
	}
	run, err := e.st.Run(ctx, d.RunID)
	if err != nil || run.RepoID != a.ID {
		t.Errorf("run of the delivery: got repo %d %v, want A (%d)", run.RepoID, err, a.ID)
	}
	if runs, _ := e.st.ListRuns(ctx, store.RunFilter{RepoID: b.ID}); len(runs) != 0 {
		t.Errorf("B got %d runs from A's delivery, want none", len(runs))
	}
}

// TestGenericHookGate (issue 11, item 11): a forge repository's hook
// token does not start runs through the generic hook unless its generic
// hook is enabled; a token is its repository's only.
func TestGenericHookGate(t *testing.T) {
	e := newEnv(t)
	create := func(fields string) RepoView {
		t.Helper()
		code, b := e.do("POST", "/api/v1/repos", []byte(fields), e.auth())
		if code != 201 {
			t.Fatalf("create repo %s: %d %s", fields, code, b)
		}
		var v RepoView
		json.Unmarshal([]byte(b), &v)
		return v
	}
	sha := e.push(onePipeline)
	gh := create(fmt.Sprintf(`{"name":"acme/gh","forge":"github","clone_url":%q,"secret":"s"}`, e.bare))
	open := create(fmt.Sprintf(`{"name":"acme/open","forge":"github","clone_url":%q,"secret":"s","generic_hook":true}`, e.bare))
	bare := create(fmt.Sprintf(`{"name":"web","forge":"git","clone_url":%q}`, e.bare))
	if gh.GenericHook || !open.GenericHook || gh.ForgeURL != "https://github.com" {
		t.Errorf("repo views: got generic_hook %v and %v, forge_url %q", gh.GenericHook, open.GenericHook, gh.ForgeURL)
	}
	tests := []struct {
		name, path, repo, token string
		want                    int
	}{
		{"forge repo, generic hook off", "/hooks/generic", "acme/gh", gh.HookToken, 401},
		{"forge repo, generic hook on", "/hooks/generic", "acme/open", open.HookToken, 202},
		{"bare repo", "/hooks/generic", "web", bare.HookToken, 202},
		{"bare repo, named in the URL", "/hooks/generic/web", "web", bare.HookToken, 202},
		{"token of another repo in the URL", "/hooks/generic/acme/open", "acme/open", bare.HookToken, 401},
		{"payload names another repo", "/hooks/generic", "acme/open", bare.HookToken, 400},
		{"unknown token", "/hooks/generic", "web", "rnh_nope", 401},
		{"no token", "/hooks/generic", "web", "", 401},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := fmt.Sprintf(`{"repo":%q,"ref":"refs/heads/main","commit":%q}`, tc.repo, sha)
			hdr := map[string]string{"X-Runnel-Delivery": fmt.Sprint("g", i)}
			if tc.token != "" {
				hdr["Authorization"] = "Bearer " + tc.token
			}
			if code, b := e.do("POST", tc.path, []byte(payload), hdr); code != tc.want {
				t.Errorf("got %d %s, want %d", code, b, tc.want)
			}
		})
	}
	// Enabled later through the API, it takes effect at once.
	if code, b := e.do("PATCH", "/api/v1/repos/acme/gh", []byte(`{"generic_hook":true}`), e.auth()); code != 200 ||
		!strings.Contains(b, `"generic_hook": true`) {
		t.Fatalf("PATCH generic_hook: got %d %s", code, b)
	}
	payload := fmt.Sprintf(`{"repo":"acme/gh","ref":"refs/heads/main","commit":%q}`, sha)
	if code, b := e.do("POST", "/hooks/generic", []byte(payload), map[string]string{"Authorization": "Bearer " + gh.HookToken}); code != 202 {
		t.Errorf("generic hook after PATCH: got %d %s, want 202", code, b)
	}
	if code, b := e.do("PATCH", "/api/v1/repos/web", []byte(`{"generic_hook":true}`), e.auth()); code != 400 {
		t.Errorf("PATCH generic_hook of a git repo: got %d %s, want 400", code, b)
	}
	if code, b := e.do("PATCH", "/api/v1/repos/acme/gh", []byte(`{"forge_url":"https://127.0.0.1@evil"}`), e.auth()); code != 400 {
		t.Errorf("PATCH a bad forge_url: got %d %s, want 400", code, b)
	}
	for _, bad := range []string{
		`{"name":"acme/x","forge":"gitea","secret":"s"}`,                                     // no clone_url, no forge_url
		`{"name":"acme/x","forge":"github","forge_url":"ftp://github.com"}`,                  // not http(s)
		`{"name":"acme/x","forge":"github","forge_url":"https://u:p@github.com"}`,            // credentials
		fmt.Sprintf(`{"name":"x","forge":"git","clone_url":%q,"generic_hook":true}`, e.bare), // meaningless
	} {
		if code, b := e.do("POST", "/api/v1/repos", []byte(bad), e.auth()); code != 400 {
			t.Errorf("create %s: got %d %s, want 400", bad, code, b)
		}
	}
}

// rawRequest opens a connection to the test server and writes head (the
// request line and headers, without the blank line) and the start of a
// body; the caller writes the rest, or not.
func (e *env) rawRequest(head string, body []byte) net.Conn {
	e.t.Helper()
	u, _ := url.Parse(e.srv.URL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "%s\r\nHost: %s\r\n\r\n%s", head, u.Host, body); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// status reads the response of c; the guard bounds the wait so that a
// server that never answers fails the test instead of hanging it.
func status(t *testing.T, c net.Conn, guard time.Duration) *http.Response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response within %v: %v", guard, err)
	}
	return resp
}

// TestHookBodyBounds (issue 11, item 4): unauthenticated webhook input is
// bounded before it costs memory or time. A client that sends its body
// slowly is cut off at HookReadTimeout, also while a long body is being
// spooled; a body announced beyond the limit, for a repository that
// takes no such hook, or without a well-formed signature is refused
// without being read; a body that does not fit the shared budget is
// refused with 503 at once.
func TestHookBodyBounds(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.HookReadTimeout = 300 * time.Millisecond; c.HookBodyBudget = 256 << 10 }, nil)
	if _, err := e.st.CreateRepo(context.Background(), store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	// Signed wrongly but well-formed, so that the body must be read.
	hook := "POST /hooks/github/acme/app HTTP/1.1\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: d\r\nContent-Type: application/json\r\n" +
		"X-Hub-Signature-256: " + badSignature
	post := func(body []byte) *http.Response {
		req, _ := http.NewRequest("POST", e.srv.URL+"/hooks/github/acme/app", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", badSignature)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	t.Run("slow body is cut off", func(t *testing.T) {
		c := e.rawRequest(hook+"\r\nContent-Length: 1000", []byte(`{"ref":`))
		start := time.Now()
		if resp := status(t, c, 10*time.Second); resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("got %s, want 408", resp.Status)
		}
		t.Logf("slow client answered after %v (HookReadTimeout 300ms)", time.Since(start).Round(time.Millisecond))
	})
	t.Run("announced body over the limit is not read", func(t *testing.T) {
		c := e.rawRequest(hook+"\r\nContent-Length: 26214401", nil)
		if resp := status(t, c, 10*time.Second); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("got %s, want 413", resp.Status)
		}
	})
	t.Run("unknown repository: refused before the body", func(t *testing.T) {
		c := e.rawRequest(strings.Replace(hook, "acme/app", "acme/nope", 1)+"\r\nContent-Length: 100000", nil)
		if resp := status(t, c, 10*time.Second); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("got %s, want 401", resp.Status)
		}
	})
	t.Run("no signature: refused before the body", func(t *testing.T) {
		c := e.rawRequest(strings.Replace(hook, badSignature, "sha256=00", 1)+"\r\nContent-Length: 100000", nil)
		if resp := status(t, c, 10*time.Second); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("got %s, want 401", resp.Status)
		}
	})
	t.Run("slow long body is cut off while spooled", func(t *testing.T) {
		c := e.rawRequest(hook+"\r\nContent-Length: 1048576", bytes.Repeat([]byte(" "), 300<<10))
		if resp := status(t, c, 10*time.Second); resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("got %s, want 408", resp.Status)
		}
	})
	t.Run("budget spent: 503 at once", func(t *testing.T) {
		// One client holds most of the budget while it sends slowly...
		e.rawRequest(hook+"\r\nContent-Length: 200000", []byte(`{`))
		// ...so a second body that does not fit is refused (once the
		// first has been read into: poll for that).
		body := []byte(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 100<<10)))
		var code int
		var retry string
		waitUntil(t, "a refused body", func() bool {
			resp := post(body)
			code, retry = resp.StatusCode, resp.Header.Get("Retry-After")
			return code == http.StatusServiceUnavailable
		})
		if retry == "" {
			t.Errorf("503 without Retry-After")
		}
		// When the slow one is cut off, the budget is back.
		waitUntil(t, "the budget back", func() bool {
			return post(body).StatusCode == http.StatusUnauthorized // read in full, signature wrong
		})
	})
	t.Run("name not in the start of the body", func(t *testing.T) {
		body := []byte(fmt.Sprintf(`{"pad":%q,"repository":{"full_name":"acme/app"}}`, strings.Repeat("x", 300<<10)))
		if code, b := e.do("POST", "/hooks/github", body, githubHeaders("late", "s", body)); code != 401 {
			t.Errorf("got %d %s, want 401 (the name must be within the first 256 KiB, or in the URL)", code, b)
		}
	})
}

// waitUntil polls cond until it holds, or fails the test after 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
