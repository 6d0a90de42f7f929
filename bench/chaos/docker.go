package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/runnel-ci/runnel/agents/engine/docker"
)

// recorder keeps the step containers' lives and the first sighting of
// each stage attempt from Docker's events.
type recorder struct {
	mu    sync.Mutex
	spans map[string]*span // started step containers, by container id
	seen  map[attemptKey]sighting
	last  time.Time // of the latest event
	err   error
	done  chan struct{}
}

type attemptKey struct {
	run, stage string
	attempt    int
}

// record follows the container events of install until ctx ends.
func record(ctx context.Context, cli *client.Client, install string) *recorder {
	r := &recorder{spans: map[string]*span{}, seen: map[attemptKey]sighting{}, done: make(chan struct{})}
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", docker.LabelInstall+"="+install))
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: f})
	go func() {
		defer close(r.done)
		for {
			select {
			case m := <-msgs:
				r.add(m)
			case err := <-errs:
				if ctx.Err() == nil {
					r.mu.Lock()
					r.err = fmt.Errorf("docker events: %w", err)
					r.mu.Unlock()
				}
				return
			}
		}
	}()
	return r
}

func (r *recorder) add(m events.Message) {
	a := m.Actor.Attributes
	at := time.Unix(0, m.TimeNano)
	attempt, _ := strconv.Atoi(a[docker.LabelAttempt])
	k := attemptKey{a[docker.LabelRun], a[docker.LabelStage], attempt}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = at
	if m.Action == events.ActionCreate || m.Action == events.ActionStart {
		if s, ok := r.seen[k]; !ok || at.Before(s.at) {
			r.seen[k] = sighting{run: k.run, stage: k.stage, attempt: attempt, pid: a[docker.LabelPID], at: at}
		}
	}
	if a[docker.LabelService] != "" || (m.Action != events.ActionStart && m.Action != events.ActionDie) {
		return
	}
	s := r.spans[m.Actor.ID]
	if s == nil {
		s = &span{id: m.Actor.ID, run: k.run, stage: k.stage, attempt: attempt, pid: a[docker.LabelPID]}
		r.spans[m.Actor.ID] = s
	}
	switch m.Action {
	case events.ActionStart:
		s.start = at
	case events.ActionDie:
		s.end, s.ended, s.exit = at, true, a["exitCode"]
	}
}

// snapshot returns the started step containers and the attempt sightings.
func (r *recorder) snapshot() ([]span, []sighting, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, s := range r.spans {
		if !s.start.IsZero() {
			out = append(out, *s)
		}
	}
	var seen []sighting
	for _, s := range r.seen {
		seen = append(seen, s)
	}
	return out, seen, r.err
}

// lastEvent is when Docker last reported a container event.
func (r *recorder) lastEvent() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// leftovers counts the containers, networks and volumes of install.
type leftovers struct{ containers, networks, volumes int }

func (l leftovers) total() int { return l.containers + l.networks + l.volumes }

func countLeft(ctx context.Context, cli *client.Client, install string) (leftovers, error) {
	var l leftovers
	f := filters.NewArgs(filters.Arg("label", docker.LabelInstall+"="+install))
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return l, err
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return l, err
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return l, err
	}
	return leftovers{len(cs), len(ns), len(vs.Volumes)}, nil
}

// removeInstall removes everything labelled with install: the harness's
// own cleanup after counting, so it never leaves anything behind.
func removeInstall(ctx context.Context, cli *client.Client, install string) {
	f := filters.NewArgs(filters.Arg("label", docker.LabelInstall+"="+install))
	if cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs {
			_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f}); err == nil {
		for _, n := range ns {
			_ = cli.NetworkRemove(ctx, n.ID)
		}
	}
	if vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f}); err == nil {
		for _, v := range vs.Volumes {
			_ = cli.VolumeRemove(ctx, v.Name, true)
		}
	}
}
