package docker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/deploy/docker"
)

// TestControl drives a Proxy through its control API with the Client:
// routes round-trip, the token is required, upstreams other than
// http://host:port and weights outside 0..100 are refused, and the state
// file gives a new proxy the same routes.
func TestControl(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "routes.json")
	p := docker.NewProxy(nil)
	srv := httptest.NewServer(&docker.Control{Proxy: p, Token: "0123456789abcdef", StateFile: state})
	defer srv.Close()

	c, err := docker.NewClient(srv.URL, "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	blue, green := &url.URL{Scheme: "http", Host: "10.0.0.1:8080"}, &url.URL{Scheme: "http", Host: "10.0.0.2:8080"}
	if err := c.SetRoutes(ctx, docker.Routes{Blue: blue, Green: green, Weight: 30}); err != nil {
		t.Fatalf("SetRoutes: %v", err)
	}
	got, err := c.GetRoutes(ctx)
	if err != nil || got.Blue.String() != blue.String() || got.Green.String() != green.String() || got.Weight != 30 {
		t.Fatalf("GetRoutes = %+v, %v; want blue, green, 30", got, err)
	}
	if b, g, w := p.Routes(); b.String() != blue.String() || g.String() != green.String() || w != 30 {
		t.Errorf("proxy routes = %v %v %d", b, g, w)
	}

	wrong, _ := docker.NewClient(srv.URL, "not-the-token-at-all")
	if err := wrong.SetRoutes(ctx, docker.Routes{}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("SetRoutes with a wrong token: %v, want 401", err)
	}
	none, _ := docker.NewClient(srv.URL, "")
	if _, err := none.GetRoutes(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("GetRoutes without a token: %v, want 401", err)
	}

	for _, body := range []string{
		`{"blue": "http://user:pw@10.0.0.1:80"}`,
		`{"blue": "http://10.0.0.1:80/admin"}`,
		`{"blue": "file:///etc/passwd"}`,
		`{"blue": "http://10.0.0.1"}`,
		`{"weight": 101}`,
		`{"weight": 5, "extra": 1}`,
		`not json`,
	} {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/routes", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer 0123456789abcdef")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %s: status %d, want 400", body, resp.StatusCode)
		}
	}
	if _, _, w := p.Routes(); w != 30 {
		t.Errorf("a refused PUT changed the routes: weight %d", w)
	}

	// A restarted proxy loads what the last PUT saved.
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("state file: %v", err)
	}
	again := docker.NewProxy(nil)
	if err := docker.LoadState(again, state); err != nil {
		t.Fatal(err)
	}
	if b, g, w := again.Routes(); b.String() != blue.String() || g.String() != green.String() || w != 30 {
		t.Errorf("reloaded routes = %v %v %d", b, g, w)
	}
	if err := docker.LoadState(docker.NewProxy(nil), filepath.Join(t.TempDir(), "missing.json")); err != nil {
		t.Errorf("missing state file: %v", err)
	}
}

// FuzzControlPut: whatever a control request carries, the proxy either
// refuses it (400) or ends up with routes it can serve: http upstreams
// with a host and port only, a weight in 0..100.
func FuzzControlPut(f *testing.F) {
	for _, s := range []string{`{"blue":"http://10.0.0.1:80","green":"http://10.0.0.2:80","weight":50}`, `{"weight":0}`,
		`{"blue":"http://[::1]:8080/"}`, `{"blue":"http://u@h:1"}`, `{"green":"http://h:1?x"}`, `{"weight":-1}`, `null`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		p := docker.NewProxy(nil)
		c := &docker.Control{Proxy: p}
		req := httptest.NewRequest(http.MethodPut, "/routes", strings.NewReader(body))
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		b, g, w := p.Routes()
		if rec.Code != http.StatusOK {
			if b != nil || g != nil || w != 0 {
				t.Fatalf("refused body %q changed the routes: %v %v %d", body, b, g, w)
			}
			return
		}
		for _, u := range []*url.URL{b, g} {
			if u != nil && (u.Scheme != "http" || u.Port() == "" || u.Path != "" || u.User != nil || u.RawQuery != "") {
				t.Fatalf("body %q accepted upstream %v", body, u)
			}
		}
		if w < 0 || w > 100 {
			t.Fatalf("body %q accepted weight %d", body, w)
		}
	})
}
