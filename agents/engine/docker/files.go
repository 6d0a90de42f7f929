package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"

	"github.com/runnel-ci/runnel/agents/engine"
)

var _ engine.Files = (*Engine)(nil)

// withHelper runs fn with a container that mounts s's workspace volume:
// created from the stage's image and never started, so the image needs
// nothing (no shell, no tar) for files to move through the Docker API.
func (e *Engine) withHelper(ctx context.Context, s *engine.Spec, fn func(id string) error) error {
	img := helperImage(s.Stage)
	if img == "" {
		return errors.New("the stage and its steps name no image")
	}
	id, err := e.create(ctx, &container.Config{
		Image: img,
		// Never started, but the daemon refuses to create a container
		// without a command, and imported images have no default.
		Cmd:    []string{"true"},
		Labels: e.labels(s),
	}, e.hostConfig(s), nil, "")
	if err != nil {
		return err
	}
	defer e.remove(ctx, id)
	return fn(id)
}

// CopyIn implements engine.Files with the daemon's archive API, which
// extracts inside the helper container's filesystem.
func (e *Engine) CopyIn(ctx context.Context, s *engine.Spec, r io.Reader) error {
	err := e.withHelper(ctx, s, func(id string) error {
		return e.cli.CopyToContainer(ctx, id, WorkspaceDir, r, container.CopyToContainerOptions{})
	})
	if err != nil {
		return fmt.Errorf("copy into the workspace of %s: %w", s.Stage.ID, err)
	}
	return nil
}

// CopyOut implements engine.Files with the daemon's archive API.
func (e *Engine) CopyOut(ctx context.Context, s *engine.Spec, paths []string, fn func(h *tar.Header, r io.Reader) error) error {
	return e.withHelper(ctx, s, func(id string) error {
		for _, p := range paths {
			if err := e.copyOutPath(ctx, id, p, fn); err != nil {
				return fmt.Errorf("copy %q out of the workspace of %s: %w", p, s.Stage.ID, err)
			}
		}
		return nil
	})
}

func (e *Engine) copyOutPath(ctx context.Context, id, p string, fn func(h *tar.Header, r io.Reader) error) error {
	full := WorkspaceDir
	if p != "" {
		// The daemon resolves links in a path's parents (inside the
		// container, but out of the workspace all the same): refuse
		// them, as the local engine does.
		var parents []string
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			parents = append(parents, dir)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			st, err := e.cli.ContainerStatPath(ctx, id, WorkspaceDir+"/"+parents[i])
			if errdefs.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if st.Mode&os.ModeSymlink != 0 {
				return fmt.Errorf("%q is a symbolic link; paths are not read through links", parents[i])
			}
		}
		full += "/" + p
	}
	rc, _, err := e.cli.CopyFromContainer(ctx, id, full)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	// The daemon names entries from the path's last element on: "out/x"
	// for /workspace/out, "workspace/x" for the whole workspace.
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if p == "" {
			rest, ok := strings.CutPrefix(h.Name, "workspace/")
			if !ok || rest == "" {
				continue // the workspace directory itself
			}
			h.Name = rest
		} else if dir := path.Dir(p); dir != "." {
			h.Name = dir + "/" + h.Name
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}
