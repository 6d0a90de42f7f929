package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/cron"
	"github.com/runnel-ci/runnel/runner/store"
)

// startScheduler runs the schedules of the store (runner/cron) until
// stop is called (idempotent; it waits for the loop to return).
func startScheduler(ctx context.Context, st *store.Store, rn *runner.Runner, inst string, log *slog.Logger) (*cron.Scheduler, func()) {
	sched := cron.New(cron.Config{Store: st, Install: inst, Logger: log,
		Fire: func(ctx context.Context, sc *store.Schedule, tickID int64) (*store.Run, error) {
			run, err := rn.Scheduled(ctx, sc, tickID)
			var ie *runner.InputError
			if errors.As(err, &ie) {
				return nil, cron.Permanent(err)
			}
			return run, err
		}})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sched.Run(ctx)
	}()
	var once sync.Once
	return sched, func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
}
