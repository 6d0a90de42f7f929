package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/pkg/stdcopy"
	"golang.org/x/sync/errgroup"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
)

// DefaultReadyTimeout is how long Setup waits for a service to be ready
// when its Ready.Timeout is unset.
const DefaultReadyTimeout = 60 * time.Second

// Setup creates the stage network and workspace volume, copies Source in
// and starts the services, returning once all are ready.
func (e *Engine) Setup(ctx context.Context, s *engine.Spec) error {
	if err := e.setup(ctx, s); err != nil {
		return fmt.Errorf("setup stage %s: %w", s.Stage.ID, err)
	}
	return nil
}

func (e *Engine) setup(ctx context.Context, s *engine.Spec) error {
	name := e.ResourceName(s)
	labels := e.labels(s)
	if _, err := e.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels}); err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	if _, err := e.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	if s.Source != "" {
		if err := e.copySource(ctx, s); err != nil {
			return err
		}
	}
	// Services start one by one and are waited for together; a failed
	// start stops the waits at once.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(wctx)
	for i := range s.Stage.Services {
		svc := &s.Stage.Services[i]
		id, err := e.startService(ctx, s, svc)
		if err != nil {
			cancel()
			g.Wait() //nolint:errcheck // the start error is the one to report
			return err
		}
		g.Go(func() error { return e.waitReady(gctx, s, svc, id) })
	}
	return g.Wait()
}

// helperImage is the image of the container used to fill the volume.
func helperImage(st *pipeline.Stage) string {
	if st.Image != "" {
		return st.Image
	}
	for _, step := range st.Steps {
		if step.Image != "" {
			return step.Image
		}
	}
	return ""
}

// copySource copies s.Source into the workspace volume (see CopyIn).
func (e *Engine) copySource(ctx context.Context, s *engine.Spec) error {
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := writeTar(gctx, pw, s.Source)
		pw.CloseWithError(err)
		return err
	})
	g.Go(func() error {
		err := e.CopyIn(gctx, s, pr)
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		return err
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("copy source %s to workspace: %w", s.Source, err)
	}
	return nil
}

// writeTar writes the tree at root as a tar stream. Symlinks are stored as
// links, never followed, so nothing outside root is read. Owners are root,
// the usual user of build images; modes are kept.
func writeTar(ctx context.Context, w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		if !info.Mode().IsRegular() && !info.IsDir() && link == "" {
			return nil // sockets, devices, fifos
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		// Copy exactly the size in the header even if the file grows.
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func (e *Engine) hostConfig(s *engine.Spec) *container.HostConfig {
	return &container.HostConfig{
		NetworkMode: container.NetworkMode(e.ResourceName(s)),
		Mounts: []mount.Mount{{
			Type:   mount.TypeVolume,
			Source: e.ResourceName(s),
			Target: WorkspaceDir,
		}},
	}
}

func (e *Engine) startService(ctx context.Context, s *engine.Spec, svc *pipeline.Service) (string, error) {
	labels := e.labels(s)
	labels[LabelService] = svc.Name
	net := e.ResourceName(s)
	cfg := &container.Config{
		Image:  svc.Image,
		Cmd:    svc.Command,
		Env:    envList(svc.Env),
		Labels: labels,
	}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(net)}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		net: {Aliases: []string{svc.Name}},
	}}
	if err := apply(cfg, hc, svc.Container); err != nil {
		return "", fmt.Errorf("service %s: %w", svc.Name, err)
	}
	if string(hc.NetworkMode) != net {
		nc = nil // host or none: not on the stage network, no alias
	}
	id, err := e.create(ctx, cfg, hc, nc, net+"-svc-"+sanitize(svc.Name, 40))
	if err != nil {
		return "", fmt.Errorf("service %s: %w", svc.Name, err)
	}
	if err := e.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("service %s: start: %w", svc.Name, err)
	}
	return id, nil
}

