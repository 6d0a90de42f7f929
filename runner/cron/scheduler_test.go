package cron

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

// forEachDSN runs fn with a fresh database per backend: SQLite, and
// PostgreSQL in a fresh schema of RUNNEL_TEST_POSTGRES (required in CI).
func forEachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "sqlite://"+filepath.Join(t.TempDir(), "runnel.db")) })
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv("RUNNEL_TEST_POSTGRES")
		if base == "" {
			if os.Getenv("CI") != "" {
				t.Fatal("CI is set but RUNNEL_TEST_POSTGRES is empty")
			}
			t.Skip("RUNNEL_TEST_POSTGRES not set")
		}
		var b [6]byte
		rand.Read(b[:])
		schema := "test_" + hex.EncodeToString(b[:])
		admin, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Close() })
		if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
		u, _ := url.Parse(base)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		fn(t, u.String())
	})
}

func open(t *testing.T, dsn string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// newScheduler makes a scheduler on st whose Fire creates the tick's run
// through the store, linked to the tick as runner.Scheduled does.
func newScheduler(st *store.Store, install string, c *clock) *Scheduler {
	return New(Config{Store: st, Install: install, Now: c.now, Grace: 10 * time.Second, Lease: time.Minute,
		Fire: func(ctx context.Context, sc *store.Schedule, tick int64) (*store.Run, error) {
			return st.CreateRun(ctx, store.NewRun{RepoID: sc.RepoID, Trigger: store.TriggerCron, TickID: tick,
				Event: pipeline.Event{Kind: pipeline.EventCron, Branch: sc.Branch, Schedule: sc.Name}})
		}})
}

func setup(t *testing.T, st *store.Store, spec string, next time.Time, missed Missed) *store.Repo {
	t.Helper()
	ctx := context.Background()
	repo, err := st.CreateRepo(ctx, store.Repo{Name: "app", Forge: store.ForgeGit, CloneURL: "/srv/app.git", DefaultBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateSchedule(ctx, store.Schedule{RepoID: repo.ID, Name: "every2s", Kind: store.ScheduleCron,
		Spec: spec, Timezone: "UTC", Branch: "main", Missed: string(missed), NextAt: next}); err != nil {
		t.Fatal(err)
	}
	return repo
}

// runsPerTick returns the number of runs and the started ticks, and
// fails the test when a tick has two runs or a run has no tick.
func runsPerTick(t *testing.T, st *store.Store, repo *store.Repo) (runs int, ticks []time.Time) {
	t.Helper()
	ctx := context.Background()
	list, err := st.ListRuns(ctx, store.RunFilter{RepoID: repo.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	scs, _ := st.Schedules(ctx, repo.ID)
	ts, err := st.Ticks(ctx, scs[0].ID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	byRun := map[int64]bool{}
	for _, tk := range ts {
		if tk.State != store.TickStarted {
			continue
		}
		if tk.RunID == 0 || byRun[tk.RunID] {
			t.Errorf("tick %s: run %d (seen before: %v)", tk.At, tk.RunID, byRun[tk.RunID])
		}
		byRun[tk.RunID] = true
		ticks = append(ticks, tk.At)
	}
	for _, r := range list {
		if !byRun[r.ID] {
			t.Errorf("run %d belongs to no tick", r.ID)
		}
	}
	return len(list), ticks
}

// TestTwoServersOneTickOneRun: two schedulers on one database (each
// with its own connection pool, as two servers) look at the same clock
// over a minute of 2 s ticks: every tick makes exactly one run.
func TestTwoServersOneTickOneRun(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		a, b := open(t, dsn), open(t, dsn)
		t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
		repo := setup(t, a, "*/2 * * * * *", t0, MissedRun)
		c := &clock{t: t0}
		sa, sb := newScheduler(a, "server-a", c), newScheduler(b, "server-b", c)
		ctx := context.Background()
		for step := 0; step <= 120; step++ { // every 500 ms for 60 s
			c.set(t0.Add(time.Duration(step) * 500 * time.Millisecond))
			var wg sync.WaitGroup
			for _, s := range []*Scheduler{sa, sb} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := s.Pass(ctx, ""); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
		}
		runs, ticks := runsPerTick(t, a, repo)
		if runs != 31 || len(ticks) != 31 {
			t.Errorf("runs = %d, ticks = %d; want 31 each (12:00:00 to 12:01:00 every 2 s)", runs, len(ticks))
		}
	})
}

// TestDeadServersClaim: a claim whose server died before making the run
// is fired by the same install at once after its restart, by another
// only after the lease; and only once.
func TestDeadServersClaim(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		ctx := context.Background()
		t0 := time.Now().UTC().Truncate(2 * time.Second)
		repo := setup(t, st, "*/2 * * * * *", t0, MissedRun)
		scs, _ := st.Schedules(ctx, repo.ID)
		// Server "a" claimed the tick and was SIGKILLed.
		if _, err := st.ClaimTick(ctx, scs[0].ID, t0, t0.Add(time.Hour), t0, "a", time.Minute); err != nil {
			t.Fatal(err)
		}
		c := &clock{t: t0}
		other := newScheduler(st, "b", c)
		if err := other.Pass(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if n, _ := runsPerTick(t, st, repo); n != 0 {
			t.Fatalf("another server fired a live claim: %d runs", n)
		}
		restarted := newScheduler(st, "a", c)
		for range 2 {
			if err := restarted.Pass(ctx, "a"); err != nil {
				t.Fatal(err)
			}
		}
		if err := other.Pass(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if n, ticks := runsPerTick(t, st, repo); n != 1 || len(ticks) != 1 || !ticks[0].Equal(t0) {
			t.Errorf("after the restart: %d runs, ticks %v; want 1 run for %s", n, ticks, t0)
		}
	})
}

// TestMissedTicks: ticks missed while no server ran make one run, or
// none, as the schedule says.
func TestMissedTicks(t *testing.T) {
	for _, missed := range []Missed{MissedRun, MissedSkip} {
		t.Run(string(missed), func(t *testing.T) {
			st := open(t, "sqlite://"+filepath.Join(t.TempDir(), "db"))
			t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
			repo := setup(t, st, "0 * * * * *", t0, missed)
			// The server comes back 1 h 30 s later: 61 ticks passed, the
			// latest 30 s ago, beyond the grace of 10 s.
			c := &clock{t: t0.Add(time.Hour + 30*time.Second)}
			s := newScheduler(st, "a", c)
			for range 3 {
				if err := s.Pass(context.Background(), "a"); err != nil {
					t.Fatal(err)
				}
			}
			want := map[Missed]int{MissedRun: 1, MissedSkip: 0}[missed]
			if n, _ := runsPerTick(t, st, repo); n != want {
				t.Errorf("runs = %d, want %d", n, want)
			}
			scs, _ := st.Schedules(context.Background(), repo.ID)
			if next := scs[0].NextAt; !next.Equal(t0.Add(61 * time.Minute)) {
				t.Errorf("next tick = %s, want the first after %s", next, c.now())
			}
		})
	}
}
