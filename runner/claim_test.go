package runner

import (
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/runner/store"
)

func TestDecideClaim(t *testing.T) {
	tests := []struct {
		name         string
		st           store.Stage
		c            wire.Claim
		grant, write bool
	}{
		{"first claim of a queued attempt", store.Stage{Status: store.StatusQueued, Attempt: 2}, wire.Claim{Attempt: 2, Token: "t"}, true, true},
		{"repeat of the granted claim", store.Stage{Status: store.StatusQueued, Attempt: 2, Claim: "t"}, wire.Claim{Attempt: 2, Token: "t"}, true, false},
		{"repeat after started", store.Stage{Status: store.StatusRunning, Attempt: 2, Claim: "t"}, wire.Claim{Attempt: 2, Token: "t"}, true, false},
		{"a copy of a claimed attempt", store.Stage{Status: store.StatusQueued, Attempt: 2, Claim: "t"}, wire.Claim{Attempt: 2, Token: "u"}, false, false},
		{"a copy of a running attempt", store.Stage{Status: store.StatusRunning, Attempt: 2, Claim: "t"}, wire.Claim{Attempt: 2, Token: "u"}, false, false},
		{"an earlier attempt", store.Stage{Status: store.StatusQueued, Attempt: 3}, wire.Claim{Attempt: 2, Token: "t"}, false, false},
		{"a later attempt", store.Stage{Status: store.StatusQueued, Attempt: 1}, wire.Claim{Attempt: 2, Token: "t"}, false, false},
		{"finished stage", store.Stage{Status: store.StatusSuccess, Attempt: 2, Claim: "t"}, wire.Claim{Attempt: 2, Token: "t"}, false, false},
		{"cancelled stage", store.Stage{Status: store.StatusCanceled, Attempt: 2}, wire.Claim{Attempt: 2, Token: "t"}, false, false},
		{"running without claim (started unclaimed)", store.Stage{Status: store.StatusRunning, Attempt: 2}, wire.Claim{Attempt: 2, Token: "t"}, false, false},
		{"pending stage", store.Stage{Status: store.StatusPending, Attempt: 0}, wire.Claim{Attempt: 0, Token: "t"}, false, false},
		{"no token", store.Stage{Status: store.StatusQueued, Attempt: 1}, wire.Claim{Attempt: 1}, false, false},
	}
	for _, tt := range tests {
		grant, write, reason := decideClaim(&tt.st, &tt.c)
		if grant != tt.grant || write != tt.write {
			t.Errorf("%s: got grant %v write %v (%q), want %v %v", tt.name, grant, write, reason, tt.grant, tt.write)
		}
		if !grant && reason == "" {
			t.Errorf("%s: refused without a reason", tt.name)
		}
	}
}

func TestPriority(t *testing.T) {
	tests := []struct {
		st   store.Stage
		want bool
	}{
		{store.Stage{Attempt: 1}, false},
		{store.Stage{Attempt: 1, Concurrency: "production"}, true},
		{store.Stage{Attempt: 2}, true},
	}
	for _, tt := range tests {
		if got := priority(&tt.st); got != tt.want {
			t.Errorf("priority(attempt %d, group %q) = %v, want %v", tt.st.Attempt, tt.st.Concurrency, got, tt.want)
		}
	}
}

func TestLeaseExpired(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	const lease = 15 * time.Second
	tests := []struct {
		name  string
		quiet time.Duration // since the stage last reported
		lag   time.Duration
		lagAt time.Duration // before now
		want  bool
	}{
		{"reported recently", 5 * time.Second, 0, 0, false},
		{"silent for the lease, stream caught up", lease + time.Second, 10 * time.Millisecond, 0, true},
		{"silent for the lease, stream 10 s behind", lease, 10 * time.Second, time.Second, false},
		{"silent for lease plus lag", lease + 10*time.Second, 10 * time.Second, time.Second, true},
		{"old lag measure does not count", lease + time.Second, 10 * time.Second, lease, true},
		{"lag counts one lease at most", 2 * lease, time.Hour, time.Second, true},
		{"negative lag (clock skew) counts as none", lease, -time.Minute, time.Second, true},
	}
	for _, tt := range tests {
		now := t0.Add(time.Hour)
		if got := leaseExpired(now, now.Add(-tt.quiet), lease, tt.lag, now.Add(-tt.lagAt)); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
