package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backend is the platform half of a Provider: the primitive operations
// that BlueGreen sequences. Providers implement it and call BlueGreen from
// their Deploy, so that every platform has the same release semantics.
//
// Every method may be called with a context detached from the release's
// (during rollback); every method must be safe to call again after it
// failed.
type Backend interface {
	// Prepare removes the leftovers of an interrupted earlier release of
	// rel.App (anything that is not the serving version) and returns the
	// version serving all traffic now, "" when there is none.
	Prepare(ctx context.Context, rel Release) (blue string, err error)
	// CreateGreen starts rel beside the serving version, taking no traffic.
	CreateGreen(ctx context.Context, rel Release) error
	// Probe runs one health check of green, which currently receives
	// weight percent of the traffic. nil means healthy.
	Probe(ctx context.Context, rel Release, weight int) error
	// Shift sends weight percent of the traffic to green and the rest to
	// the serving version.
	Shift(ctx context.Context, rel Release, weight int) error
	// Promote makes green the serving version (it already takes 100 %)
	// and removes the old one.
	Promote(ctx context.Context, rel Release) error
	// Rollback sends all traffic back to the serving version and removes
	// green, also a green that was only partly created.
	Rollback(ctx context.Context, rel Release) error
}

// RollbackTimeout bounds a rollback, which runs on a context detached from
// the release's so that a cancelled release is still undone.
const RollbackTimeout = 2 * time.Minute

// BlueGreen runs one blue/green release of rel on b with the semantics
// documented on Provider.
func BlueGreen(ctx context.Context, b Backend, rel Release, progress func(Event)) (Result, error) {
	r := &release{b: b, rel: rel, progress: progress, res: Result{To: rel.Version, Started: time.Now()}}
	r.run(ctx)
	r.res.Finished = time.Now()
	r.emit(PhaseDone, string(r.res.Outcome)+reasonSuffix(r.res.Reason))
	return r.res, r.err
}

type release struct {
	b        Backend
	rel      Release
	progress func(Event)
	weight   int // percentage on green now
	res      Result
	err      error
}

func reasonSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func (r *release) emit(p Phase, msg string) {
	if r.progress != nil {
		r.progress(Event{Time: time.Now(), App: r.rel.App, Phase: p, Weight: r.weight, Message: msg})
	}
}

// fail ends the release without any traffic having reached green.
func (r *release) fail(ctx context.Context, what string, cause error, undo bool) {
	r.res.Outcome = Failed
	r.res.Reason = fmt.Sprintf("%s: %v", what, cause)
	if undo {
		if err := r.undo(ctx); err != nil {
			r.res.Reason += fmt.Sprintf("; rollback: %v", err)
			cause = errors.Join(cause, err)
		}
	}
	r.err = fmt.Errorf("deploy %s %s: %s: %w: %w", r.rel.App, r.rel.Version, what, ErrFailed, cause)
}

// rollback ends a release after green took traffic.
func (r *release) rollback(ctx context.Context, what string, cause error) {
	r.res.Reason = fmt.Sprintf("%s: %v", what, cause)
	if err := r.undo(ctx); err != nil {
		r.res.Outcome = Failed
		r.res.Reason += fmt.Sprintf("; rollback: %v", err)
		r.err = fmt.Errorf("deploy %s %s: %s: %w: %w", r.rel.App, r.rel.Version, what, ErrFailed, errors.Join(cause, err))
		return
	}
	r.res.Outcome = RolledBack
	r.err = fmt.Errorf("deploy %s %s: %s: %w: %w", r.rel.App, r.rel.Version, what, ErrRolledBack, cause)
}

func (r *release) undo(ctx context.Context) error {
	r.emit(PhaseRollback, "sending all traffic to "+orNone(r.res.From)+" and removing "+r.rel.Version)
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RollbackTimeout)
	defer cancel()
	if err := r.b.Rollback(uctx, r.rel); err != nil {
		return err
	}
	r.weight = 0
	return nil
}

func orNone(v string) string {
	if v == "" {
		return "(no version)"
	}
	return v
}

