package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"golang.org/x/sync/singleflight"

	"github.com/runnel-ci/runnel/agents/engine"
)

// Labels put on every resource.
const (
	LabelOwner   = "runnel.owner"
	LabelRun     = "runnel.run"
	LabelStage   = "runnel.stage"
	LabelAttempt = "runnel.attempt"
	LabelService = "runnel.service" // service containers only: the service name
)

// WorkspaceDir is where the workspace volume is mounted in every container.
const WorkspaceDir = "/workspace"

// Options configure an Engine. The zero value works.
type Options struct {
	// Owner identifies this agent or process in the runnel.owner label;
	// Prune removes everything with it. "" means OwnerForProcess().
	Owner string
	// PullPolicy says when images are pulled; "" means if-not-present.
	PullPolicy engine.PullPolicy
	// StopGrace is the SIGTERM-to-SIGKILL period for a step whose context
	// ended; it is rounded up to whole seconds (Docker's unit). 0 means 2s.
	StopGrace time.Duration
	Logger    *slog.Logger // nil means slog.Default()
}

// Engine is the Docker engine.Engine. It is safe for concurrent use.
type Engine struct {
	cli    *client.Client
	owner  string
	policy engine.PullPolicy
	grace  int // seconds
	log    *slog.Logger
	pulls  singleflight.Group
}

var _ engine.Engine = (*Engine)(nil)

// NewClient returns a client for the engine the environment points at
// (DOCKER_HOST etc.), negotiating the API version.
func NewClient() (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return cli, nil
}

// New returns an Engine using cli.
func New(cli *client.Client, o Options) (*Engine, error) {
	policy, err := engine.ParsePullPolicy(string(o.PullPolicy))
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	e := &Engine{cli: cli, owner: o.Owner, policy: policy, log: o.Logger}
	if e.owner == "" {
		e.owner = OwnerForProcess()
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	grace := o.StopGrace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	e.grace = int((grace + time.Second - 1) / time.Second)
	return e, nil
}

// Owner returns the owner label value of e's resources.
func (e *Engine) Owner() string { return e.owner }

// OwnerForProcess returns "local-HOST-PID", the owner of a one-off process
// such as `runnel run`; PruneDeadLocal recognises it.
func OwnerForProcess() string {
	return localPrefix() + strconv.Itoa(os.Getpid())
}

func localPrefix() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown"
	}
	return "local-" + sanitize(h, 40) + "-"
}

func (e *Engine) labels(s *engine.Spec) map[string]string {
	return map[string]string{
		LabelOwner:   e.owner,
		LabelRun:     s.RunID,
		LabelStage:   s.Stage.ID,
		LabelAttempt: strconv.Itoa(s.Attempt),
	}
}

// SpecFilter selects the labelled resources of s, whatever their owner
// (so a Teardown by a restarted agent still finds them).
func SpecFilter(s *engine.Spec) filters.Args {
	return filters.NewArgs(
		filters.Arg("label", LabelRun+"="+s.RunID),
		filters.Arg("label", LabelStage+"="+s.Stage.ID),
		filters.Arg("label", LabelAttempt+"="+strconv.Itoa(s.Attempt)),
	)
}

// ResourceName is the name of s's network and volume, and the stem of its
// service container names: sanitised parts plus a hash of the exact
// values, as sanitising can merge them.
func ResourceName(s *engine.Spec) string {
	h := sha256.Sum256([]byte(s.RunID + "\x00" + s.Stage.ID + "\x00" + strconv.Itoa(s.Attempt)))
	return "runnel-" + sanitize(s.RunID, 24) + "-" + sanitize(s.Stage.ID, 24) + "-" + strconv.Itoa(s.Attempt) + "-" + hex.EncodeToString(h[:5])
}

func sanitize(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= max {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}
