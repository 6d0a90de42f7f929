package logs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/internal/assembly"
	"github.com/runnel-ci/runnel/internal/assembly/httpserver"
	"github.com/runnel-ci/runnel/internal/gittest"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/logview"
	"github.com/runnel-ci/runnel/runner/natsserver"
	"github.com/runnel-ci/runnel/runner/runnertest"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// lines is how many lines each step prints, one every gap.
const (
	lines = 20
	gap   = "0.05"
)

// stored records when each printed line was stored by the server (after
// the runner's HandleLog returned): the baseline of the same run.
type stored struct {
	natsserver.Handler
	mu  sync.Mutex
	lat []time.Duration
}

func (s *stored) Log(ctx context.Context, c *wire.LogChunk) error {
	err := s.Handler.Log(ctx, c)
	now := time.Now()
	s.mu.Lock()
	for _, l := range strings.Split(string(c.Data), "\n") {
		if ns, perr := strconv.ParseInt(strings.TrimSpace(l), 10, 64); perr == nil {
			s.lat = append(s.lat, now.Sub(time.Unix(0, ns)))
		}
	}
	s.mu.Unlock()
	return err
}

// BenchmarkFollowLatency runs b.N runs of one step that prints its clock
// (date +%s%N) 20 times, 50 ms apart, on the local shell engine; a
// client follows the step's log as Server-Sent Events from before the
// step starts. Each line's latency is its receipt minus its print time.
// Reported: p50/p99/max of all lines, p99 of the first lines, and the
// same percentiles of print → stored by the server (the baseline: agent
// flush and NATS), as ratios.
func BenchmarkFollowLatency(b *testing.B) {
	dir := b.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "db.sqlite"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	logs, err := logstore.New(filepath.Join(dir, "logs"))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	bus := runnertest.Start(b, runnertest.Options{Logger: log, Capacity: 1})
	var base *stored
	rn, q, err := assembly.StartCore(ctx, assembly.CoreConfig{Runner: runner.Config{Store: st, Bus: bus.Dispatcher, Logs: logs, Logger: log},
		Serve: func(h runner.BusHandler) error {
			base = &stored{Handler: h}
			bus.Serve(base)
			return nil
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer rn.Close()
	defer q.Drain(ctx)
	// The UI in front of the API, with the server's bounds, as `runnel
	// server` serves them.
	_, hs, err := httpserver.New(httpserver.Config{Store: st, Logs: logs, Runner: rn, Deliveries: q, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(hs.Handler)
	srv.Config = hs
	srv.Start()
	defer srv.Close()
	token, _, err := st.CreateToken(ctx, "bench", access.Admin)
	if err != nil {
		b.Fatal(err)
	}

	bare := filepath.Join(dir, "r.git")
	gittest.Run(b, dir, "init", "-q", "--bare", bare)
	work := filepath.Join(dir, "w")
	gittest.Run(b, dir, "clone", "-q", bare, work)
	pipe := fmt.Sprintf("version: 1\nstages:\n  a:\n    steps:\n      - name: clock\n        run: for i in $(seq %d); do date +%%s%%N; sleep %s; done\n", lines, gap)
	if err := os.WriteFile(filepath.Join(work, ".pipeline.yml"), []byte(pipe), 0o644); err != nil {
		b.Fatal(err)
	}
	gittest.Run(b, work, "add", ".")
	gittest.Run(b, work, "commit", "-qm", "clock")
	gittest.Run(b, work, "push", "-q", "origin", "HEAD:refs/heads/main")
	sha := gittest.Run(b, work, "rev-parse", "HEAD")
	repo, err := st.CreateRepo(ctx, store.Repo{Name: "bench", Forge: store.ForgeGit, CloneURL: bare, DefaultBranch: "main"})
	if err != nil {
		b.Fatal(err)
	}
	ev := &scm.Event{Kind: scm.KindPush, Repo: repo.Name, Ref: "refs/heads/main", Branch: "main", Commit: sha}

	var all, first []time.Duration
	b.ResetTimer()
	for range b.N {
		run, err := rn.Trigger(ctx, runner.TriggerRequest{Repo: repo, Event: ev, Trigger: store.TriggerGitHook})
		if err != nil {
			b.Fatal(err)
		}
		got, err := follow(srv.URL, token, run.ID)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != lines {
			b.Fatalf("run %d: %d lines followed, want %d", run.ID, len(got), lines)
		}
		all = append(all, got...)
		first = append(first, got[0])
	}
	b.StopTimer()
	base.mu.Lock()
	stor := slices.Clone(base.lat)
	base.mu.Unlock()
	p := func(d []time.Duration, q float64) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(all, 0.5), "p50-ms")
	b.ReportMetric(p(all, 0.99), "p99-ms")
	b.ReportMetric(p(all, 1), "max-ms")
	b.ReportMetric(p(first, 0.99), "first-p99-ms")
	b.ReportMetric(p(stor, 0.5), "stored-p50-ms")
	b.ReportMetric(p(stor, 0.99), "stored-p99-ms")
	b.ReportMetric(p(all, 0.99)/p(stor, 0.99), "p99/stored-p99")
	b.Logf("%d lines in %d runs (first lines %d)", len(all), b.N, len(first))
}

// follow reads the first step of stage a of run id as Server-Sent Events
// until the end event and returns each line's latency: receipt minus the
// time the step printed in it.
func follow(base, token string, id int64) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/runs/%d/stages/a/steps/0/log", base, id), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("follow run %d: %s", id, resp.Status)
	}
	var out []time.Duration
	err = logview.ReadEvents(resp.Body, func(ev logview.Event) error {
		now := time.Now()
		for _, l := range ev.Lines {
			ns, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
			if err != nil {
				return fmt.Errorf("line %q: %w", l, err)
			}
			out = append(out, now.Sub(time.Unix(0, ns)))
		}
		return nil
	})
	return out, err
}
