package githook

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/runnel-ci/runnel/scm/generic"
)

// spoolFiles lists the spooled pushes of bare (sub "" ) or of its sub
// directory of the spool.
func spoolFiles(t *testing.T, bare, sub string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(bare, SpoolDir, sub))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			out = append(out, e.Name())
		}
	}
	return out
}

// spoolRepo makes a bare repository with n commits on main and returns
// it with the SHAs, oldest first.
func spoolRepo(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	bare, work := filepath.Join(dir, "app.git"), filepath.Join(dir, "work")
	gitT(t, dir, "init", "-q", "--bare", bare)
	gitT(t, dir, "clone", "-q", bare, work)
	var shas []string
	for range n {
		gitT(t, work, "commit", "-q", "--allow-empty", "-m", "x")
		shas = append(shas, strings.TrimSpace(gitT(t, work, "rev-parse", "HEAD")))
	}
	gitT(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	return bare, shas
}

// intake is a hook endpoint that, like the server, keeps delivery ids:
// a delivery seen before is answered 200, a new one 202.
type intake struct {
	mu     sync.Mutex
	seen   map[string]bool
	order  []string // commits of new deliveries, in arrival order
	sends  map[string]int
	status int // when set, every request is answered with it
}

func (in *intake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p, err := generic.Decode(b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.status != 0 {
		http.Error(w, "unavailable", in.status)
		return
	}
	id := r.Header.Get(generic.DeliveryHeader)
	in.sends[id]++
	if in.seen[id] {
		w.WriteHeader(http.StatusOK)
		return
	}
	in.seen[id] = true
	in.order = append(in.order, p.Commit)
	w.WriteHeader(http.StatusAccepted)
}

func newIntake(t *testing.T) (*intake, *httptest.Server) {
	in := &intake{seen: map[string]bool{}, sends: map[string]int{}}
	srv := httptest.NewServer(in)
	t.Cleanup(srv.Close)
	return in, srv
}

// deadURL is a URL nothing listens on.
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

func push(t *testing.T, cfg Config, old, sha string) (string, error) {
	t.Helper()
	var out strings.Builder
	cfg.Out = &out
	err := PostReceive(context.Background(), strings.NewReader(old+" "+sha+" refs/heads/main\n"), cfg)
	return out.String(), err
}

// TestSpoolWhileServerDown: pushes while the server does not answer are
// spooled, the pusher is told the run is delayed, not lost, and the next
// push after the server is back sends them all, in push order, each once.
func TestSpoolWhileServerDown(t *testing.T) {
	bare, shas := spoolRepo(t, 3)
	zero := strings.Repeat("0", 40)
	down := Config{RepoPath: bare, ServerURL: deadURL(t), Repo: "r", Token: "t"}
	for i, sha := range shas[:2] {
		old := zero
		if i > 0 {
			old = shas[i-1]
		}
		out, err := push(t, down, old, sha)
		if err != nil {
			t.Fatalf("push %d while down: %v", i, err)
		}
		if !strings.Contains(out, "runnel: the run for refs/heads/main is delayed, not lost: the push is spooled in "+filepath.Join(bare, SpoolDir)) {
			t.Errorf("push %d output %q does not say the run is delayed, not lost", i, out)
		}
		if got := spoolFiles(t, bare, ""); len(got) != i+1 {
			t.Fatalf("after push %d: spooled %v, want %d", i, got, i+1)
		}
	}

	in, srv := newIntake(t)
	up := Config{RepoPath: bare, ServerURL: srv.URL, Repo: "r", Token: "t", Client: srv.Client()}
	out, err := push(t, up, shas[1], shas[2])
	if err != nil {
		t.Fatalf("push after the server is back: %v\n%s", err, out)
	}
	if n := strings.Count(out, "runnel: queued run for refs/heads/main"); n != 3 {
		t.Errorf("output %q: %d queued runs, want 3", out, n)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if strings.Join(in.order, ",") != strings.Join(shas, ",") {
		t.Errorf("server got commits %v, want %v (push order)", in.order, shas)
	}
	if left := spoolFiles(t, bare, ""); len(left) != 0 {
		t.Errorf("spool after flush: %v, want empty", left)
	}
}

// TestFlushAfterCrashSendsTheSameDelivery: a flush that died after the
// server took a push but before the file was removed sends it again with
// the same delivery id, so the server (which keeps delivery ids) makes no
// second run.
func TestFlushAfterCrashSendsTheSameDelivery(t *testing.T) {
	bare, shas := spoolRepo(t, 1)
	if _, err := push(t, Config{RepoPath: bare, ServerURL: deadURL(t), Repo: "r", Token: "t"}, strings.Repeat("0", 40), shas[0]); err != nil {
		t.Fatal(err)
	}
	files := spoolFiles(t, bare, "")
	if len(files) != 1 {
		t.Fatalf("spooled %v, want 1", files)
	}
	path := filepath.Join(bare, SpoolDir, files[0])
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in, srv := newIntake(t)
	cfg := Config{RepoPath: bare, ServerURL: srv.URL, Repo: "r", Token: "t", Client: srv.Client()}
	if res, err := Flush(context.Background(), cfg); err != nil || res.Sent != 1 {
		t.Fatalf("first flush: %+v, %v", res, err)
	}
	// The "crash": the file is back as if its removal never happened.
	if err := os.WriteFile(path, saved, 0o640); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cfg.Out = &out
	if res, err := Flush(context.Background(), cfg); err != nil || res.Sent != 1 {
		t.Fatalf("second flush: %+v, %v", res, err)
	}
	if !strings.Contains(out.String(), "was queued before") {
		t.Errorf("second flush output %q does not say the run was queued before", out.String())
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.sends) != 1 || len(in.order) != 1 {
		t.Errorf("server saw deliveries %v and runs %v, want one delivery id sent twice and one run", in.sends, in.order)
	}
}

// TestFlushKeepsOrderWhenUnavailable: the server answering 503 stops the
// flush; everything stays spooled in order, with no error.
func TestFlushKeepsOrderWhenUnavailable(t *testing.T) {
	bare, shas := spoolRepo(t, 3)
	entries := make([]spooled, len(shas))
	for i, sha := range shas {
		entries[i] = spooled{Delivery: "d" + string(rune('a'+i)), Payload: generic.Payload{Repo: "r", Ref: "refs/heads/main", Commit: sha}}
	}
	if err := spool(filepath.Join(bare, SpoolDir), entries); err != nil {
		t.Fatal(err)
	}
	in, srv := newIntake(t)
	in.status = http.StatusServiceUnavailable
	cfg := Config{RepoPath: bare, ServerURL: srv.URL, Repo: "r", Token: "t", Client: srv.Client()}
	res, err := Flush(context.Background(), cfg)
	if err != nil || res != (FlushResult{Left: 3}) {
		t.Fatalf("flush while unavailable: %+v, %v; want 3 left, no error", res, err)
	}
	in.mu.Lock()
	in.status = 0
	in.mu.Unlock()
	if res, err := Flush(context.Background(), cfg); err != nil || res != (FlushResult{Sent: 3}) {
		t.Fatalf("flush when back: %+v, %v; want 3 sent", res, err)
	}
	if strings.Join(in.order, ",") != strings.Join(shas, ",") {
		t.Errorf("server got commits %v, want %v", in.order, shas)
	}
}

// TestFlushRefusedAndGarbled: a push the server refuses and a file that
// is not a spooled push are moved to the failed directory, reported, and
// do not hold up the pushes behind them.
func TestFlushRefusedAndGarbled(t *testing.T) {
	bare, shas := spoolRepo(t, 1)
	dir := filepath.Join(bare, SpoolDir)
	if err := spool(dir, []spooled{{Delivery: "refused", Payload: generic.Payload{Repo: "r", Ref: "refs/heads/main", Commit: shas[0]}}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0000000000000000001-0000-garbled.json"), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := spool(dir, []spooled{{Delivery: "good", Payload: generic.Payload{Repo: "r", Ref: "refs/heads/main", Commit: shas[0]}}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(generic.DeliveryHeader) == "refused" {
			http.Error(w, "no such repo", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	var out strings.Builder
	res, err := Flush(context.Background(), Config{RepoPath: bare, ServerURL: srv.URL, Token: "t", Client: srv.Client(), Out: &out})
	if err == nil || res != (FlushResult{Sent: 1, Failed: 2}) {
		t.Fatalf("got %+v, %v; want 1 sent, 2 failed and an error", res, err)
	}
	if got := spoolFiles(t, bare, FailedDir); len(got) != 2 {
		t.Errorf("failed directory: %v, want the refused and the garbled push", got)
	}
	if !strings.Contains(out.String(), "404 Not Found: no such repo (kept in ") || !strings.Contains(out.String(), "not a spooled push") {
		t.Errorf("output %q does not report both", out.String())
	}
}

// TestConcurrentFlushes: flushes of one repository at the same time send
// each push once.
func TestConcurrentFlushes(t *testing.T) {
	bare, shas := spoolRepo(t, 1)
	var entries []spooled
	for i := range 20 {
		entries = append(entries, spooled{Delivery: "d" + strings.Repeat("x", i), Payload: generic.Payload{Repo: "r", Ref: "refs/heads/main", Commit: shas[0]}})
	}
	if err := spool(filepath.Join(bare, SpoolDir), entries); err != nil {
		t.Fatal(err)
	}
	in, srv := newIntake(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := Flush(context.Background(), Config{RepoPath: bare, ServerURL: srv.URL, Token: "t", Client: srv.Client()}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	in.mu.Lock()
	defer in.mu.Unlock()
	for id, n := range in.sends {
		if n != 1 {
			t.Errorf("delivery %s sent %d times, want 1", id, n)
		}
	}
	if len(in.sends) != 20 {
		t.Errorf("%d deliveries sent, want 20", len(in.sends))
	}
}
