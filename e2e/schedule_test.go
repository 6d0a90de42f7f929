package e2e

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL for TestScheduleTwoServersOnePostgres
)

const cronPipeline = `version: 1
inputs:
  version:
    default: "0.0"
stages:
  tick:
    image: runnel-test/busybox:latest
    when: {event: [cron, manual]}
    steps:
      - name: say
        run: echo "schedule=$RUNNEL_SCHEDULE event=$RUNNEL_EVENT version=$RUNNEL_INPUT_VERSION"
`

type tickView struct {
	ClaimedBy string    `json:"claimed_by"`
	At        time.Time `json:"at"`
	State     string    `json:"state"`
	RunID     int64     `json:"run_id"`
	Error     string    `json:"error"`
}

func (s *server) ticks(repo, sched string) []tickView {
	s.t.Helper()
	code, b := s.api("GET", "/api/v1/repos/"+repo+"/schedules/"+sched+"/ticks?limit=1000")
	if code != 200 {
		s.t.Fatalf("ticks: %d %s", code, b)
	}
	var out struct{ Ticks []tickView }
	if err := json.Unmarshal(b, &out); err != nil {
		s.t.Fatal(err)
	}
	return out.Ticks
}

// waitTicks polls until the schedule has at least n started ticks.
func (s *server) waitTicks(repo, sched string, n int, d time.Duration) []tickView {
	s.t.Helper()
	deadline := time.Now().Add(d)
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		ts := s.ticks(repo, sched)
		started := 0
		for _, t := range ts {
			if t.State == "started" {
				started++
			}
		}
		if started >= n {
			return ts
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("schedule %s: %d of %d ticks started within %s: %+v\nserver log:\n%s", sched, started, n, d, ts, s.log())
		}
		<-poll.C
	}
}

