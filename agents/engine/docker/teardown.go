package docker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/errdefs"

	"github.com/runnel-ci/runnel/agents/engine"
)

// Teardown removes the containers, network and volume of s, found by
// label. It is idempotent.
func (e *Engine) Teardown(ctx context.Context, s *engine.Spec) error {
	if err := e.removeWhere(ctx, SpecFilter(s), nil); err != nil {
		return fmt.Errorf("teardown stage %s: %w", s.Stage.ID, err)
	}
	return nil
}

// Prune removes every container, network and volume labelled with e's
// owner: what an earlier, crashed process with the same owner left.
func (e *Engine) Prune(ctx context.Context) error {
	if err := e.removeWhere(ctx, filters.NewArgs(filters.Arg("label", LabelOwner+"="+e.owner)), nil); err != nil {
		return fmt.Errorf("prune owner %s: %w", e.owner, err)
	}
	return nil
}

// PruneDeadLocal removes the resources of `runnel run` processes on this
// host that no longer run: those whose owner is local-HOST-PID (see
// OwnerForProcess) with HOST this host and PID not a live process. Other
// owners are never touched.
func (e *Engine) PruneDeadLocal(ctx context.Context) error {
	prefix := localPrefix()
	self := OwnerForProcess()
	dead := func(labels map[string]string) bool {
		owner := labels[LabelOwner]
		rest, ok := strings.CutPrefix(owner, prefix)
		if !ok || owner == self {
			return false
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 {
			return false
		}
		// Signal 0 checks existence; EPERM means it exists as another user.
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	if err := e.removeWhere(ctx, filters.NewArgs(filters.Arg("label", LabelOwner)), dead); err != nil {
		return fmt.Errorf("prune dead local runs: %w", err)
	}
	return nil
}

// removeWhere removes the containers, then networks, then volumes that
// match f and, when keep is set, for which match reports true. Resources
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
