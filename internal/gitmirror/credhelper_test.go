package gitmirror

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/internal/gittest"
)

// TestCheckoutCredentialHelper: the supported way to give HTTPS clone
// credentials (docs/operations.md#clone-credentials) works: a credential
// helper in the global git configuration of the user running git.
func TestCheckoutCredentialHelper(t *testing.T) {
	f := newFixture(t)
	sha := f.commit(t, map[string]string{"a.txt": "a"})
	backend := gittest.HTTPBackend(t, filepath.Dir(f.bare))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "h3lperT0ken" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(f.bare)
	ctx := context.Background()

	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Checkout(ctx, Source{URL: url, Commit: sha}, filepath.Join(t.TempDir(), "ws")); err == nil {
		t.Fatal("checkout without credentials succeeded; the server does not check them")
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(home, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(".gitconfig", "[credential \""+srv.URL+"\"]\n\thelper = store\n")
	write(".git-credentials", "http://ci:h3lperT0ken@"+host+"\n")
	dst := filepath.Join(t.TempDir(), "ws")
	if err := c.Checkout(ctx, Source{URL: url, Commit: sha}, dst); err != nil {
		t.Fatalf("checkout with a credential helper: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "a.txt")); err != nil || string(b) != "a" {
		t.Errorf("a.txt = %q, %v; want %q", b, err, "a")
	}
}
