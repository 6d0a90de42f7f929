package runner

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/agents/wire"
)

// NATSBus is the Bus over an agents/natsbus Dispatcher: jobs go to the
// JetStream work queue of their label set, cancels over core NATS, and
// presence comes from agents' hello/heartbeat messages. Its Handler turns
// the dispatcher's updates and log chunks into Runner.HandleUpdate calls.
type NATSBus struct {
	D *natsbus.Dispatcher
}

var (
	_ Bus         = (*NATSBus)(nil)
	_ presenceBus = (*NATSBus)(nil)
)

// presenceBus is implemented by buses whose agents outlive the server:
// the watchdog then asks whether a running stage's agent is still there
// instead of re-queueing (JetStream redelivers on its own).
type presenceBus interface {
	AgentAlive(name string) bool
}

// Dispatch publishes the job (message id per run, stage and attempt).
func (b *NATSBus) Dispatch(ctx context.Context, j *Job) error {
	ws := wire.Workspace{}
	if j.Source.URL != "" {
		ws = wire.Workspace{Kind: "git", URL: j.Source.URL, Commit: j.Source.Commit, Ref: j.Source.Ref, Depth: 1}
	}
	return b.D.Publish(ctx, &wire.Job{RunID: strconv.FormatInt(j.RunID, 10), StageID: j.Stage.ID, Attempt: j.Attempt,
		Stage: j.Stage, Workspace: ws})
}

// Cancel publishes a cancel for one stage attempt.
func (b *NATSBus) Cancel(ctx context.Context, runID int64, stageID string, attempt int) error {
	return b.D.Cancel(ctx, wire.Cancel{RunID: strconv.FormatInt(runID, 10), StageID: stageID, Attempt: attempt})
}

// Agents lists agents that are not lost.
func (b *NATSBus) Agents() []AgentInfo {
	var out []AgentInfo
	for _, a := range b.D.Agents() {
		if a.Lost {
			continue
		}
		out = append(out, AgentInfo{Name: a.Name, Labels: a.Labels, Capacity: a.Capacity, Running: a.Running, LastSeen: a.LastSeen})
	}
	return out
}

// AgentAlive reports whether the agent is present and running something.
func (b *NATSBus) AgentAlive(name string) bool {
	for _, a := range b.D.Agents() {
		if a.Name == name {
			return !a.Lost && a.Running > 0
		}
	}
	return false
}

// Handler returns the natsbus.Handler feeding r.
func (b *NATSBus) Handler(r *Runner) natsbus.Handler {
	return &natsHandler{r: r, steps: map[string][]string{}}
}

type natsHandler struct {
	r     *Runner
	mu    sync.Mutex
	steps map[string][]string // "run/stage" → step names, for log chunks
}

func (h *natsHandler) Update(ctx context.Context, wu *wire.Update) error {
	runID, err := strconv.ParseInt(wu.RunID, 10, 64)
	if err != nil {
		return nil // not ours; drop
	}
	u := Update{RunID: runID, Stage: wu.StageID, Attempt: wu.Attempt, Agent: wu.Agent, Time: wu.Time, StepName: wu.Step, Step: -1}
	switch wu.Kind {
	case wire.KindStarted:
		u.Kind = UpdateStageStarted
	case wire.KindStepStarted:
		u.Kind = UpdateStepStarted
	case wire.KindStepFinished:
		u.Kind = UpdateStepFinished
		u.StepResult = &stage.StepResult{Name: wu.Step, Status: stageStatusOf(wu.Status), ExitCode: wu.ExitCode, Reason: wu.Reason, Attempts: 1}
	case wire.KindFinished:
		u.Kind = UpdateStageFinished
		u.Result = &stage.Result{StageID: wu.StageID, Status: stageStatusOf(wu.Status), Reason: wu.Reason, Finished: wu.Time}
	case wire.KindHeartbeat:
		u.Kind = UpdateHeartbeat
	case wire.KindLost:
		u.Kind = UpdateLost
	default:
		return nil
	}
	h.r.HandleUpdate(ctx, u)
	return nil
}

func (h *natsHandler) Log(ctx context.Context, c *wire.LogChunk) error {
	runID, err := strconv.ParseInt(c.RunID, 10, 64)
	if err != nil {
		return nil
	}
	idx, err := h.stepIndex(ctx, runID, c.StageID, c.Step)
	if err != nil {
		return err
	}
	if idx < 0 {
		return nil
	}
	key := LogKey(runID, c.StageID, c.Attempt, idx)
	if len(c.Data) > 0 {
		if err := h.r.cfg.Logs.Append(key, int64(c.Seq), c.Data); err != nil {
			return err
		}
	}
	if c.EOF {
		return h.r.cfg.Logs.Finish(key)
	}
	return nil
}

func (h *natsHandler) stepIndex(ctx context.Context, runID int64, stageKey, step string) (int, error) {
	k := fmt.Sprintf("%d/%s", runID, stageKey)
	h.mu.Lock()
	names, ok := h.steps[k]
	h.mu.Unlock()
	if !ok {
		run, err := h.r.cfg.Store.Run(ctx, runID)
		if err != nil {
			return -1, nil // unknown run: drop
		}
		for _, st := range run.Stages {
			if st.Key == stageKey {
				for _, s := range st.Steps {
					names = append(names, s.Name)
				}
			}
		}
		h.mu.Lock()
		if len(h.steps) > 10000 {
			h.steps = map[string][]string{}
		}
		h.steps[k] = names
		h.mu.Unlock()
	}
	for i, n := range names {
		if n == step {
			return i, nil
		}
	}
	return -1, nil
}

func stageStatusOf(s wire.Status) stage.Status {
	switch s {
	case wire.StatusSuccess:
		return stage.StatusSuccess
	case wire.StatusFailure:
		return stage.StatusFailure
	case wire.StatusCancelled:
		return stage.StatusCanceled
	case wire.StatusTimeout:
		return stage.StatusTimeout
	case wire.StatusSkipped:
		return stage.StatusSkipped
	}
	return stage.StatusError
}
