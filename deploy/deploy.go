package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Provider performs blue/green releases on one platform.
//
// Contract:
//   - Deploy starts the release's version (green) beside the serving one
//     (blue), waits until it is healthy, shifts traffic to it in
//     rel.TrafficSteps checking health at every step, and then either
//     finishes (green serves 100 %, blue is removed) or rolls back (blue
//     serves 100 %, green is removed).
//   - When ctx is cancelled mid-release, Deploy rolls back under a context
//     detached from ctx (with its own timeout) and returns: the service is
//     left serving the old version.
//   - Deploy is idempotent for a version that already serves all traffic
//     (it returns Succeeded without touching anything), and it removes the
//     leftovers of an interrupted earlier release of the same app before
//     starting a new green.
//   - Deploy returns a nil error exactly when Result.Outcome is Succeeded;
//     otherwise the error wraps ErrRolledBack or ErrFailed (and ctx.Err()
//     when the release was cancelled). The Result is filled in either case.
//   - progress, when not nil, is called synchronously from the goroutine
//     that called Deploy; it must not block for long.
//   - A Provider is safe for concurrent use for different apps; concurrent
//     releases of the same app are not supported (the pipeline's
//     concurrency groups serialise deploy stages).
type Provider interface {
	Deploy(ctx context.Context, rel Release, progress func(Event)) (Result, error)
}

// Release is one request to put a version of an app into service.
type Release struct {
	// App names the service; providers label and name resources by it.
	App string
	// Version is the version being released (e.g. a commit SHA or a tag);
	// it is recorded on the platform so that the next release knows what
	// it replaces.
	Version string
	// ID is the identity of the deployment this release is (a run and
	// its stage: the same for every attempt of the stage), "" when it has
	// none. A provider whose platform runs the release itself records it
	// there, so that a re-delivered stage finds the release it started
	// and follows it instead of starting another.
	ID string
	// Attempt is the stage attempt making the release (with ID, a
	// fencing token): a provider whose traffic switch outlives the agent
	// refuses a lower attempt of a release once a higher one drove it, so
	// the stale attempt of a re-delivered stage (an agent frozen or cut
	// off, not dead) cannot act under the new one. 0: none.
	Attempt int
	// Image is the container image of the version.
	Image string
	// Command overrides the image's command when not empty.
	Command []string
	// Env is the container environment.
	Env map[string]string
	// Port is the container port that serves traffic.
	Port int
	// Health says how the new version is probed.
	Health HealthCheck
	// TrafficSteps are the successive percentages of traffic sent to the
	// new version, strictly increasing, each in 1..100. A final 100 is
	// implied when missing. Empty means a single switch: [100].
	TrafficSteps []int
	// BakeTime is how long each step is held (and probed) before the next
	// one; zero holds a step for one probe only.
	BakeTime time.Duration
	// Interval, when set, is how long each step below 100 % is held
	// instead of BakeTime (a canary's or a linear step's time); BakeTime
	// then holds only the final 100 %.
	Interval time.Duration
	// StopOnFailure leaves the traffic as it was when the release failed
	// after green took traffic, for a person to look at, instead of
	// rolling back (outcome Failed). The next release's Prepare cleans up.
	StopOnFailure bool
}

// HealthCheck describes a readiness and liveness probe of the new version.
// A provider uses the fields that apply to it (see its documentation).
type HealthCheck struct {
	// Path is the HTTP path probed with GET; a 2xx or 3xx answer is healthy.
	Path string
	// Exec, when set, is run inside the container instead of the HTTP
	// probe; exit status 0 is healthy.
	Exec []string
	// Interval between probes (default 1 s).
	Interval time.Duration
	// Timeout of one probe (default 2 s).
	Timeout time.Duration
	// StartTimeout is how long the new version may take to become healthy
	// before any traffic is sent to it (default 60 s).
	StartTimeout time.Duration
	// Failures is how many consecutive failed probes during a traffic step
	// trigger a rollback (default 1).
	Failures int
}

// Outcome is how a release ended.
type Outcome string