func (r *release) run(ctx context.Context) {
	if err := r.rel.Validate(); err != nil {
		r.fail(ctx, "validate", err, false)
		return
	}
	steps, _ := r.rel.Steps()
	h := r.rel.Health.withDefaults()

	blue, err := r.b.Prepare(ctx, r.rel)
	if err != nil {
		r.fail(ctx, "prepare", err, false)
		return
	}
	r.res.From = blue
	if blue == r.rel.Version {
		r.res.Outcome = Succeeded
		r.weight = 100
		r.emit(PhaseStart, r.rel.Version+" already serves all traffic")
		return
	}
	r.emit(PhaseStart, fmt.Sprintf("replacing %s with %s, steps %v", orNone(blue), r.rel.Version, steps))

	if err := r.b.CreateGreen(ctx, r.rel); err != nil {
		r.fail(ctx, "create", err, true)
		return
	}
	r.emit(PhaseCreate, r.rel.Version+" created")

	if err := r.waitHealthy(ctx, h); err != nil {
		r.fail(ctx, "wait for health", err, true)
		return
	}
	r.emit(PhaseHealthy, r.rel.Version+" is healthy")

	for _, w := range steps {
		st := Step{Weight: w, Started: time.Now()}
		if err := ctx.Err(); err != nil {
			r.endStep(st, false)
			r.rollbackOrFail(ctx, fmt.Sprintf("before step %d%%", w), err)
			return
		}
		if err := r.b.Shift(ctx, r.rel, w); err != nil {
			r.endStep(st, false)
			r.rollbackOrFail(ctx, fmt.Sprintf("shift to %d%%", w), err)
			return
		}
		r.weight = w
		r.emit(PhaseShift, fmt.Sprintf("%d%% of traffic on %s", w, r.rel.Version))
		if err := r.bake(ctx, h, w); err != nil {
			r.endStep(st, false)
			r.rollbackOrFail(ctx, fmt.Sprintf("step %d%%", w), err)
			return
		}
		r.endStep(st, true)
	}

	if err := r.b.Promote(ctx, r.rel); err != nil {
		// Green takes all traffic and blue may be half removed: undoing
		// could remove the only serving version, so stop here. The next
		// release's Prepare cleans up.
		r.fail(ctx, "promote", err, false)
		return
	}
	r.emit(PhaseFinish, fmt.Sprintf("%s serves all traffic, %s removed", r.rel.Version, orNone(blue)))
	r.res.Outcome = Succeeded
}

func (r *release) endStep(st Step, healthy bool) {
	st.Finished = time.Now()
	st.Healthy = healthy
	r.res.Steps = append(r.res.Steps, st)
}

// rollbackOrFail rolls back; the outcome is RolledBack when green has
// taken traffic and Failed otherwise.
func (r *release) rollbackOrFail(ctx context.Context, what string, cause error) {
	switch {
	case r.weight == 0:
		r.fail(ctx, what, cause, true)
	case r.rel.StopOnFailure:
		r.emit(PhaseRollback, fmt.Sprintf("stopped with %d%% on %s: not rolling back (on failure: stop)", r.weight, r.rel.Version))
		r.fail(ctx, what, fmt.Errorf("stopped with %d%% of traffic on the new version: %w", r.weight, cause), false)
	default:
		r.rollback(ctx, what, cause)
	}
}

func (r *release) probe(ctx context.Context, h HealthCheck, w int) error {
	pctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	return r.b.Probe(pctx, r.rel, w)
}

// waitHealthy probes green until it is healthy or StartTimeout passes.
func (r *release) waitHealthy(ctx context.Context, h HealthCheck) error {
	deadline := time.Now().Add(h.StartTimeout)
	for {
		err := r.probe(ctx, h, 0)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %s: %w", h.StartTimeout, err)
		}
		if err := sleep(ctx, h.Interval); err != nil {
			return err
		}
	}
}

// bake holds a step for BakeTime (or Interval below 100 %), probing
// every health Interval (at least once).
func (r *release) bake(ctx context.Context, h HealthCheck, w int) error {
	hold := r.rel.BakeTime
	if w < 100 && r.rel.Interval > 0 {
		hold = r.rel.Interval
	}
	end := time.Now().Add(hold)
	failures := 0
	for {
		err := r.probe(ctx, h, w)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			failures++
			r.emit(PhaseProbe, fmt.Sprintf("probe failed (%d of %d): %v", failures, h.Failures, err))
			if failures >= h.Failures {
				return fmt.Errorf("unhealthy: %w", err)
			}
		} else {
			failures = 0
		}
		left := time.Until(end)
		if left <= 0 && failures == 0 {
			return nil
		}
		if err := sleep(ctx, min(h.Interval, max(left, h.Interval/4))); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
