package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/internal/gittest"
	"github.com/runnel-ci/runnel/runner/store"
)

const cloneToken = "ghp_s3cr3tCl0neT0ken"

// TestCloneURLCredentials: a clone URL with credentials is refused at
// registration and update with a message naming the supported ways; one
// stored before (kept working) never shows its token in the API: repo,
// run source_url, trigger errors.
func TestCloneURLCredentials(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{
		"https://user:" + cloneToken + "@git.example/acme/app.git",
		"https://" + cloneToken + "@github.com/acme/app.git",
	} {
		code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"app","forge":"git","clone_url":%q}`, u)), e.auth())
		if code != http.StatusBadRequest || !strings.Contains(b, "credentials in the URL") || !strings.Contains(b, "docs/operations.md#clone-credentials") {
			t.Errorf("POST repo with %s: %d %s, want 400 naming the supported ways", u, code, b)
		}
		if strings.Contains(b, cloneToken) {
			t.Errorf("POST repo: the error shows the token: %s", b)
		}
	}
	if code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"app","forge":"git","clone_url":%q}`, e.bare)), e.auth()); code != http.StatusCreated {
		t.Fatalf("POST repo: %d %s", code, b)
	}
	code, b := e.do("PATCH", "/api/v1/repos/app", []byte(`{"clone_url":"https://u:`+cloneToken+`@git.example/acme/app.git"}`), e.auth())
	if code != http.StatusBadRequest || !strings.Contains(b, "credentials in the URL") || strings.Contains(b, cloneToken) {
		t.Errorf("PATCH clone_url with credentials: %d %s, want 400 without the token", code, b)
	}

	// Stored before credentials were refused: it still works, redacted.
	ctx := context.Background()
	forge := gittest.ServeHTTP(t, filepath.Dir(e.bare))
	legacy := strings.Replace(forge.URL, "://", "://user:"+cloneToken+"@", 1) + "/" + filepath.Base(e.bare)
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "legacy", Forge: store.ForgeGit, CloneURL: legacy, DefaultBranch: "main"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateRepo(ctx, store.Repo{Name: "gone", Forge: store.ForgeGit, CloneURL: "https://user:" + cloneToken + "@127.0.0.1:1/app.git", DefaultBranch: "main"}); err != nil {
		t.Fatal(err)
	}
	e.pushFile("f.txt", "version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: test -f f.txt\n")
	code, b = e.do("POST", "/api/v1/repos/legacy/trigger", []byte(`{}`), e.auth())
	if code != http.StatusCreated {
		t.Fatalf("trigger legacy: %d %s", code, b)
	}
	var run RunView
	if err := json.Unmarshal([]byte(b), &run); err != nil {
		t.Fatal(err)
	}
	if r := e.waitRun(run.ID); r.Status != store.StatusSuccess {
		t.Errorf("legacy run: %s/%s, want success (credentials in a stored URL keep working)", r.Status, r.Reason)
	}
	shown := []string{b}
	for _, p := range []string{"/api/v1/repos/legacy", "/api/v1/repos", fmt.Sprintf("/api/v1/runs/%d", run.ID), "/api/v1/runs"} {
		code, b := e.do("GET", p, nil, e.auth())
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, code, b)
		}
		shown = append(shown, b)
	}
	code, b = e.do("POST", "/api/v1/repos/gone/trigger", []byte(`{}`), e.auth())
	if code < 400 {
		t.Errorf("trigger of an unreachable repo: %d %s, want an error", code, b)
	}
	shown = append(shown, b)
	for _, b := range shown {
		if strings.Contains(b, cloneToken) {
			t.Errorf("an API response shows the clone token: %s", b)
		}
	}
	if !strings.Contains(shown[1], "://***@127.0.0.1") {
		t.Errorf("GET repo does not show the redacted clone URL: %s", shown[1])
	}
}
