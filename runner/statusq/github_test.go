package statusq

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/github"
)

var _ Reporter = (*github.StatusReporter)(nil)

// TestGitHubReporterRetries drives the real scm/github reporter (go-github)
// against an httptest server that fails twice with 500, then accepts.
func TestGitHubReporterRetries(t *testing.T) {
	type request struct {
		path, auth string
		body       map[string]any
	}
	var mu sync.Mutex
	var reqs []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("request body %q: %v", b, err)
		}
		mu.Lock()
		reqs = append(reqs, request{r.Method + " " + r.URL.Path, r.Header.Get("Authorization"), body})
		n := len(reqs)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"message":"Server Error"}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":1,"state":"success","context":"runnel/build"}`)
	}))
	defer srv.Close()

	rep, err := github.NewStatusReporter(srv.URL+"/", "s3cret", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	var failures int
	q := New(rep, Options{BaseDelay: 5 * time.Millisecond, MaxAttempts: 5, Logger: quiet(),
		OnFailure: func(scm.Status, error) { failures++ }})
	sha := "0123456789abcdef0123456789abcdef01234567"
	_ = q.Enqueue(scm.Status{Repo: "acme/web", Commit: sha, Context: "runnel/build", State: State("success"),
		Description: "build passed", TargetURL: "https://ci.example.com/runs/7"})
	closeWithin(t, q, 10*time.Second)

	if len(reqs) != 3 {
		t.Fatalf("requests: got %d, want 3", len(reqs))
	}
	last := reqs[2]
	if want := "POST /api/v3/repos/acme/web/statuses/" + sha; last.path != want {
		t.Errorf("path: got %q, want %q", last.path, want)
	}
	if last.auth != "Bearer s3cret" {
		t.Errorf("Authorization: got %q, want Bearer s3cret", last.auth)
	}
	for k, want := range map[string]string{
		"state": "success", "context": "runnel/build", "description": "build passed",
		"target_url": "https://ci.example.com/runs/7",
	} {
		if got := last.body[k]; got != want {
			t.Errorf("body %s: got %v, want %q", k, got, want)
		}
	}
	if failures != 0 {
		t.Errorf("OnFailure calls: got %d, want 0", failures)
	}
}
