package gittest

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// HTTPBackend returns git's own smart HTTP server (git http-backend)
// serving the bare repositories below root, read-only; a test wraps it
// to stand for a forge.
func HTTPBackend(t testing.TB, root string) http.Handler {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	return &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"},
	}
}

// ServeHTTP serves the bare repositories below root over HTTP
// (HTTPBackend) until the test ends.
func ServeHTTP(t testing.TB, root string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(HTTPBackend(t, root))
	t.Cleanup(srv.Close)
	return srv
}
