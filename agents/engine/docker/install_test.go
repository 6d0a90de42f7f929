package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sync/errgroup"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/enginetest"
	"github.com/runnel-ci/runnel/pipeline"
)

// TestInstallsDoNotCollide: two installs on one engine run a stage with
// the same run, stage and attempt at the same time (two servers' run 1
// both have a stage "build"). Both set up and succeed, and everything one
// install cleans up (Teardown, the reap of that attempt, Prune, PruneDead)
// leaves the other's running step, network and volume alone.
func TestInstallsDoNotCollide(t *testing.T) {
	cli := testClient(t)
	ctx := context.Background()
	owner := fmt.Sprintf("test-%d-install-%d", os.Getpid(), time.Now().UnixNano())
	a, b := testEngine(t, cli, owner+"-a"), testEngine(t, cli, owner+"-b")
	if a.Install() == b.Install() {
		t.Fatalf("both engines have install %q", a.Install())
	}
	sa := enginetest.NewSpec(t, busybox, nil, t.TempDir())
	sb := *sa // the same run id, stage and attempt; each in its engine's install
	specOf := map[*Engine]*engine.Spec{a: sa, b: &sb}
	for e, s := range specOf {
		defer e.Teardown(context.WithoutCancel(ctx), s)
	}
	var g errgroup.Group
	for e, s := range specOf {
		g.Go(func() error { return e.Setup(ctx, s) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("Setup of the same stage in two installs: %v", err)
	}

	// b's step runs until the test puts /workspace/release in place.
	bDone := make(chan error, 1)
	var bOut strings.Builder
	go func() {
		code, err := b.Run(ctx, &sb, &pipeline.Step{Name: "wait",
			Run: "echo waiting; until [ -e /workspace/release ]; do sleep 0.1; done; echo released"}, &bOut)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit code %d", code)
		}
		bDone <- err
	}()
	step := waitStepContainer(t, b, &sb, bDone)

	code, out, err := enginetest.RunStep(ctx, t, enginetest.Config{Engine: a, Image: busybox}, sa, "echo from-a", nil)
	if err != nil || code != 0 || out != "from-a\n" {
		t.Fatalf("a's step: got %d, %v, %q, want 0, nil, \"from-a\\n\"", code, err, out)
	}
	for name, clean := range map[string]func(context.Context) error{
		"Teardown":  func(ctx context.Context) error { return a.Teardown(ctx, sa) },
		"Prune":     a.Prune,
		"PruneDead": a.PruneDead,
	} {
		if err := clean(ctx); err != nil {
			t.Fatalf("a.%s: %v", name, err)
		}
		if got := resources(t, cli, b.SpecFilter(&sb)); len(got) != 3 {
			t.Fatalf("b's resources after a.%s: got %v, want its step container, network and volume", name, got)
		}
	}
	if got := resources(t, cli, a.SpecFilter(sa)); len(got) != 0 {
		t.Errorf("a's resources after its Teardown: got %v, want none", got)
	}

	release(t, b, step)
	select {
	case err := <-bDone:
		if err != nil {
			t.Fatalf("b's step: %v (output %q)", err, bOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("b's step did not end after the release")
	}
	if got := bOut.String(); got != "waiting\nreleased\n" {
		t.Errorf("b's output: got %q, want \"waiting\\nreleased\\n\"", got)
	}
}

// waitStepContainer returns the id of s's running step container once
// there is one.
func waitStepContainer(t *testing.T, e *Engine, s *engine.Spec, done <-chan error) string {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		cs, err := e.cli.ContainerList(context.Background(), container.ListOptions{Filters: e.SpecFilter(s)})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Labels[LabelService] == "" && c.State == "running" {
				return c.ID
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the step ended before it was seen running: %v", err)
		case <-deadline:
			t.Fatal("the step container did not start within 60s")
		case <-tick.C:
		}
	}
}

// release puts an empty /workspace/release into container id.
func release(t *testing.T, e *Engine, id string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "release", Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.cli.CopyToContainer(context.Background(), id, WorkspaceDir, io.Reader(&buf), container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("release the step: %v", err)
	}
}
