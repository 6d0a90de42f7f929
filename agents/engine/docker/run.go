package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
)

// cleanupTimeout bounds the Docker calls that clean up after a step,
// which run even when the step's context has ended.
const cleanupTimeout = 30 * time.Second

// Run runs step in a new container on the stage network with the
// workspace at /workspace, streams its output to out and removes it.
func (e *Engine) Run(ctx context.Context, s *engine.Spec, step *pipeline.Step, out io.Writer) (int, error) {
	code, err := e.run(ctx, s, step, out)
	if errors.Is(err, engine.ErrOutOfMemory) {
		return code, fmt.Errorf("run step %s/%s: %w", s.Stage.ID, step.Name, err)
	}
	if err != nil {
		return engine.ExitUnknown, fmt.Errorf("run step %s/%s: %w", s.Stage.ID, step.Name, err)
	}
	return code, nil
}

func (e *Engine) run(ctx context.Context, s *engine.Spec, step *pipeline.Step, out io.Writer) (int, error) {
	img := step.Image
	if img == "" {
		img = s.Stage.Image
	}
	if img == "" {
		return 0, errors.New("neither the step nor its stage names an image")
	}
	// Secret files are written by a preamble from variables into a tmpfs
	// of the container: never on a command line, never on disk.
	preamble, fileEnv := engine.SecretFilesPreamble(s, pipeline.SecretsDir)
	cfg := &container.Config{
		Image: img,
		// The script is pipeline text, trusted; everything else reaches it
		// as env through the API.
		Entrypoint:   []string{"/bin/sh", "-e", "-c"},
		Cmd:          []string{preamble + step.Run},
		Env:          append(engine.StepEnv(s, step, pipeline.SecretsDir), fileEnv...),
		WorkingDir:   WorkspaceDir,
		Labels:       e.labels(s),
		AttachStdout: true,
		AttachStderr: true,
	}
	hc := e.hostConfig(s)
	if err := apply(cfg, hc, s.Stage.StepContainer(step)); err != nil {
		return 0, err
	}
	if preamble != "" {
		hc.Tmpfs = map[string]string{pipeline.SecretsDir: "mode=1777,size=4m,noexec,nosuid,nodev"}
	}
	id, err := e.create(ctx, cfg, hc, nil, "")
	if err != nil {
		return 0, err
	}
	defer e.remove(ctx, id)

	// Attach before start so no output is lost.
	hj, err := e.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return 0, fmt.Errorf("attach: %w", err)
	}
	defer hj.Close()
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, out, hj.Reader)
		if err != nil {
			io.Copy(io.Discard, hj.Reader) // keep the stream flowing
		}
		copied <- err
	}()
	// The stream ends when the container exits, or by hj.Close below.
	started := time.Now()
	if err := e.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		hj.Close()
		<-copied
		return 0, fmt.Errorf("start: %w", err)
	}

	// Wait on a context of our own: after ctx ends the container still has
	// to be stopped and waited for.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	waitCh, waitErr := e.cli.ContainerWait(wctx, id, container.WaitConditionNotRunning)
	var (
		res     container.WaitResponse
		stopped bool
	)
	select {
	case res = <-waitCh:
	case err := <-waitErr:
		hj.Close()
		<-copied
		return 0, fmt.Errorf("wait: %w", err)
	case <-ctx.Done():
		stopped = true
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		grace := e.grace
		err := e.cli.ContainerStop(sctx, id, container.StopOptions{Timeout: &grace})
		scancel()
		if err != nil && !errdefs.IsNotFound(err) {
			e.log.Warn("stop step container", "run", s.RunID, "stage", s.Stage.ID, "step", step.Name, "err", err)
		}
		// ContainerStop returns once the container is gone; the wait
		// result (or its absence) is moot.
		cancel()
	}
	var copyErr error
	select {
	case copyErr = <-copied:
	case <-time.After(cleanupTimeout):
		// The container has exited, so the stream must end; do not hang
		// on a daemon that keeps it open.
		hj.Close()
		copyErr = <-copied
	}
	if stopped {
		return 0, fmt.Errorf("stopped: %w", ctx.Err())
	}
	if res.Error != nil {
		return 0, fmt.Errorf("wait: %s", res.Error.Message)
	}
	if copyErr != nil {
		return 0, fmt.Errorf("write output: %w", copyErr)
	}
	if res.StatusCode != 0 && e.oomKilled(context.WithoutCancel(ctx), id, started) {
		return int(res.StatusCode), fmt.Errorf("%w (limit %d MiB)", engine.ErrOutOfMemory, e.limits.Memory>>20)
	}
	return int(res.StatusCode), nil
}

// oomGrace bounds how long after a step's SIGKILL exit Docker may still
// report that the kernel's OOM killer sent it.
const oomGrace = 3 * time.Second

// oomKilled reports whether the kernel's OOM killer ended container id,
// which left only a bare SIGKILL (137). Docker knows, but learns it from
// an event of its own that can come after the exit: so when the
// container's state does not say so yet, wait up to oomGrace for its
// "oom" event (since the container started, so one already sent counts).
func (e *Engine) oomKilled(ctx context.Context, id string, started time.Time) bool {
	ictx, icancel := context.WithTimeout(ctx, cleanupTimeout)
	info, err := e.cli.ContainerInspect(ictx, id)
	icancel()
	if err == nil && info.State != nil && info.State.OOMKilled {
		return true
	}
	ectx, ecancel := context.WithTimeout(ctx, oomGrace)
	defer ecancel()
	msgs, errs := e.cli.Events(ectx, events.ListOptions{
		Since:   strconv.FormatInt(started.Add(-time.Second).Unix(), 10),
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("container", id), filters.Arg("event", "oom")),
	})
	select {
	case <-msgs:
		return true
	case <-errs:
		return false
	}
}

// create creates a container, fetching its image first when it is missing
// and the pull policy allows (or always, with PullAlways).
func (e *Engine) create(ctx context.Context, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig, name string) (string, error) {
	e.secure(hc)
	if e.policy == engine.PullAlways {
		if err := e.ensureImage(ctx, cfg.Image); err != nil {
			return "", err
		}
	}
	resp, err := e.cli.ContainerCreate(ctx, cfg, hc, nc, nil, name)
	if errdefs.IsNotFound(err) {
		// Usually the image; ensureImage tells, and pulls when allowed.
		if ierr := e.ensureImage(ctx, cfg.Image); ierr != nil {
			return "", ierr
		}
		resp, err = e.cli.ContainerCreate(ctx, cfg, hc, nc, nil, name)
	}
	if err != nil {
		return "", fmt.Errorf("create container from %s: %w", cfg.Image, err)
	}
	return resp.ID, nil
}

// remove force-removes a container, on a context that outlives ctx.
func (e *Engine) remove(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := e.cli.ContainerRemove(rctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) {
		// Teardown removes it by label later.
		e.log.Warn("remove container", "container", id, "err", err)
	}
}
