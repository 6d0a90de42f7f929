// Package engine defines the executor interface an agent (and runnel run)
// uses to run a stage's steps, independent of where they run. Implementations
// live in subpackages: docker (the default) and local (sh on the host).
package engine

import (
	"context"
	"errors"
	"io"

	"github.com/runnel-ci/runnel/pipeline"
)

// Spec identifies one stage execution. The same Spec value is passed to
// Setup, every Run and Teardown of that stage.
type Spec struct {
	// Install is the id of the install the run belongs to (a server's, or
	// one `runnel run`'s; see internal/install): run ids are unique only
	// within it. Resource names and labels carry it, and cleanup of a
	// Spec's resources only matches its own install. "" means the engine's
	// own install.
	Install string
	RunID   string // unique per run within its install; used in resource names and labels
	// Attempt is the stage attempt (the lease's fencing number); resources of
	// different attempts never collide.
	Attempt int
	Stage   *pipeline.Stage
	// Source is a host directory whose contents are copied into the
	// workspace at Setup; empty means the workspace starts empty. The copy
	// means steps can never change the source directory.
	Source string
	// Secrets are the stage's secret values (see Secret); the caller
	// masks them in the output.
	Secrets []Secret
}

// Engine runs stages. An Engine is safe for concurrent use by several
// stages at once; calls for one Spec are made in order: Setup, Run (zero or
// more times, one at a time), Teardown.
type Engine interface {
	// Setup creates the stage's isolated environment: its workspace (filled
	// from Spec.Source), a private network and the service containers, and
	// returns once every service is ready. On error, the caller still calls
	// Teardown.
	Setup(ctx context.Context, s *Spec) error
	// Run runs one step to completion in the stage workspace, with the
	// stage env overlaid by the step env, writing its combined stdout and
	// stderr to out as it arrives. It returns the step's exit code. When ctx
	// ends first (cancellation or the step's timeout, which the caller sets
	// on ctx), the step is stopped (SIGTERM, then SIGKILL after a grace
	// period) and Run returns an error wrapping ctx.Err(). A step killed
	// for exceeding its memory limit returns its exit code with an error
	// wrapping ErrOutOfMemory.
	Run(ctx context.Context, s *Spec, step *pipeline.Step, out io.Writer) (exitCode int, err error)
	// Teardown removes everything Setup and Run created. It is idempotent,
	// safe after a partial Setup, and is called on a context that is not
	// the (possibly cancelled) run context.
	Teardown(ctx context.Context, s *Spec) error
}

// ErrImageNotFound reports that a step or service image is not present and
// the pull policy did not allow (or failed) to fetch it.
var ErrImageNotFound = errors.New("image not found")

// ErrOutOfMemory reports that a step was killed because it used more
// memory than its limit. Run returns it with the step's exit code.
var ErrOutOfMemory = errors.New("out of memory")
