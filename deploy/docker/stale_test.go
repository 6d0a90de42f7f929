package docker_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/docker"
)

// TestControlFenced: through the control API, routes from a lower attempt
// of a release than one already taken are refused with 409 (ErrFenced
// for the Client) and change nothing; a restarted proxy keeps fencing.
func TestControlFenced(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "routes.json")
	srv := httptest.NewServer(&docker.Control{Proxy: docker.NewProxy(nil), StateFile: state})
	defer srv.Close()
	c, err := docker.NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	blue, green := &url.URL{Scheme: "http", Host: "10.0.0.1:8080"}, &url.URL{Scheme: "http", Host: "10.0.0.2:8080"}
	if err := c.SetRoutes(ctx, docker.Routes{Blue: blue, Release: "i/7/deploy", Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	err = c.SetRoutes(ctx, docker.Routes{Blue: blue, Green: green, Weight: 50, Release: "i/7/deploy", Attempt: 1})
	if !errors.Is(err, docker.ErrFenced) {
		t.Fatalf("routes of a stale attempt: %v, want ErrFenced", err)
	}
	if got, _ := c.GetRoutes(ctx); got.Green != nil {
		t.Errorf("a fenced PUT changed the routes: %+v", got)
	}

	again := docker.NewProxy(nil)
	if err := docker.LoadState(again, state); err != nil {
		t.Fatal(err)
	}
	if err := again.SetRoutes(ctx, docker.Routes{Blue: green, Release: "i/7/deploy", Attempt: 1}); !errors.Is(err, docker.ErrFenced) {
		t.Errorf("a restarted proxy took routes of a stale attempt: %v", err)
	}
}

// TestStaleAttemptFenced: the agent releasing v2 (attempt 1) freezes at
// 50 % (a stopped process, not a dead one); the stage's next attempt, on
// another agent, releases v2 to the end. When the first agent wakes up,
// the proxy refuses its routes: it neither moves traffic nor removes a
// container, so the proxy still serves the second attempt's v2 and that
// container is the app's only one.
func TestStaleAttemptFenced(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v1 := e.release("v1")
	v1.ID, v1.Attempt = "i/1/deploy", 1
	if _, err := e.prov.Deploy(ctx, v1, nil); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	v2 := e.release("v2", 50)
	v2.ID, v2.Attempt = "i/2/deploy", 1
	frozen, wake := make(chan struct{}), make(chan struct{})
	type result struct {
		res deploy.Result
		err error
	}
	first := make(chan result, 1)
	go func() {
		res, err := e.prov.Deploy(ctx, v2, func(ev deploy.Event) {
			if ev.Phase == deploy.PhaseShift && ev.Weight == 50 {
				close(frozen)
				<-wake
			}
		})
		first <- result{res, err}
	}()
	<-frozen

	// The next attempt, on another agent, drives the same proxy.
	router, err := docker.NewClient(e.control, "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := docker.New(e.cli, docker.Options{App: e.app, Network: e.net, Proxy: router, Drain: 100 * time.Millisecond, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v2.Attempt = 2
	if res, err := other.Deploy(ctx, v2, nil); err != nil || res.From != "v1" {
		t.Fatalf("second attempt: %s from %q, %v; want succeeded from v1", res.Outcome, res.From, err)
	}
	ids := e.containerIDs(t)

	close(wake)
	r := <-first
	if r.res.Outcome == deploy.Succeeded || !errors.Is(r.err, docker.ErrFenced) {
		t.Errorf("the stale attempt: %s, %v; want it refused (ErrFenced)", r.res.Outcome, r.err)
	}
	if got := e.get(t); got != "v2" {
		t.Errorf("after the stale attempt woke, the proxy serves %q, want v2", got)
	}
	if got := e.containerIDs(t); len(got) != 1 || len(ids) != 1 || got[0] != ids[0] {
		t.Errorf("containers after the stale attempt woke: %v, want the second attempt's %v alone", got, ids)
	}
}

// containerIDs returns the ids of the app's containers.
func (e *env) containerIDs(t *testing.T) []string {
	t.Helper()
	cs, err := e.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelApp+"="+e.app))})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}
