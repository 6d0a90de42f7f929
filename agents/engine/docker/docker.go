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
	"github.com/runnel-ci/runnel/internal/install"
)

// Labels put on every resource.
const (
	// LabelInstall is the install the stage's run belongs to (Spec.Install,
	// or the engine's own): Teardown and the cleanup of earlier attempts
	// match it, so they never reach another install's resources.
	LabelInstall = "runnel.install"
	// LabelOwner is the install of the process that made the resource (a
	// server's data directory, an agent's work directory): Prune and
	// PruneDead match it.
	LabelOwner = "runnel.owner"
	// LabelHost and LabelPID name the process that made the resource, so
	// PruneDead can tell a crashed process's leftovers from those of a
	// live process of the same owner (agents sharing a work directory).
	LabelHost    = "runnel.host"
	LabelPID     = "runnel.pid"
	LabelRun     = "runnel.run"
	LabelStage   = "runnel.stage"
	LabelAttempt = "runnel.attempt"
	LabelService = "runnel.service" // service containers only: the service name
)

// WorkspaceDir is where the workspace volume is mounted in every container.
const WorkspaceDir = "/workspace"

// Options configure an Engine. The zero value works: a new install of
// its own, as a test wants.
type Options struct {
	// Install is the install of Specs that name none (Spec.Install ""),
	// for example a `runnel run` process's own id. "" means a new random
	// id (install.New).
	Install string
	// Owner is the install id of the process using the engine; Prune and
	// PruneDead remove only what carries it. "" means Install.
	Owner string
	// PullPolicy says when images are pulled; "" means if-not-present.
	PullPolicy engine.PullPolicy
	// StopGrace is the SIGTERM-to-SIGKILL period for a step whose context
	// ended; it is rounded up to whole seconds (Docker's unit). 0 means 2s.
	StopGrace time.Duration
	// Limits are every step and service container's memory, CPU and
	// process limits; zero fields mean DefaultLimits'.
	Limits Limits
	Logger *slog.Logger // nil means slog.Default()
}

// Engine is the Docker engine.Engine. It is safe for concurrent use.
type Engine struct {
	cli     *client.Client
	install string
	owner   string
	host    string
	pid     string
	policy  engine.PullPolicy
	grace   int // seconds
	limits  Limits
	log     *slog.Logger
	pulls   singleflight.Group
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
	if o.Install == "" {
		o.Install = install.New()
	}
	if o.Owner == "" {
		o.Owner = o.Install
	}
	for _, id := range []string{o.Install, o.Owner} {
		if !install.Valid(id) {
			return nil, fmt.Errorf("docker engine: %q is not an install id", id)
		}
	}
	e := &Engine{cli: cli, install: o.Install, owner: o.Owner, host: hostname(),
		pid: strconv.Itoa(os.Getpid()), policy: policy, limits: o.Limits.orDefault(), log: o.Logger}
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

// Install returns the install of Specs that name none.
func (e *Engine) Install() string { return e.install }

// Owner returns the owner label value of e's resources.
func (e *Engine) Owner() string { return e.owner }

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown"
	}
	return sanitize(h, 63)
}

// installOf is the install s belongs to.
func (e *Engine) installOf(s *engine.Spec) string {
	if s.Install != "" {
		return s.Install
	}
	return e.install
}

func (e *Engine) labels(s *engine.Spec) map[string]string {
	return map[string]string{
		LabelInstall: e.installOf(s),
		LabelOwner:   e.owner,
		LabelHost:    e.host,
		LabelPID:     e.pid,
		LabelRun:     s.RunID,
		LabelStage:   s.Stage.ID,
		LabelAttempt: strconv.Itoa(s.Attempt),
	}
}

// SpecFilter selects the labelled resources of s in its install, whoever
// made them (so a Teardown by a restarted agent, or by another agent of
// the install retrying the stage, still finds them).
func (e *Engine) SpecFilter(s *engine.Spec) filters.Args {
	return filters.NewArgs(
		filters.Arg("label", LabelInstall+"="+e.installOf(s)),
		filters.Arg("label", LabelRun+"="+s.RunID),
		filters.Arg("label", LabelStage+"="+s.Stage.ID),
		filters.Arg("label", LabelAttempt+"="+strconv.Itoa(s.Attempt)),
	)
}

// ResourceName is the name of s's network and volume, and the stem of its
// service container names: sanitised parts plus a hash of the exact
// values, as sanitising can merge them. The install is part of it, so
// installs whose run ids coincide never collide.
func (e *Engine) ResourceName(s *engine.Spec) string {
	inst := e.installOf(s)
	h := sha256.Sum256([]byte(inst + "\x00" + s.RunID + "\x00" + s.Stage.ID + "\x00" + strconv.Itoa(s.Attempt)))
	return "runnel-" + sanitize(inst, 16) + "-" + sanitize(s.RunID, 24) + "-" + sanitize(s.Stage.ID, 24) + "-" +
		strconv.Itoa(s.Attempt) + "-" + hex.EncodeToString(h[:5])
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
