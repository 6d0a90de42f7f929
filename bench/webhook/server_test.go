package webhook

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for fresh schemas

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-ci/runnel/internal/assembly"
	"github.com/runnel-ci/runnel/internal/assembly/httpserver"
	"github.com/runnel-ci/runnel/internal/gittest"
	"github.com/runnel-ci/runnel/internal/serverbus"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/deliveryq"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/natsserver"
	"github.com/runnel-ci/runnel/runner/statusq"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

const (
	fixture  = "../../scm/github/testdata/push.with-new-branch.json"
	repoName = "Codertocat/Hello-World" // the fixture's repository.full_name
	secret   = "bench-webhook-secret"
	pipe     = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    steps:
      - name: hello
        run: echo hello
`
)

// target is one HTTP endpoint under load.
type target struct {
	url  string // POST target
	body []byte // the signed push payload
	sig  string // X-Hub-Signature-256 of body
	// verify checks, after the load, that the deliveries were persisted
	// exactly once and their triggers finished; nil for the baseline.
	verify func(ctx context.Context, sent []string, window time.Duration, drain bool) (*check, error)
}

// serve runs srv on a real loopback listener until the test ends.
func serve(t testing.TB, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("http server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// baseline serves a handler that only reads the body and answers 202.
func baseline(t testing.TB, body []byte) *target {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
	return &target{url: serve(t, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}) + "/hooks/github", body: body, sig: sign(body)}
}

func sign(body []byte) string { return "sha256=" + hmacHex([]byte(secret), body) }

// git runs git in dir (internal/gittest).
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.Run(t, dir, args...)
}

// bareRepo makes a bare repository whose master has a .pipeline.yml and
// returns its path and the commit.
func bareRepo(t testing.TB) (string, string) {
	t.Helper()
	dir := t.TempDir()
	bare := filepath.Join(dir, "hello-world.git")
	git(t, dir, "init", "-q", "--bare", bare)
	work := filepath.Join(dir, "w")
	git(t, dir, "init", "-q", "-b", "master", work)
	if err := os.WriteFile(filepath.Join(work, ".pipeline.yml"), []byte(pipe), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "add", ".")
	git(t, work, "commit", "-qm", "pipeline")
	git(t, work, "push", "-q", bare, "HEAD:refs/heads/master")
	return bare, git(t, work, "rev-parse", "HEAD")
}

// payload returns the fixture with its pushed commit replaced by sha.
func payload(t testing.TB, sha string) []byte {
	t.Helper()
	raw, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("decode %s: %v", fixture, err)
	}
	p["after"] = sha
	if hc, ok := p["head_commit"].(map[string]any); ok {
		hc["id"] = sha
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// freshSchema creates a schema in the PostgreSQL database of base, drops
// it at the end of the test, and returns base with search_path set to it.
func freshSchema(t testing.TB, base string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "bench_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", base, err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.ExecContext(context.Background(), `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// dispatcher starts the server's bus (internal/serverbus) in dir, as
// `runnel server --no-agent` does: jobs are published durably and wait
// for an agent that never comes, so the benchmark measures ingestion and
// run creation, not builds. run starts the consumer of agents' events;
// everything stops when the test ends.
func dispatcher(t testing.TB, dir string) (d *natsserver.Dispatcher, run func(h natsserver.Handler)) {
	t.Helper()
	bus, err := serverbus.Start(context.Background(), serverbus.Options{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	d = bus.Dispatcher
	return d, func(h natsserver.Handler) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx, h) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("event consumer: %v", err)
			}
		})
	}
}

