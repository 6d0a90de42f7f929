package pipeline

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event is what happened in the repository: the input to compilation.
// Every string field may come from an untrusted source (a branch name, a
// commit message); compilation only ever places them in environment
// variables, never into script text.
type Event struct {
	Kind    string   `json:"kind"`              // push, pull_request, tag, cron, manual
	Branch  string   `json:"branch,omitempty"`  // for pull_request: the target branch
	Tag     string   `json:"tag,omitempty"`     // set for Kind == "tag"
	Commit  string   `json:"commit,omitempty"`  // full SHA
	Message string   `json:"message,omitempty"` // commit message
	Author  string   `json:"author,omitempty"`
	Repo    string   `json:"repo,omitempty"`    // owner/name or a local name
	Ref     string   `json:"ref,omitempty"`     // full ref, e.g. refs/heads/main
	Changed []string `json:"changed,omitempty"` // changed paths; nil means unknown (path filters then match)
	// Inputs are values of a manual trigger; they reach steps as
	// RUNNEL_INPUT_<NAME> environment variables.
	Inputs map[string]string `json:"inputs,omitempty"`
	// Schedule names the schedule that started a cron or one-off run; it
	// reaches steps as RUNNEL_SCHEDULE.
	Schedule string `json:"schedule,omitempty"`
}

// Event kinds.
const (
	EventPush        = "push"
	EventPullRequest = "pull_request"
	EventTag         = "tag"
	EventCron        = "cron"
	EventManual      = "manual"
)

// Plan is one run's compiled pipeline: the stages that run, in a
// topological order of the needs DAG, with everything resolved. It holds no
// YAML and is what travels to agents.
type Plan struct {
	Stages []*Stage `json:"stages"`
}

// Stage is one compiled stage (one per matrix combination).
type Stage struct {
	// ID is unique in the plan: the stage key, plus the matrix values for an
	// expanded stage, e.g. "test" or "test[go=1.22,os=linux]".
	ID string `json:"id"`
	// Name is the stage key in the file.
	Name        string            `json:"name"`
	Matrix      map[string]string `json:"matrix,omitempty"`
	Image       string            `json:"image,omitempty"`
	Needs       []string          `json:"needs,omitempty"` // stage IDs
	Labels      map[string]string `json:"labels,omitempty"`
	Services    []Service         `json:"services,omitempty"`
	RunOn       RunOn             `json:"run_on"`
	Concurrency string            `json:"concurrency,omitempty"`
	Approval    bool              `json:"approval,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Timeout     Duration          `json:"timeout,omitempty"`
	// Env is the complete environment of the stage: pipeline env, stage env,
	// matrix values and RUNNEL_* variables. Step env is merged over it.
	Env map[string]string `json:"env,omitempty"`
	// Secrets are the secrets the stage asks for, by name: the plan holds
	// no value; the server resolves them into the job (wire.Job.Secrets).
	Secrets []SecretRef `json:"secrets,omitempty"`
	Steps   []*Step     `json:"steps"`
	// Artifacts, Receive, Fetch and Cache move files into and out of the
	// workspace around the steps; see artifacts.go.
	Artifacts *Artifacts `json:"artifacts,omitempty"`
	Receive   []string   `json:"receive,omitempty"`
	Fetch     []Fetch    `json:"fetch,omitempty"`
	Cache     []Cache    `json:"cache,omitempty"`
	// Container applies to every step's container (see StepContainer).
	Container *Container `json:"container,omitempty"`
	// Deploy, when set, is released after the steps by the last step,
	// named DeployStep, whose Deploy field is true.
	Deploy *Deploy `json:"deploy,omitempty"`
}

// RunOn says which outcome of a stage's needs lets it run.
type RunOn string

// RunOn values.
const (
	RunOnSuccess RunOn = "success" // all needs succeeded (the default)
	RunOnFailure RunOn = "failure" // some need failed (cleanup, notification)
	RunOnAlways  RunOn = "always"  // whatever happened
)

// Step is one command run in the stage workspace.
type Step struct {
	Name         string            `json:"name"`
	Run          string            `json:"run"`             // a shell script, run with sh -e
	Image        string            `json:"image,omitempty"` // overrides the stage image
	Env          map[string]string `json:"env,omitempty"`   // merged over the stage env
	Timeout      Duration          `json:"timeout,omitempty"`
	Retry        Retry             `json:"retry,omitempty"`
	AllowFailure bool              `json:"allow_failure,omitempty"`
	Container    *Container        `json:"container,omitempty"` // over the stage's; see StepContainer
	// Deploy marks the step that releases the stage's Deploy; it has no
	// Run script.
	Deploy bool `json:"deploy,omitempty"`
}

// Retry says how often a failed step is run again.
type Retry struct {
	Limit int `json:"limit,omitempty"` // extra attempts after the first
	// ExitCodes restricts retries to these exit codes; empty means any
	// non-zero exit code.
	ExitCodes []int `json:"exit_codes,omitempty"`
}

// Service is a sidecar container of a stage, reachable from the steps by
// its Name.
type Service struct {
	Name    string            `json:"name"`
	Image   string            `json:"image"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Ready   Readiness         `json:"ready,omitempty"`
	// Container is the service container's (the stage's does not apply).
	Container *Container `json:"container,omitempty"`
}

// Readiness says when a service is ready. With neither Port nor Command set
// the image's own healthcheck is used when it has one; otherwise the service
// is ready once started.
type Readiness struct {
	Port    int      `json:"port,omitempty"`    // TCP port that accepts connections
	Command []string `json:"command,omitempty"` // exec'd in the container; exit 0 means ready
	Timeout Duration `json:"timeout,omitempty"` // give up after this long
}

// Duration is a time.Duration written as a Go duration string ("1m30s") in
// JSON, so plans stay readable.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}