// waitReady polls until svc is ready: its Ready.Command exits 0, its
// Ready.Port accepts a TCP connection (dialled from this process to the
// container's address on the stage network, which needs nothing in the
// image; where that address is unreachable, `nc -z` exec'd in the
// service), or its healthcheck reports healthy; with none of them it is
// ready once running. A service that exits meanwhile fails the wait with
// the tail of its output.
func (e *Engine) waitReady(ctx context.Context, s *engine.Spec, svc *pipeline.Service, id string) error {
	timeout := svc.Ready.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ready, err := e.probe(ctx, s, svc, id)
		if ready {
			e.log.Debug("service ready", "run", s.RunID, "stage", s.Stage.ID, "service", svc.Name)
			return nil
		}
		var stopped *serviceStopped
		if errors.As(err, &stopped) {
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("service %s: not ready after %v (last: %v): %w", svc.Name, timeout, last, ctx.Err())
			}
			return fmt.Errorf("service %s: not ready after %v: %w", svc.Name, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

type serviceStopped struct {
	exitCode int
	tail     string
}

func (e *serviceStopped) Error() string {
	return fmt.Sprintf("exited with code %d; last output:\n%s", e.exitCode, e.tail)
}

func (e *Engine) probe(ctx context.Context, s *engine.Spec, svc *pipeline.Service, id string) (bool, error) {
	info, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return false, fmt.Errorf("inspect: %w", err)
	}
	if info.State == nil || !info.State.Running {
		code := 0
		if info.State != nil {
			code = info.State.ExitCode
		}
		return false, &serviceStopped{exitCode: code, tail: e.logTail(ctx, id)}
	}
	switch {
	case len(svc.Ready.Command) > 0:
		return e.execOK(ctx, id, svc.Ready.Command)
	case svc.Ready.Port > 0:
		ep := info.NetworkSettings.Networks[e.ResourceName(s)]
		if ep == nil || ep.IPAddress == "" {
			return false, errors.New("no address on the stage network yet")
		}
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := d.DialContext(dctx, "tcp", net.JoinHostPort(ep.IPAddress, strconv.Itoa(svc.Ready.Port)))
		if err == nil {
			c.Close()
			return true, nil
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return false, err // reachable, not listening yet
		}
		// No route from here (e.g. this agent runs in a container on
		// another network): ask inside the service, if it has nc.
		return e.execOK(ctx, id, []string{"nc", "-z", "127.0.0.1", strconv.Itoa(svc.Ready.Port)})
	case info.State.Health != nil:
		switch info.State.Health.Status {
		case "healthy":
			return true, nil
		case "unhealthy":
			return false, &serviceStopped{exitCode: -1, tail: "healthcheck reports unhealthy\n" + e.logTail(ctx, id)}
		}
		return false, fmt.Errorf("health %s", info.State.Health.Status)
	}
	return true, nil
}

func (e *Engine) execOK(ctx context.Context, id string, cmd []string) (bool, error) {
	ex, err := e.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd})
	if err != nil {
		return false, fmt.Errorf("exec %q: %w", cmd, err)
	}
	if err := e.cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
		return false, fmt.Errorf("exec %q: %w", cmd, err)
	}
	for {
		st, err := e.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return false, fmt.Errorf("exec %q: %w", cmd, err)
		}
		if !st.Running {
			if st.ExitCode != 0 {
				return false, fmt.Errorf("exec %q: exit code %d", cmd, st.ExitCode)
			}
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the last lines of a container's output, for errors.
func (e *Engine) logTail(ctx context.Context, id string) string {
	rc, err := e.cli.ContainerLogs(context.WithoutCancel(ctx), id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return fmt.Sprintf("(logs unavailable: %v)", err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := stdcopy.StdCopy(&b, &b, io.LimitReader(rc, 64<<10)); err != nil && b.Len() == 0 {
		return fmt.Sprintf("(logs unavailable: %v)", err)
	}
	return strings.TrimRight(b.String(), "\n")
}
