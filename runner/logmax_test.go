package runner

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/logs"
	"github.com/runnel-ci/runnel/runner/natsserver"
	"github.com/runnel-ci/runnel/runner/runnertest"
	"github.com/runnel-ci/runnel/runner/store"
)

// TestStepLogMaxOnServer: an agent sends more of a step's log than the
// server keeps (its own cap is the default, the server's smaller), and
// the log's first chunk is stored only after the others: the server cuts
// the log where the cap falls in chunk order, ends it with the note, and
// counts the rest; the run and the next step's log are not affected.
func TestStepLogMaxOnServer(t *testing.T) {
	const limit = 300000
	flaky := &failLate{seq: 0}
	f := newFixtureOpts(t, runnertest.Options{Wrap: func(h natsserver.Handler) natsserver.Handler {
		flaky.Handler = h
		return flaky
	}}, time.Minute)
	f.logs.SetStepMax(limit)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ev := f.push(map[string]string{".pipeline.yml": "version: 1\nstages:\n  a:\n    steps:\n" +
		"      - name: s1\n        run: seq 1 200000\n      - name: s2\n        run: echo done\n"})
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	if run = f.wait(run.ID, time.Minute); run.Status != store.StatusSuccess {
		t.Fatalf("run %s, want success", run.Status)
	}
	if !flaky.failed.Load() {
		t.Fatal("chunk 0 was never handled")
	}
	var out strings.Builder
	for i := 1; i <= 200000; i++ {
		out.WriteString(strconv.Itoa(i) + "\n")
	}
	// Followers read until the logs are closed (their chunk 0 stored).
	for step := range 2 {
		r := f.logs.Follow(ctx, LogKey(run.ID, "a", 1, step), 0, nil)
		_, err := io.Copy(io.Discard, r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	want := out.String()[:limit] + string(logs.TruncationNote(limit))
	if got := f.log(run, "a", 0); got != want {
		t.Errorf("stored log: %d bytes ending %q, want %d ending %q", len(got), got[max(len(got)-60, 0):], len(want), want[len(want)-60:])
	}
	if got := f.log(run, "a", 1); got != "done\n" {
		t.Errorf("second step's log %q, want %q", got, "done\n")
	}
	if got, want := f.metric("runnel_step_log_dropped_bytes_total", nil), float64(out.Len()-limit); got != want {
		t.Errorf("dropped bytes metric = %v, want %v", got, want)
	}
}
