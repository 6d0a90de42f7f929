package gitrepo

import (
	"context"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestCheckoutHTTPCredentials serves the fixture with git http-backend
// and checks that the token reaches the server as basic auth, and that a
// SHA is fetched by itself when no ref is given.
func TestCheckoutHTTPCredentials(t *testing.T) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	sha := f.commit(t, "one", map[string]string{"a.txt": "a"})
	var mu sync.Mutex
	var auths []string
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(f.bare), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != "x-access-token" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(f.bare)
	dst := filepath.Join(t.TempDir(), "ws")
	cache := t.TempDir()
	err = checkoutCLI(context.Background(), cache, url, sha, "", dst,
		&CheckoutOptions{Username: "x-access-token", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []string{filepath.Join(cachePath(cache, url), "config"), filepath.Join(dst, ".git", "config")} {
		if b, err := os.ReadFile(cfg); err != nil || strings.Contains(string(b), "czNjcmV0") || strings.Contains(string(b), "s3cret") {
			t.Errorf("%s: %v, or it holds the credentials:\n%s", cfg, err, b)
		}
	}
	if got := runGitT(t, dst, "rev-parse", "HEAD"); got != sha {
		t.Errorf("HEAD = %s, want %s", got, sha)
	}
	mu.Lock()
	seen := append([]string(nil), auths...)
	mu.Unlock()
	// Without credentials the fetch fails instead of prompting.
	err = checkoutCLI(context.Background(), t.TempDir(), url, sha, "", filepath.Join(t.TempDir(), "ws"), nil)
	if err == nil {
		t.Error("got nil error without credentials, want one")
	}
	if len(seen) == 0 {
		t.Fatal("server saw no request")
	}
	for _, a := range seen {
		if a != "Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0" {
			t.Errorf("got Authorization %q, want basic auth of x-access-token:s3cret", a)
		}
	}
}
