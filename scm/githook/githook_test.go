package githook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/internal/gittest"
	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/generic"
)

// TestMain lets the test binary stand in for the runnel binary: the
// installed hook runs "<test binary> hook post-receive".
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "hook" && os.Args[2] == "post-receive" {
		if err := Run(context.Background(), os.Stdin, os.Stdout, os.Getenv); err != nil {
			fmt.Fprintln(os.Stderr, "runnel:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// gitT runs git in dir with fixed commit dates (internal/gittest).
func gitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.RunEnv(t, dir, gittest.FixedTime, args...)
}

type received struct {
	Auth     string
	Delivery string
	Payload  generic.Payload
}

func TestPushTriggersHook(t *testing.T) {
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != generic.Path || r.Method != http.MethodPost {
			t.Errorf("got %s %s, want POST %s", r.Method, r.URL.Path, generic.Path)
		}
		b, _ := io.ReadAll(r.Body)
		p, err := generic.Decode(b)
		if err != nil {
			t.Errorf("decode %s: %v", b, err)
			http.Error(w, err.Error(), 400)
			return
		}
		// The server side parses the same request successfully.
		r.Body = io.NopCloser(bytes.NewReader(b))
		if tok := generic.Token(r); tok != "tok-123" {
			t.Errorf("generic.Token: got %q, want tok-123", tok)
		}
		if ev, err := generic.ParseBody(r, b); err != nil || ev.Commit != p.Commit {
			t.Errorf("generic.ParseBody: got %+v, %v; want the event of %s", ev, err, p.Commit)
		}
		mu.Lock()
		got = append(got, received{r.Header.Get("Authorization"), r.Header.Get(generic.DeliveryHeader), *p})
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bare := filepath.Join(dir, "app.git")
	work := filepath.Join(dir, "work")
	gitT(t, dir, "init", "-q", "--bare", bare)
	if err := Install(bare, srv.URL, "team/app", "tok-123", exe); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(bare, "hooks", "post-receive"))
	if err != nil {
		t.Fatal(err)
	}
	wantScript := "#!/bin/sh\n" + marker + ": forwards pushes to the Runnel server.\n" +
		"# Settings: git config runnel.server, runnel.repo, runnel.token of this repository.\n" +
		"exec '" + exe + "' hook post-receive\n"
	if string(script) != wantScript {
		t.Errorf("hook script:\n%s\nwant:\n%s", script, wantScript)
	}
	if got := strings.TrimSpace(gitT(t, bare, "config", KeyToken)); got != "tok-123" {
		t.Errorf("git config %s = %q, want tok-123", KeyToken, got)
	}
	// Installing again over our own hook is fine.
	if err := Install(bare, srv.URL, "team/app", "tok-123", exe); err != nil {
		t.Fatalf("re-install: %v", err)
	}
	gitT(t, dir, "clone", "-q", bare, work)
	gitT(t, work, "checkout", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(work, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitT(t, work, "add", "a.txt")
	gitT(t, work, "commit", "-q", "-m", "first $(touch /tmp/pwned) `id`")
	sha1 := strings.TrimSpace(gitT(t, work, "rev-parse", "HEAD"))
	out := gitT(t, work, "push", "origin", "main")
	if !strings.Contains(out, "remote: runnel: queued run for refs/heads/main") {
		t.Errorf("push output %q lacks the queued message", out)
	}
	if err := os.WriteFile(filepath.Join(work, "b.txt"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitT(t, work, "add", "b.txt")
	gitT(t, work, "commit", "-q", "-m", "second")
	sha2 := strings.TrimSpace(gitT(t, work, "rev-parse", "HEAD"))
	gitT(t, work, "tag", "-a", "-m", "release", "v1.0")
	gitT(t, work, "push", "-q", "origin", "main", "v1.0", "main:refs/heads/gone")
	gitT(t, work, "push", "-q", "origin", ":refs/heads/gone") // deletion: no request

	ts := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	want := []received{
		{"Bearer tok-123", "", generic.Payload{Repo: "team/app", Ref: "refs/heads/main", Before: strings.Repeat("0", 40), Commit: sha1,
			Message: "first $(touch /tmp/pwned) `id`\n", Author: "Ann Author", Timestamp: &ts}},
		{"Bearer tok-123", "", generic.Payload{Repo: "team/app", Ref: "refs/heads/main", Before: sha1, Commit: sha2,
			Message: "second\n", Author: "Ann Author", Timestamp: &ts, Changed: []string{"b.txt"}}},
		{"Bearer tok-123", "", generic.Payload{Repo: "team/app", Ref: "refs/tags/v1.0", Before: strings.Repeat("0", 40), Commit: sha2,
			Message: "second\n", Author: "Ann Author", Timestamp: &ts}},
		{"Bearer tok-123", "", generic.Payload{Repo: "team/app", Ref: "refs/heads/gone", Before: strings.Repeat("0", 40), Commit: sha2,
			Message: "second\n", Author: "Ann Author", Timestamp: &ts}},
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	for i := range got {
		if len(got[i].Delivery) != 32 || seen[got[i].Delivery] {
			t.Errorf("request %d: delivery %q, want a fresh 32-hex id", i, got[i].Delivery)
		}
		seen[got[i].Delivery] = true
		got[i].Delivery = ""
	}
	// The annotated tag v1.0 is peeled to its commit; the deletion sent nothing.
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("got  %s\nwant %s", gj, wj)
	}
}

func TestInstallRefuses(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "b.git")
	gitT(t, dir, "init", "-q", "--bare", bare)
	nonBare := filepath.Join(dir, "w")
	gitT(t, dir, "init", "-q", nonBare)
	foreign := filepath.Join(dir, "f.git")
	gitT(t, dir, "init", "-q", "--bare", foreign)
	if err := os.WriteFile(filepath.Join(foreign, "hooks", "post-receive"), []byte("#!/bin/sh\necho mine\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, repo, server, exe string
		want                    error
	}{
		{"non-bare", nonBare, "http://ci", "/usr/bin/runnel", ErrNotBare},
		{"foreign hook", foreign, "http://ci", "/usr/bin/runnel", ErrHookExists},
		{"relative runnel path", bare, "http://ci", "runnel", nil},
		{"quote in path", bare, "http://ci", "/tmp/it's/runnel", nil},
		{"not http", bare, "ftp://ci", "/usr/bin/runnel", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Install(tt.repo, tt.server, "r", "t", tt.exe)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("got %v, want error %v", err, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(foreign, "hooks", "post-receive")); string(b) != "#!/bin/sh\necho mine\n" {
		t.Errorf("foreign hook changed to %q", b)
	}
}

func TestParseUpdates(t *testing.T) {
	z, a, b := strings.Repeat("0", 40), strings.Repeat("a", 40), strings.Repeat("b", 40)
	tests := []struct {
		in   string
		want []Update
		err  bool
	}{
		{z + " " + a + " refs/heads/main\n" + a + " " + b + " refs/tags/v 1\r\n\n", []Update{{z, a, "refs/heads/main"}, {a, b, "refs/tags/v 1"}}, false},
		{"", nil, false},
		{a + " " + b, nil, true},
		{a + " " + b + " main", nil, true},
		{"-x " + b + " refs/heads/x", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseUpdates(strings.NewReader(tt.in))
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseUpdates(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func FuzzPostReceiveLines(f *testing.F) {
	z, a := strings.Repeat("0", 40), strings.Repeat("a", 40)
	f.Add(z + " " + a + " refs/heads/main\n")
	f.Add(a + " " + z + " refs/tags/v1\r\n" + a + " " + a + " refs/heads/x y")
	f.Fuzz(func(t *testing.T, in string) {
		ups, err := ParseUpdates(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, u := range ups {
			if !scm.ValidSHA(u.Old) || !scm.ValidSHA(u.New) || !strings.HasPrefix(u.Ref, "refs/") || strings.ContainsAny(u.Ref, "\n") {
				t.Fatalf("accepted bad update %+v", u)
			}
		}
	})
}

func TestPostReceiveServerAnswers(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "app.git")
	work := filepath.Join(dir, "work")
	gitT(t, dir, "init", "-q", "--bare", bare)
	gitT(t, dir, "clone", "-q", bare, work)
	gitT(t, work, "commit", "-q", "--allow-empty", "-m", "x")
	gitT(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	sha := strings.TrimSpace(gitT(t, work, "rev-parse", "HEAD"))
	zero := strings.Repeat("0", 40)
	tests := []struct {
		name    string
		status  int
		stdin   string
		wantOut string // the output starts with it
		wantErr bool
		spooled int // pushes left in the spool
		failed  int // pushes moved to the failed directory
	}{
		{"accepted", http.StatusAccepted, zero + " " + sha + " refs/heads/main\n", "runnel: queued run for refs/heads/main\n", false, 0, 0},
		{"already received", http.StatusOK, zero + " " + sha + " refs/heads/main\n", "runnel: the run for refs/heads/main was queued before\n", false, 0, 0},
		{"nothing to do", http.StatusNoContent, zero + " " + sha + " refs/heads/main\n", "runnel: nothing to run for refs/heads/main\n", false, 0, 0},
		{"refused", http.StatusUnauthorized, zero + " " + sha + " refs/heads/main\n", "runnel: could not queue a run for refs/heads/main: server answered 401 Unauthorized: bad token (kept in " + filepath.Join(bare, SpoolDir, FailedDir), true, 0, 1},
		{"unavailable", http.StatusServiceUnavailable, zero + " " + sha + " refs/heads/main\n", "runnel: the server ", false, 1, 0},
		{"deletion and notes skipped", http.StatusInternalServerError, sha + " " + zero + " refs/heads/main\n" + zero + " " + sha + " refs/notes/commits\n", "", false, 0, 0},
		{"malformed input", http.StatusAccepted, "garbage\n", "", true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(filepath.Join(bare, SpoolDir))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "bad token", tt.status)
			}))
			defer srv.Close()
			var out strings.Builder
			err := PostReceive(context.Background(), strings.NewReader(tt.stdin),
				Config{RepoPath: bare, ServerURL: srv.URL, Repo: "r", Token: "t", Client: srv.Client(), Out: &out})
			if (err != nil) != tt.wantErr || !strings.HasPrefix(out.String(), tt.wantOut) || (tt.wantOut == "") != (out.String() == "") {
				t.Errorf("got output %q, error %v; want %q..., error %v", out.String(), err, tt.wantOut, tt.wantErr)
			}
			if got := spoolFiles(t, bare, ""); len(got) != tt.spooled {
				t.Errorf("spooled: got %v, want %d", got, tt.spooled)
			}
			if got := spoolFiles(t, bare, FailedDir); len(got) != tt.failed {
				t.Errorf("failed: got %v, want %d", got, tt.failed)
			}
		})
	}
}

func TestLoadConfigFallsBackToEnv(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "app.git")
	gitT(t, dir, "init", "-q", "--bare", bare)
	gitT(t, bare, "config", KeyRepo, "from/config")
	env := map[string]string{"RUNNEL_SERVER": "http://ci:8080", "RUNNEL_REPO": "from/env", "RUNNEL_TOKEN": "tok"}
	got, err := LoadConfig(bare, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got.ServerURL != "http://ci:8080" || got.Repo != "from/config" || got.Token != "tok" || got.RepoPath != bare {
		t.Errorf("got %+v, want server and token from env, repo from git config", got)
	}
	if _, err := LoadConfig(bare, func(string) string { return "" }); err == nil {
		t.Error("got nil error with no server or token, want one")
	}
}