// runnel builds the server stack the way cmd/runnel's runServer does
// (store, logstore, metrics, status queue, runner, and the UI and API
// with the forge hooks as internal/assembly serves them) on dsn ("" = SQLite in a temp dir), registers the fixture's
// repository with a webhook secret and a local bare clone URL, and
// serves it on loopback.
func runnel(t testing.TB, dsn string) *target {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	if dsn == "" {
		dsn = filepath.Join(data, "runnel.db")
	} else {
		dsn = freshSchema(t, dsn)
	}
	// Info-level text logs formatted as the server does, then dropped.
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	st, err := store.Open(ctx, dsn, store.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs, err := logstore.New(filepath.Join(data, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	reg := prometheus.NewRegistry()
	mets, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	// As cmd/runnel's statusReporter: a repo without a status token
	// reports nothing, after a store lookup.
	statuses := statusq.New(statusq.ReporterFunc(func(ctx context.Context, s scm.Status) error {
		repo, err := st.Repo(ctx, s.Repo)
		if err != nil {
			return statusq.Permanent(err)
		}
		if repo.StatusToken != "" {
			return fmt.Errorf("bench repo %s has a status token", repo.Name)
		}
		return nil
	}), statusq.Options{Logger: log})
	bus, consume := dispatcher(t, data)
	rn, deliveries, err := assembly.StartCore(ctx, assembly.CoreConfig{
		Runner: runner.Config{Store: st, Bus: bus, Logs: logs, Statuses: statuses, Metrics: mets,
			Logger: log, BaseURL: "http://127.0.0.1", CacheDir: filepath.Join(data, "cache")},
		// 0: deliveryq's defaults, what `runnel server` uses.
		Deliveries: deliveryq.Config{Workers: envInt("RUNNEL_BENCH_WEBHOOK_TRIGGERS", 0), PerRepo: envInt("RUNNEL_BENCH_WEBHOOK_PER_REPO", 0)},
		Serve:      func(h runner.BusHandler) error { consume(h); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	api, srv, err := httpserver.New(httpserver.Config{Store: st, Logs: logs, Runner: rn, Deliveries: deliveries, Metrics: mets,
		Registry: reg, HookSpoolDir: data, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, srv)
	// Cleanups run last-in first-out: triggers, then listener, runner
	// and store stop.
	t.Cleanup(func() {
		// The benchmark is over: triggers still queued get 2 s, then are
		// cancelled (their deliveries end as failed).
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		api.StopHooks()
		deliveries.Drain(dctx)
		rn.Close()
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		if err := statuses.Close(sctx); err != nil {
			t.Errorf("status queue: %v", err)
		}
	})

	bare, sha := bareRepo(t)
	if _, err := st.CreateRepo(ctx, store.Repo{Name: repoName, Forge: store.ForgeGitHub, CloneURL: bare,
		WebhookSecret: secret, DefaultBranch: "master"}); err != nil {
		t.Fatal(err)
	}
	body := payload(t, sha)
	return &target{url: url + hookPath(), body: body, sig: sign(body),
		verify: func(ctx context.Context, sent []string, window time.Duration, drain bool) (*check, error) {
			return verify(ctx, st, sent, window, drain)
		}}
}

// hookPath is the hook URL's path: /hooks/github/{owner}/{name}, the
// recommended form (the secret is found from the URL), or /hooks/github
// when RUNNEL_BENCH_WEBHOOK_URL=body (the repo is read from the
// unverified body first).
func hookPath() string {
	if os.Getenv("RUNNEL_BENCH_WEBHOOK_URL") == "body" {
		return "/hooks/github"
	}
	return "/hooks/github/" + repoName
}

// check is what verify found.
type check struct {
	processed int           // deliveries handled into a run when the load ended
	pending   int           // deliveries still waiting for their trigger then
	rate      float64       // runs created per second in a window after the load
	drain     time.Duration // time from the end of the load until every trigger ran (drain=true)
}

// verify reads every delivery row through the store and checks that each
// sent delivery ID is stored exactly once and nothing else is stored
// (the benchmark fails if one was lost). It then measures the trigger
// rate for window and, if drain is set, waits until every delivery was
// processed into a run and checks that none failed.
func verify(ctx context.Context, st *store.Store, sent []string, window time.Duration, drain bool) (*check, error) {
	start := time.Now()
	want := make(map[string]int, len(sent))
	for _, d := range sent {
		want[d]++
	}
	got := make(map[string]int, len(sent))
	var c check
	var problems []string
	// Row ids are assigned in order; stop after a long run of missing ids
	// (a PostgreSQL sequence may have gaps).
	for id, missing := int64(1), 0; missing < 1000; id++ {
		d, err := st.Delivery(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			missing++
			continue
		}
		if err != nil {
			return nil, err
		}
		missing = 0
		got[d.DeliveryID]++
		switch d.State {
		case store.DeliveryReceived:
			c.pending++
		case store.DeliveryProcessed:
			c.processed++
		default:
			if len(problems) < 5 {
				problems = append(problems, fmt.Sprintf("delivery %s: state %s, error %q", d.DeliveryID, d.State, d.Error))
			}
		}
	}
	lost, dup, extra := 0, 0, 0
	for d := range want {
		switch got[d] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	for d := range got {
		if want[d] == 0 {
			extra++
		}
	}
	if lost+dup+extra > 0 || len(problems) > 0 {
		return nil, fmt.Errorf("deliveries: %d sent, %d stored; %d lost, %d stored twice or more, %d unexpected; %s",
			len(want), len(got), lost, dup, extra, strings.Join(problems, "; "))
	}
	runs := func() (int64, error) {
		cs, err := st.CountRuns(ctx)
		var n int64
		for _, c := range cs {
			n += c.N
		}
		return n, err
	}
	if c.pending > 0 {
		n0, err := runs()
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(window):
		}
		n1, err := runs()
		if err != nil {
			return nil, err
		}
		c.rate = float64(n1-n0) / time.Since(t0).Seconds()
	}
	if !drain {
		return &c, nil
	}
	for {
		p, err := st.PendingDeliveries(ctx, 1)
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("triggers did not drain: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.drain = time.Since(start)
	n, err := runs()
	if err != nil {
		return nil, err
	}
	if n != int64(len(sent)) {
		return nil, fmt.Errorf("got %d runs after every trigger ran, want %d", n, len(sent))
	}
	return &c, nil
}
