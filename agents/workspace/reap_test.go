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
	"github.com/runnel-ci/runnel/pipeline"
)

// TestReapEarlierAttempts: a step container of attempt 1 left running
// (its agent was killed) is removed before attempt 2 of the same stage
// runs, whatever its owner; another stage's container is left alone.
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
	// The "dead agent" and the new one have different owners, as two
	// agent processes on one Docker host do.
	dead, err := docker.New(cli, docker.Options{Owner: owner + "-dead", PullPolicy: engine.PullNever})
	if err != nil {
		t.Fatal(err)
	}
	live, err := docker.New(cli, docker.Options{Owner: owner + "-live", PullPolicy: engine.PullNever})
	if err != nil {
		t.Fatal(err)
	}
	runID := owner
	stageOf := func(id string) *pipeline.Stage {
		return &pipeline.Stage{ID: id, Image: "runnel-test/busybox:latest"}
	}
	old := &engine.Spec{RunID: runID, Attempt: 1, Stage: stageOf("deploy")}
	other := &engine.Spec{RunID: runID, Attempt: 1, Stage: stageOf("other")}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 2)
	for _, s := range []*engine.Spec{old, other} {
		if err := dead.Setup(ctx, s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dead.Teardown(context.Background(), s) })
		go func() {
			_, err := dead.Run(runCtx, s, &pipeline.Step{Name: "nap", Run: "sleep 60"}, io.Discard)
			done <- err
		}()
	}
	running := func(s *engine.Spec) int {
		cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: docker.SpecFilter(s)})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs)
	}
	deadline := time.Now().Add(30 * time.Second)
	for (running(old) == 0 || running(other) == 0) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if running(old) == 0 || running(other) == 0 {
		t.Fatal("step containers of attempt 1 did not start")
	}

	r := &StageRunner{Engine: live}
	r.reapEarlierAttempts(ctx, &wire.Job{RunID: runID, StageID: "deploy", Attempt: 2, Stage: stageOf("deploy")}, slog.New(slog.DiscardHandler))
	if n := running(old); n != 0 {
		t.Errorf("attempt 1 of deploy: %d containers running after attempt 2's reap, want 0", n)
	}
	if n := running(other); n != 1 {
		t.Errorf("stage other: %d containers running, want 1 (not its stage)", n)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Error("the reaped step's Run did not return")
	}
}
