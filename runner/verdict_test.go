package runner

import (
	"testing"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/runner/store"
)

// TestUpdateVerdict: which updates change a stage, over plain values.
func TestUpdateVerdict(t *testing.T) {
	running := &store.Stage{Attempt: 2, Agent: "a", Status: store.StatusRunning}
	queued := &store.Stage{Attempt: 2, Status: store.StatusQueued}
	ended := &store.Stage{Attempt: 2, Agent: "a", Status: store.StatusSuccess}
	up := func(kind wire.Kind, agent string, attempt int) *wire.Update {
		return &wire.Update{Kind: kind, Agent: agent, Attempt: attempt}
	}
	tests := []struct {
		name string
		st   *store.Stage
		u    *wire.Update
		want verdict
	}{
		{"owner's step", running, up(wire.KindStepStarted, "a", 2), apply},
		{"owner's end", running, up(wire.KindFinished, "a", 2), apply},
		{"first start of a queued stage", queued, up(wire.KindStarted, "b", 2), apply},
		{"anything but a start before one is accepted", queued, up(wire.KindStepStarted, "b", 2), foreign},
		{"another agent for the current attempt", running, up(wire.KindFinished, "b", 2), foreign},
		{"server's lost speaks for the owner", running, up(wire.KindLost, wire.ServerAgent, 2), apply},
		{"end delivered again", ended, up(wire.KindFinished, "a", 2), endAgain},
		{"lost after the end", ended, up(wire.KindLost, wire.ServerAgent, 2), endAgain},
		{"heartbeat after the end", ended, up(wire.KindHeartbeat, "a", 2), stale},
		{"older attempt still running", running, up(wire.KindStepStarted, "a", 1), stale},
		{"older attempt's end", running, up(wire.KindFinished, "a", 1), staleEnd},
		{"older attempt lost", running, up(wire.KindLost, wire.ServerAgent, 1), staleEnd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := updateVerdict(tt.st, tt.u); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