// Outcomes. The strings are stable: they are stored and reported.
const (
	// Succeeded: the new version serves all traffic and the old one is gone.
	Succeeded Outcome = "succeeded"
	// RolledBack: the new version took traffic and was then taken out of
	// service; the old version serves all traffic again.
	RolledBack Outcome = "rolled_back"
	// Failed: the new version never took traffic (it did not start or never
	// became healthy), or the release could not be completed or undone.
	Failed Outcome = "failed"
)

// Sentinels wrapped by Deploy's error.
var (
	ErrRolledBack = errors.New("release rolled back")
	ErrFailed     = errors.New("release failed")
)

// Result reports a finished release.
type Result struct {
	Outcome Outcome
	// From is the version that served before the release ("" for a first
	// release); To is the released version.
	From, To string
	// Steps are the traffic steps that were entered, in order.
	Steps []Step
	// Reason explains a rollback or failure ("" on success).
	Reason            string
	Started, Finished time.Time
}

// Step is one traffic step of a release.
type Step struct {
	// Weight is the percentage of traffic sent to the new version.
	Weight   int
	Started  time.Time
	Finished time.Time
	// Healthy reports whether the new version stayed healthy for the whole
	// step.
	Healthy bool
}

// Phase names the point of a release an Event reports.
type Phase string

// Phases, in the order a release passes through them.
const (
	PhaseStart    Phase = "start"    // blue found, about to create green
	PhaseCreate   Phase = "create"   // green created
	PhaseHealthy  Phase = "healthy"  // green passed its first health check
	PhaseShift    Phase = "shift"    // traffic weight changed
	PhaseProbe    Phase = "probe"    // a health probe failed
	PhaseFinish   Phase = "finish"   // green primary, blue removed
	PhaseRollback Phase = "rollback" // rolling back
	PhaseDone     Phase = "done"     // the release ended (see Outcome)
)

// Event is one progress report of a release, for logs.
type Event struct {
	Time    time.Time
	App     string
	Phase   Phase
	Weight  int // percentage of traffic on green after the event
	Message string
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s [%s] green=%d%% %s", e.Time.Format(time.RFC3339), e.App, e.Phase, e.Weight, e.Message)
}

// Steps returns the normalised traffic steps of rel: validated, with a
// final 100.
func (rel Release) Steps() ([]int, error) {
	if len(rel.TrafficSteps) == 0 {
		return []int{100}, nil
	}
	out := make([]int, 0, len(rel.TrafficSteps)+1)
	prev := 0
	for _, w := range rel.TrafficSteps {
		if w < 1 || w > 100 {
			return nil, fmt.Errorf("traffic step %d%%: want 1..100", w)
		}
		if w <= prev {
			return nil, fmt.Errorf("traffic steps %v: want strictly increasing", rel.TrafficSteps)
		}
		out = append(out, w)
		prev = w
	}
	if prev != 100 {
		out = append(out, 100)
	}
	return out, nil
}

// Linear reports whether steps (as Steps returns them, two or more) are
// p, 2p, 3p, … and a final 100: equal shifts that AWS's linear
// strategies can take.
func Linear(steps []int) bool {
	p := steps[0]
	for i, w := range steps[:len(steps)-1] {
		if w != (i+1)*p {
			return false
		}
	}
	return steps[len(steps)-1]-steps[len(steps)-2] <= p
}

// Validate reports what is missing or wrong in rel.
func (rel Release) Validate() error {
	var errs []error
	if rel.App == "" {
		errs = append(errs, errors.New("app is empty"))
	}
	if rel.Version == "" {
		errs = append(errs, errors.New("version is empty"))
	}
	if _, err := rel.Steps(); err != nil {
		errs = append(errs, err)
	}
	if rel.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %s is negative", rel.Interval))
	}
	if rel.BakeTime < 0 {
		errs = append(errs, fmt.Errorf("bake time %s is negative", rel.BakeTime))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release %s %s: %w", rel.App, rel.Version, err)
	}
	return nil
}

func (h HealthCheck) withDefaults() HealthCheck {
	if h.Interval <= 0 {
		h.Interval = time.Second
	}
	if h.Timeout <= 0 {
		h.Timeout = 2 * time.Second
	}
	if h.StartTimeout <= 0 {
		h.StartTimeout = 60 * time.Second
	}
	if h.Failures <= 0 {
		h.Failures = 1
	}
	return h
}
