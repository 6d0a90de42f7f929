package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/deploy"
)

func TestSteps(t *testing.T) {
	tests := []struct {
		in      []int
		want    string
		wantErr string
	}{
		{nil, "[100]", ""},
		{[]int{10, 50, 100}, "[10 50 100]", ""},
		{[]int{10, 50}, "[10 50 100]", ""},
		{[]int{100}, "[100]", ""},
		{[]int{50, 10}, "", "strictly increasing"},
		{[]int{0, 50}, "", "want 1..100"},
		{[]int{10, 101}, "", "want 1..100"},
		{[]int{20, 20}, "", "strictly increasing"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			got, err := deploy.Release{TrafficSteps: tt.in}.Steps()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != tt.want {
				t.Errorf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestLinear(t *testing.T) {
	for _, tt := range []struct {
		steps []int
		want  bool
	}{
		{[]int{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, true}, {[]int{30, 60, 90, 100}, true}, {[]int{40, 80, 100}, true},
		{[]int{10, 100}, false}, {[]int{10, 30, 100}, false}, {[]int{30, 60, 100}, false},
	} {
		if got := deploy.Linear(tt.steps); got != tt.want {
			t.Errorf("Linear(%v) = %v, want %v", tt.steps, got, tt.want)
		}
	}
}

// platform is an in-memory Backend that records the calls BlueGreen makes
// and fails where told.
type platform struct {
	serving string
	calls   []string
	fail    map[string]error // call ("create", "probe@50", "shift@10", "promote", "rollback") -> error
}

func (p *platform) do(call string) error {
	p.calls = append(p.calls, call)
	return p.fail[call]
}

func (p *platform) Prepare(context.Context, deploy.Release) (string, error) {
	return p.serving, p.do("prepare")
}
func (p *platform) CreateGreen(context.Context, deploy.Release) error { return p.do("create") }
func (p *platform) Probe(_ context.Context, _ deploy.Release, w int) error {
	return p.do(fmt.Sprintf("probe@%d", w))
}
func (p *platform) Shift(_ context.Context, _ deploy.Release, w int) error {
	return p.do(fmt.Sprintf("shift@%d", w))
}
func (p *platform) Promote(context.Context, deploy.Release) error  { return p.do("promote") }
func (p *platform) Rollback(context.Context, deploy.Release) error { return p.do("rollback") }

func TestBlueGreen(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		serving string
		fail    map[string]error
		stop    bool
		outcome deploy.Outcome
		sentry  error
		calls   string
	}{
		{"success", "v1", nil, false, deploy.Succeeded, nil,
			"prepare create probe@0 shift@10 probe@10 shift@100 probe@100 promote"},
		{"already serving", "v2", nil, false, deploy.Succeeded, nil, "prepare"},
		{"prepare fails", "v1", map[string]error{"prepare": boom}, false, deploy.Failed, deploy.ErrFailed, "prepare"},
		{"create fails", "v1", map[string]error{"create": boom}, false, deploy.Failed, deploy.ErrFailed, "prepare create rollback"},
		{"first shift fails", "v1", map[string]error{"shift@10": boom}, false, deploy.Failed, deploy.ErrFailed,
			"prepare create probe@0 shift@10 rollback"},
		{"unhealthy under traffic", "v1", map[string]error{"probe@10": boom}, false, deploy.RolledBack, deploy.ErrRolledBack,
			"prepare create probe@0 shift@10 probe@10 rollback"},
		{"rollback fails", "v1", map[string]error{"probe@100": boom, "rollback": boom}, false, deploy.Failed, deploy.ErrFailed,
			"prepare create probe@0 shift@10 probe@10 shift@100 probe@100 rollback"},
		{"unhealthy under traffic, stop", "v1", map[string]error{"probe@10": boom}, true, deploy.Failed, deploy.ErrFailed,
			"prepare create probe@0 shift@10 probe@10"},
		{"create fails, stop still removes green", "v1", map[string]error{"create": boom}, true, deploy.Failed, deploy.ErrFailed,
			"prepare create rollback"},
		{"promote fails, no rollback", "v1", map[string]error{"promote": boom}, false, deploy.Failed, deploy.ErrFailed,
			"prepare create probe@0 shift@10 probe@10 shift@100 probe@100 promote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &platform{serving: tt.serving, fail: tt.fail}
			rel := deploy.Release{App: "web", Version: "v2", TrafficSteps: []int{10}, StopOnFailure: tt.stop,
				Health: deploy.HealthCheck{StartTimeout: time.Millisecond, Interval: time.Millisecond}}
			var events []deploy.Phase
			res, err := deploy.BlueGreen(context.Background(), p, rel, func(e deploy.Event) { events = append(events, e.Phase) })
			if got := strings.Join(p.calls, " "); got != tt.calls {
				t.Errorf("calls: got %q, want %q", got, tt.calls)
			}
			if res.Outcome != tt.outcome {
				t.Errorf("outcome: got %s, want %s (reason %q)", res.Outcome, tt.outcome, res.Reason)
			}
			if (err == nil) != (tt.sentry == nil) || tt.sentry != nil && !errors.Is(err, tt.sentry) {
				t.Errorf("err: got %v, want one wrapping %v", err, tt.sentry)
			}
			if tt.sentry != nil && res.Reason == "" {
				t.Errorf("no reason for outcome %s", res.Outcome)
			}
			if len(events) == 0 || events[len(events)-1] != deploy.PhaseDone {
				t.Errorf("events %v: want the last to be %s", events, deploy.PhaseDone)
			}
			wantFrom := tt.serving
			if tt.fail["prepare"] != nil {
				wantFrom = "" // unknown
			}
			if res.From != wantFrom || res.To != "v2" {
				t.Errorf("got from %q to %q, want from %q to v2", res.From, res.To, wantFrom)
			}
		})
	}
}

// TestCancel: a release whose context is cancelled during a step rolls
// back on a detached context and reports context.Canceled.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &platform{serving: "v1"}
	rel := deploy.Release{App: "web", Version: "v2", TrafficSteps: []int{10, 50}, BakeTime: time.Hour}
	res, err := deploy.BlueGreen(ctx, p, rel, func(e deploy.Event) {
		if e.Phase == deploy.PhaseShift && e.Weight == 10 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, deploy.ErrRolledBack) || res.Outcome != deploy.RolledBack {
		t.Fatalf("got %s, err %v; want rolled_back wrapping context.Canceled", res.Outcome, err)
	}
	if last := p.calls[len(p.calls)-1]; last != "rollback" {
		t.Errorf("last call: got %s, want rollback", last)
	}
}

// TestInterval: Interval holds the partial steps, BakeTime the final
// 100 %: with a long bake and a short interval, the probes at 10 % are
// few and the release is still held at 100 % until cancelled.
func TestInterval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &platform{serving: "v1"}
	rel := deploy.Release{App: "web", Version: "v2", TrafficSteps: []int{10}, Interval: time.Millisecond, BakeTime: time.Hour,
		Health: deploy.HealthCheck{Interval: time.Millisecond}}
	_, err := deploy.BlueGreen(ctx, p, rel, func(e deploy.Event) {
		if e.Phase == deploy.PhaseShift && e.Weight == 100 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v: want the release held at 100 %% until cancelled", err)
	}
	if !strings.Contains(strings.Join(p.calls, " "), "shift@10 probe@10") || slices.Contains(p.calls, "promote") {
		t.Errorf("calls %v: want 10 %% held briefly, then 100 %% held, no promote", p.calls)
	}
}

func TestValidate(t *testing.T) {
	err := deploy.Release{TrafficSteps: []int{50, 10}, BakeTime: -1}.Validate()
	for _, want := range []string{"app is empty", "version is empty", "strictly increasing", "negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to mention %q", err, want)
		}
	}
}