// scheduleRuns lists the runs of a repository's schedule.
func (s *server) scheduleRuns(repo, sched string) []int64 {
	s.t.Helper()
	code, b := s.api("GET", "/api/v1/runs?limit=1000&repo="+url.QueryEscape(repo))
	if code != 200 {
		s.t.Fatalf("runs: %d %s", code, b)
	}
	var out struct {
		Runs []struct {
			ID       int64  `json:"id"`
			Schedule string `json:"schedule"`
		}
	}
	json.Unmarshal(b, &out)
	var ids []int64
	for _, r := range out.Runs {
		if r.Schedule == sched {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// checkOneRunPerTick checks the invariant on a live schedule: tick times
// are distinct, every tick older than settle has exactly one run, and
// every run of the schedule is the run of exactly one tick. It returns
// the ticks.
func checkOneRunPerTick(t *testing.T, srv *server, repo, sched string, settle time.Duration) []tickView {
	t.Helper()
	runs := srv.scheduleRuns(repo, sched)
	ts := srv.ticks(repo, sched) // after the runs: every run's tick is in it
	seenAt, byRun := map[time.Time]bool{}, map[int64]int{}
	for _, tk := range ts {
		if seenAt[tk.At] {
			t.Errorf("tick %s claimed twice", tk.At)
		}
		seenAt[tk.At] = true
		if tk.RunID != 0 {
			byRun[tk.RunID]++
		}
		if time.Since(tk.At) > settle && (tk.State != "started" || tk.RunID == 0) {
			t.Errorf("tick %+v has no run %s after it", tk, settle)
		}
	}
	for _, id := range runs {
		if byRun[id] != 1 {
			t.Errorf("run %d is the run of %d ticks, want 1", id, byRun[id])
		}
	}
	if len(runs) == 0 {
		t.Errorf("no runs of schedule %s", sched)
	}
	return ts
}

// TestScheduleExactlyOnceAcrossKill: a schedule ticking every 2 s keeps
// exactly one run per tick while its server is SIGKILLed and restarted;
// the ticks missed while it was down make at most one run.
func TestScheduleExactlyOnceAcrossKill(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": "app", "forge": "git", "clone_url": bare})
	commit(t, work, cronPipeline)
	git(t, work, "push", "-q", "origin", "main")
	if out, code := runnelEnv(t, srv.url, srv.token, "schedule", "add", "app", "often", "--cron", "*/2 * * * * *"); code != 0 {
		t.Fatalf("schedule add: %d %s", code, out)
	}
	before := len(srv.waitTicks("app", "often", 3, 90*time.Second))
	killed := time.Now()
	srv.stop(syscall.SIGKILL)
	srv = startServer(t, dir, srv.token)
	restarted := time.Now()
	srv.waitTicks("app", "often", before+3, 120*time.Second)
	ts := checkOneRunPerTick(t, srv, "app", "often", 60*time.Second)
	inGap := 0
	for _, tk := range ts {
		if tk.At.After(killed) && tk.At.Before(restarted.Add(-2*time.Second)) {
			inGap++
		}
	}
	if inGap > 1 {
		t.Errorf("%d ticks of the downtime (%s to %s) ran, want at most 1: %+v", inGap, killed, restarted, ts)
	}
	// A run of the schedule sees its name and event.
	var logText string
	deadline := time.Now().Add(120 * time.Second)
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for logText == "" && time.Now().Before(deadline) {
		for _, id := range srv.scheduleRuns("app", "often") {
			if r := srv.run(id); r.Status == "success" {
				_, b := srv.api("GET", r.Stages[0].Steps[0].Log)
				logText = string(b)
				break
			}
		}
		<-poll.C
	}
	if !strings.Contains(logText, "schedule=often event=cron version=0.0") {
		t.Errorf("scheduled step log: %q", logText)
	}
	out, code := runnelEnv(t, srv.url, srv.token, "schedule", "list", "app")
	if code != 0 || !strings.Contains(out, "*/2 * * * * * UTC") || !strings.Contains(out, "started run") {
		t.Errorf("schedule list: %d %s", code, out)
	}
}

// TestOneOffRunAcrossRestart: a one-off run 5 s ahead, with the server
// restarted in between, runs once, with its inputs.
func TestOneOffRunAcrossRestart(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": "app", "forge": "git", "clone_url": bare})
	sha := commit(t, work, cronPipeline)
	git(t, work, "push", "-q", "origin", "main")
	out, code := runnelEnv(t, srv.url, srv.token, "trigger", "app", "--at", "+5s", "--input", "version=1.2")
	if code != 0 || !strings.Contains(out, "one-off run at-") {
		t.Fatalf("trigger --at: %d %s", code, out)
	}
	if n := len(srv.runs("limit=10")); n != 0 {
		t.Fatalf("%d runs before the time", n)
	}
	srv.stop(syscall.SIGTERM)
	srv = startServer(t, dir, srv.token)
	r := srv.waitRun(sha, 120*time.Second, terminal)
	if r.Status != "success" || r.Trigger != "at" {
		t.Fatalf("one-off run = %+v, want success by trigger at", r)
	}
	code, b := srv.api("GET", r.Stages[0].Steps[0].Log)
	if code != 200 || !strings.Contains(string(b), "event=manual version=1.2") {
		t.Errorf("one-off step log: %d %q", code, b)
	}
	// Once: the one-off run has no next tick (NEXT "-"), and one run.
	out, _ = runnelEnv(t, srv.url, srv.token, "schedule", "list", "app")
	if !strings.Contains(out, " once ") || !strings.Contains(out, " - ") || !strings.Contains(out, fmt.Sprintf("started run %d", r.ID)) {
		t.Errorf("schedule list after the run: %s", out)
	}
	if n := len(srv.runs("limit=100")); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// freshSchema makes a PostgreSQL schema for one test (dropped at its end)
// and returns RUNNEL_TEST_POSTGRES with search_path set to it; it fails
// under CI and skips elsewhere when the variable is empty.
func freshSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("RUNNEL_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but RUNNEL_TEST_POSTGRES is empty")
		}
		t.Skip("RUNNEL_TEST_POSTGRES not set")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "e2e_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(context.Background(), `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestScheduleTwoServersOnePostgres: two servers on one PostgreSQL
// database both watch a schedule ticking every 2 s: each tick makes
// exactly one run, on whichever server claimed it. Server a runs alone
// first, then both, then b alone once a is SIGKILLed, so both claim
// ticks whatever the phase of their polls (with both running, the one
// that polls first after a tick may win every time). Nothing of either
// install is left in Docker at the end.
func TestScheduleTwoServersOnePostgres(t *testing.T) {
	needDocker(t)
	dsn := freshSchema(t)
	dir := t.TempDir()
	os.MkdirAll(dir+"/a", 0o755)
	os.MkdirAll(dir+"/b", 0o755)
	a := startServer(t, dir+"/a", "", "--db", dsn)
	bare, work := repoSetup(t, dir)
	a.createRepo(map[string]any{"name": "app", "forge": "git", "clone_url": bare})
	commit(t, work, cronPipeline)
	git(t, work, "push", "-q", "origin", "main")
	if out, code := runnelEnv(t, a.url, a.token, "schedule", "add", "app", "often", "--cron", "*/2 * * * * *"); code != 0 {
		t.Fatalf("schedule add: %d %s", code, out)
	}
	n := len(a.waitTicks("app", "often", 2, 120*time.Second))
	b := startServer(t, dir+"/b", a.token, "--db", dsn)
	n = len(b.waitTicks("app", "often", n+4, 120*time.Second))
	checkOneRunPerTick(t, a, "app", "often", 60*time.Second)
	// With a SIGKILLed, b claims the ticks alone.
	a.stop(syscall.SIGKILL)
	b.waitTicks("app", "often", n+4, 120*time.Second)
	byServer := map[string]int{}
	for _, tk := range checkOneRunPerTick(t, b, "app", "often", 60*time.Second) {
		byServer[tk.ClaimedBy]++
	}
	if len(byServer) != 2 {
		t.Errorf("ticks claimed per server: %v, want both servers", byServer)
	}
	// b stops cleanly and leaves nothing; what a's killed process left
	// (a stage it was running: container, network, volume) is removed
	// as a's next start would.
	b.stop(syscall.SIGINT)
	pruneKilled(t, dir+"/a/data")
	nothingLeft(t, dir+"/a/data", dir+"/b/data")
}
