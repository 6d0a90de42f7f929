package runner

import (
	"context"
	"time"

	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/agents/workspace"
	"github.com/runnel-ci/runnel/pipeline"
)

// Job is one stage attempt sent to an agent.
type Job struct {
	RunID   int64            `json:"run_id"`
	Repo    string           `json:"repo"`
	Stage   *pipeline.Stage  `json:"stage"`
	Attempt int              `json:"attempt"`
	Source  workspace.Source `json:"source"`
}

// UpdateKind says what an Update reports.
type UpdateKind string

// Update kinds.
const (
	UpdateStageStarted  UpdateKind = "stage_started"
	UpdateStepStarted   UpdateKind = "step_started"
	UpdateStepFinished  UpdateKind = "step_finished"
	UpdateStageFinished UpdateKind = "stage_finished"
	UpdateLog           UpdateKind = "log"
	UpdateHeartbeat     UpdateKind = "heartbeat"
	// UpdateLost: the bus gave up on the job (e.g. JetStream MaxDeliver).
	UpdateLost UpdateKind = "lost"
)

// Update is what an agent reports about a stage attempt.
type Update struct {
	Kind    UpdateKind `json:"kind"`
	RunID   int64      `json:"run_id"`
	Stage   string     `json:"stage"` // stage ID
	Attempt int        `json:"attempt"`
	Agent   string     `json:"agent,omitempty"`
	Time    time.Time  `json:"time"`

	Step int `json:"step,omitempty"` // step index for step and log updates
	// StepName identifies the step when Step is -1 (NATS agents name steps).
	StepName    string            `json:"step_name,omitempty"`
	StepAttempt int               `json:"step_attempt,omitempty"`
	StepResult  *stage.StepResult `json:"step_result,omitempty"`
	Result      *stage.Result     `json:"result,omitempty"`

	Seq  int64  `json:"seq,omitempty"` // log chunk sequence
	Data []byte `json:"data,omitempty"`
}

// AgentInfo is an agent as the bus sees it.
type AgentInfo struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Running  int               `json:"running"`
	LastSeen time.Time         `json:"last_seen"`
}

// Bus carries jobs to agents. The runner receives agents' updates through
// Runner.HandleUpdate, which the bus's owner wires to the bus's consumer.
type Bus interface {
	// Dispatch hands a job to an agent whose labels match the stage's.
	// It returns once the job is durably accepted; the same (run, stage,
	// attempt) may be dispatched again after a server restart and must then
	// not run twice.
	Dispatch(ctx context.Context, j *Job) error
	// Cancel tells the agent running (run, stage, attempt) to stop.
	Cancel(ctx context.Context, runID int64, stageID string, attempt int) error
	// Agents lists the connected agents.
	Agents() []AgentInfo
}
