package docker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/errdefs"

	"github.com/runnel-ci/runnel/agents/engine"
)

// Teardown removes the containers, network and volume of s, found by
// label within s's install. It is idempotent.
func (e *Engine) Teardown(ctx context.Context, s *engine.Spec) error {
	if err := e.removeWhere(ctx, e.SpecFilter(s), nil); err != nil {
		return fmt.Errorf("teardown stage %s: %w", s.Stage.ID, err)
	}
	return nil
}

// Prune removes every container, network and volume labelled with e's
// owner, made by any process: for an owner that no other process uses at
// the time (a test, a benchmark).
func (e *Engine) Prune(ctx context.Context) error {
	if err := e.removeWhere(ctx, e.ownerFilter(), nil); err != nil {
		return fmt.Errorf("prune owner %s: %w", e.owner, err)
	}
	return nil
}

// PruneDead removes what earlier processes of e's owner on this host left
// when they died without cleaning up (SIGKILL, a crash): resources
// labelled with e's owner and this host whose process no longer runs.
// What live processes of the owner made (agents sharing a work directory)
// and what other owners made are never touched.
func (e *Engine) PruneDead(ctx context.Context) error {
	dead := func(labels map[string]string) bool {
		if labels[LabelHost] != e.host || labels[LabelPID] == e.pid {
			return false
		}
		pid, err := strconv.Atoi(labels[LabelPID])
		if err != nil || pid <= 0 {
			return false
		}
		// Signal 0 checks existence; EPERM means it exists as another user.
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	if err := e.removeWhere(ctx, e.ownerFilter(), dead); err != nil {
		return fmt.Errorf("prune what dead processes of %s left: %w", e.owner, err)
	}
	return nil
}

func (e *Engine) ownerFilter() filters.Args {
	return filters.NewArgs(filters.Arg("label", LabelOwner+"="+e.owner))
}

// removeWhere removes the containers, then networks, then volumes that
// match f and, when match is set, for which it reports true. Resources
// already gone are fine.
func (e *Engine) removeWhere(ctx context.Context, f filters.Args, match func(map[string]string) bool) error {
	ok := func(l map[string]string) bool { return match == nil || match(l) }
	var errs []error
	cs, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs {
		if !ok(c.Labels) {
			continue
		}
		err := e.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
		}
	}
	ns, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range ns {
		if !ok(n.Labels) {
			continue
		}
		if err := e.cli.NetworkRemove(ctx, n.ID); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	vs, err := e.cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list volumes: %w", err))...)
	}
	for _, v := range vs.Volumes {
		if !ok(v.Labels) {
			continue
		}
		if err := e.cli.VolumeRemove(ctx, v.Name, true); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}
