package runner

import (
	"context"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
)

// Bus carries jobs and cancellations to agents and tells who is there. It
// speaks the wire protocol (agents/wire) and nothing else; its one
// implementation is agents/natsbus's Dispatcher, which cmd/runnel wires
// in (the runner links no bus: `go list -deps ./runner` lists only
// agents/wire of agents/). Agents' updates and log chunks come back the
// other way through Runner.Handler, which the bus's owner passes to the
// dispatcher's Run.
//
// The runner relies on the bus being durable: a published job stays in
// the queue across server restarts. Attempts are the runner's: agents
// claim jobs from it (wire rule 3), and it publishes a new attempt of a
// stage whose agent went silent (wire rule 4). Methods are called
// concurrently.
type Bus interface {
	// Publish hands a job to an agent whose labels match the stage's. It
	// returns once the job is durably accepted; publishing the same (run,
	// stage, attempt) again is deduplicated (wire.JobMsgID).
	Publish(ctx context.Context, j *wire.Job) error
	// Cancel tells the agents running c's stage attempts to stop. It is
	// best effort (core NATS); the runner repeats it on stale updates.
	Cancel(ctx context.Context, c wire.Cancel) error
	// Agents lists the agents whose presence the bus has seen, lost ones
	// included (Lost set).
	Agents() []wire.AgentStatus
}

// AgentInfo is a connected agent as the HTTP API (GET /api/v1/agents) and
// the UI show it. It is a view of wire.AgentStatus without the
// protocol's fields (version, presence kind, heartbeat interval), so the
// API's JSON does not change with the wire protocol.
type AgentInfo struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Running  int               `json:"running"`
	LastSeen time.Time         `json:"last_seen"`
}

// Agents lists the agents the bus sees that are not lost.
func (r *Runner) Agents() []AgentInfo {
	var out []AgentInfo
	for _, a := range r.cfg.Bus.Agents() {
		if a.Lost {
			continue
		}
		out = append(out, AgentInfo{Name: a.Name, Labels: a.Labels, Capacity: a.Capacity, Running: a.Running, LastSeen: a.LastSeen})
	}
	return out
}
