package workspace

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/docker"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/internal/install"
	"github.com/runnel-ci/runnel/pipeline"
)

// TestReapEarlierAttempts: a step container of attempt 1 left running
// (its agent was killed) is removed before attempt 2 of the same stage
// runs, whichever agent of the install made it; another stage's container
// and the same stage's attempt 1 of another install (a second server on
// the engine whose run has the same id) are left alone.
func TestReapEarlierAttempts(t *testing.T) {
	if err := exec.Command("docker", "image", "inspect", "runnel-test/busybox:latest").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Docker or runnel-test/busybox:latest unavailable: %v", err)
		}
		t.Skipf("Docker or runnel-test/busybox:latest unavailable: %v", err)
	}
	cli, err := docker.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	owner := fmt.Sprintf("reaptest-%d", os.Getpid())
	newEngine := func(install, owner string) *docker.Engine {
		e, err := docker.New(cli, docker.Options{Install: install, Owner: owner, PullPolicy: engine.PullNever})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// The "dead agent" and the new one are two agents (owners) of one
	// server install, as two agent processes on one Docker host are;
	// stranger is an agent of another server on the same engine.
	inst := install.New()
	dead, live := newEngine("", owner+"-dead"), newEngine("", owner+"-live")
	stranger := newEngine("", owner+"-stranger")
	runID := owner
	stageOf := func(id string) *pipeline.Stage {
		return &pipeline.Stage{ID: id, Image: "runnel-test/busybox:latest"}
	}
	old := &engine.Spec{Install: inst, RunID: runID, Attempt: 1, Stage: stageOf("deploy")}
	other := &engine.Spec{Install: inst, RunID: runID, Attempt: 1, Stage: stageOf("other")}
	theirs := &engine.Spec{Install: install.New(), RunID: runID, Attempt: 1, Stage: stageOf("deploy")}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 3)
	for _, x := range []struct {
		e *docker.Engine
		s *engine.Spec
	}{{dead, old}, {dead, other}, {stranger, theirs}} {
		if err := x.e.Setup(ctx, x.s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.e.Teardown(context.Background(), x.s) })
		go func() {
			_, err := x.e.Run(runCtx, x.s, &pipeline.Step{Name: "nap", Run: "sleep 60"}, io.Discard)
			done <- err
		}()
	}
	running := func(s *engine.Spec) int {
		cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: live.SpecFilter(s)})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for running(old) == 0 || running(other) == 0 || running(theirs) == 0 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("step containers of attempt 1 did not start")
		}
	}

	r := &StageRunner{Engine: live}
	r.reapEarlierAttempts(ctx, &wire.Job{Install: inst, RunID: runID, StageID: "deploy", Attempt: 2, Stage: stageOf("deploy")}, slog.New(slog.DiscardHandler))
	if n := running(old); n != 0 {
		t.Errorf("attempt 1 of deploy: %d containers running after attempt 2's reap, want 0", n)
	}
	if n := running(other); n != 1 {
		t.Errorf("stage other: %d containers running, want 1 (not its stage)", n)
	}
	if n := running(theirs); n != 1 {
		t.Errorf("attempt 1 of deploy in another install: %d containers running, want 1 (not its install)", n)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Error("the reaped step's Run did not return")
	}
}
