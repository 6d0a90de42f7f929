package store

import (
	"errors"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
)

// TestScheduleTicks: a tick is claimed once (compare and set on the
// schedule's next tick), and its run is linked once, in CreateRun.
func TestScheduleTicks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "app")
		t0 := time.Now().UTC().Truncate(time.Second)
		sc, err := s.CreateSchedule(ctx, Schedule{RepoID: repo.ID, Name: "nightly", Kind: ScheduleCron, Spec: "0 3 * * *",
			Timezone: "UTC", Branch: "main", Inputs: map[string]string{"k": "v"}, Missed: "run", NextAt: t0, By: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSchedule(ctx, Schedule{RepoID: repo.ID, Name: "nightly", Kind: ScheduleOnce, Branch: "main"}); !errors.Is(err, ErrDuplicate) {
			t.Errorf("same name again: %v, want ErrDuplicate", err)
		}
		due, err := s.DueSchedules(ctx, t0)
		if err != nil || len(due) != 1 || due[0].Inputs["k"] != "v" || due[0].Repo != "app" || due[0].Last != nil {
			t.Fatalf("DueSchedules = %+v, %v", due, err)
		}
		t1 := t0.Add(24 * time.Hour)
		id, err := s.ClaimTick(ctx, sc.ID, t0, t1, t0, "a", time.Minute)
		if err != nil || id == 0 {
			t.Fatalf("ClaimTick: %d, %v", id, err)
		}
		if _, err := s.ClaimTick(ctx, sc.ID, t0, t1, t0, "b", time.Minute); !errors.Is(err, ErrConflict) {
			t.Errorf("second claim of the same tick: %v, want ErrConflict", err)
		}
		if due, _ := s.DueSchedules(ctx, t0); len(due) != 0 {
			t.Errorf("due after the claim: %+v", due)
		}
		nr := NewRun{RepoID: repo.ID, Event: pipeline.Event{Kind: "cron", Branch: "main", Schedule: "nightly"}, Trigger: TriggerCron, TickID: id}
		run, err := s.CreateRun(ctx, nr)
		if err != nil || run.Schedule != "nightly" {
			t.Fatalf("CreateRun for the tick: %+v, %v", run, err)
		}
		if _, err := s.CreateRun(ctx, nr); !errors.Is(err, ErrConflict) {
			t.Errorf("a second run for the tick: %v, want ErrConflict", err)
		}
		if _, err := s.CreateRun(ctx, NewRun{RepoID: repo.ID, Event: pipeline.Event{Kind: "cron"}, Trigger: TriggerCron, TickID: id}); !errors.Is(err, ErrConflict) {
			t.Errorf("a second run for the tick through the context: %v, want ErrConflict", err)
		}
		runs, _ := s.ListRuns(ctx, RunFilter{RepoID: repo.ID})
		if len(runs) != 1 {
			t.Errorf("runs = %d, want 1", len(runs))
		}
		got, err := s.ScheduleByID(ctx, sc.ID)
		if err != nil || got.Last == nil || got.Last.State != TickStarted || got.Last.RunID != run.ID || !got.NextAt.Equal(t1) {
			t.Errorf("schedule after its tick: %+v (last %+v), %v", got, got.Last, err)
		}
		// A claim whose server died: stale for its own install at once,
		// for others after the lease; retaken once.
		id2, err := s.ClaimTick(ctx, sc.ID, t1, t1.Add(24*time.Hour), t1, "a", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := s.StaleTicks(ctx, "", time.Now()); len(st) != 0 {
			t.Errorf("stale before the lease: %+v", st)
		}
		if st, _ := s.StaleTicks(ctx, "", time.Now().Add(2*time.Hour)); len(st) != 1 {
			t.Errorf("stale after the lease: %+v", st)
		}
		st, _ := s.StaleTicks(ctx, "a", time.Now())
		if len(st) != 1 || st[0].ID != id2 {
			t.Fatalf("stale for its own install: %+v", st)
		}
		if err := s.RetakeTick(ctx, id2, 0, "a", time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.RetakeTick(ctx, id2, 0, "b", time.Hour); !errors.Is(err, ErrConflict) {
			t.Errorf("retake with a stale attempt count: %v, want ErrConflict", err)
		}
		if err := s.FailTick(ctx, id2, "no such branch", true, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRun(ctx, NewRun{RepoID: repo.ID, Event: pipeline.Event{Kind: "cron"}, Trigger: TriggerCron, TickID: id2}); !errors.Is(err, ErrConflict) {
			t.Errorf("a run for a failed tick: %v, want ErrConflict", err)
		}
		if err := s.DeleteSchedule(ctx, repo.ID, "nightly"); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.Schedules(ctx, repo.ID); len(list) != 0 {
			t.Errorf("schedules after delete: %+v", list)
		}
	})
}
