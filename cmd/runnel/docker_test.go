package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/runnel-ci/runnel/agents/engine/docker"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// needDocker returns a client for the local Docker engine. Without one the
// test fails when CI is set (CI must not skip Docker tests) and is skipped
// otherwise.
func needDocker(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err = cli.Ping(ctx); err == nil {
			_, err = cli.ImageInspect(ctx, "runnel-test/busybox:latest")
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Docker engine or test image unavailable (CI is set, so this fails; run scripts/test-images.sh): %v", err)
		}
		t.Skipf("Docker engine or test image unavailable: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestRunDemoDocker(t *testing.T) {
	needDocker(t)
	summary := filepath.Join(t.TempDir(), "summary.json")
	r := runnel(t, "../../examples/demo", "run", "--pull", "never", "--summary-json", summary)
	if r.code != 0 {
		t.Errorf("exit code: got %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	checkSummary(t, summary, rules.Success, map[string]map[string]stepWant{
		"lint":              {"shellcheck": {"success", false, 1}, "spelling": {"failure", true, 1}},
		"test":              {"unit": {"success", false, 1}, "http": {"success", false, 1}, "flaky": {"success", false, 3}},
		"build[arch=amd64]": {"compile": {"success", false, 1}},
		"build[arch=arm64]": {"compile": {"success", false, 1}},
		"package":           {"tarball": {"success", false, 1}},
	}, map[string]rules.Status{
		"lint": "success", "test": "success", "build[arch=amd64]": "success", "build[arch=arm64]": "success", "package": "success",
	})
	for _, want := range []string{
		"test/http | web answered: hello from web\n",
		"test/flaky | attempt 3\n",
		"package/tarball | app/greet.sh\n",
		"run SUCCESS\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestRunFailingDocker(t *testing.T) {
	needDocker(t)
	summary := filepath.Join(t.TempDir(), "summary.json")
	r := runnel(t, "../../examples/failing", "run", "--pull", "never", "--summary-json", summary)
	if r.code != 1 {
		t.Errorf("exit code: got %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	checkSummary(t, summary, rules.Failure, failingSteps, failingStages)
}

func TestRunMissingImageDocker(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	src := "version: 1\nstages:\n  s:\n    image: runnel-test/does-not-exist:latest\n    steps:\n      - name: a\n        run: 'true'\n"
	if err := os.WriteFile(filepath.Join(dir, ".pipeline.yml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(t.TempDir(), "summary.json")
	r := runnel(t, dir, "run", "--pull", "never", "--summary-json", summary)
	if r.code != 1 {
		t.Errorf("exit code: got %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// The image is checked at Setup: the stage errs, its step never starts.
	checkSummary(t, summary, rules.Failure, map[string]map[string]stepWant{"s": {"a": {"skipped", false, 0}}}, map[string]rules.Status{"s": "error"})
	if !strings.Contains(r.stdout, "runnel-test/does-not-exist") {
		t.Errorf("stdout does not name the missing image:\n%s", r.stdout)
	}
}

// TestRunInterrupt interrupts a run whose step container and service are
// up and checks that runnel exits 130 and leaves no container, network or
// volume behind.
func TestRunInterrupt(t *testing.T) {
	cli := needDocker(t)
	ctx := context.Background()
	cmd := exec.Command(binary, "run", "--pull", "never")
	cmd.Dir = "testdata/interrupt"
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	// A `runnel run` process's resources carry its PID.
	owned := filters.NewArgs(filters.Arg("label", docker.LabelOwner+"="+runOwner),
		filters.Arg("label", docker.LabelPID+"="+strconv.Itoa(cmd.Process.Pid)))

	// Wait until both step containers (no service label) are running.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: owned})
		if err != nil {
			t.Fatal(err)
		}
		steps := 0
		for _, c := range cs {
			if c.Labels[docker.LabelService] == "" && c.State == "running" {
				steps++
			}
		}
		if steps == 2 {
			break
		}
		select {
		case <-exited:
			t.Fatalf("runnel exited before the steps ran: %v\n%s", waitErr, out.String())
		case <-deadline:
			t.Fatalf("step containers not running after 60s; output:\n%s", out.String())
		case <-tick.C:
		}
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("runnel did not exit within 60s of SIGINT; output:\n%s", out.String())
	}
	if got := cmd.ProcessState.ExitCode(); got != exitCanceled {
		t.Errorf("exit code: got %d, want %d\n%s", got, exitCanceled, out.String())
	}
	for _, want := range []string{"==> hang: canceled", "==> other: canceled", "==> after: canceled", "run CANCELED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	left := leftovers(t, cli, cmd.Process.Pid)
	if len(left) > 0 {
		t.Errorf("left behind after SIGINT: %v", left)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// leftovers lists the containers, networks and volumes made by the
// `runnel run` process pid.
func leftovers(t *testing.T, cli *client.Client, pid int) []string {
	t.Helper()
	ctx := context.Background()
	owned := filters.NewArgs(filters.Arg("label", docker.LabelOwner+"="+runOwner),
		filters.Arg("label", docker.LabelPID+"="+strconv.Itoa(pid)))
	var left []string
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: owned})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		left = append(left, "container "+c.ID[:12])
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: owned})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		left = append(left, "network "+n.Name)
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: owned})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Volumes {
		left = append(left, "volume "+v.Name)
	}
	return left
}

// TestRunForcedExitThenPrune: a second SIGINT exits at once and may leave
// resources behind; the next `runnel run` on this host removes them
// because their owner process is gone.
func TestRunForcedExitThenPrune(t *testing.T) {
	cli := needDocker(t)
	cmd := exec.Command(binary, "run", "--pull", "never", "--stage", "hang")
	cmd.Dir = "testdata/interrupt"
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	pid := cmd.Process.Pid
	waitOutput(t, &out, "hang/sleep | sleeping", exited)
	cmd.Process.Signal(syscall.SIGINT)
	// The second interrupt goes once runnel took the first (two sent at
	// once may reach it as one).
	waitOutput(t, &out, "interrupt again to force", exited)
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("runnel did not exit within 10s of the second SIGINT:\n%s", out.String())
	}
	if got := cmd.ProcessState.ExitCode(); got != exitCanceled {
		t.Errorf("exit code: got %d, want %d\n%s", got, exitCanceled, out.String())
	}
	if !strings.Contains(out.String(), "forced exit") {
		t.Errorf("output lacks the forced-exit notice:\n%s", out.String())
	}
	if left := leftovers(t, cli, pid); len(left) == 0 {
		t.Fatalf("a forced exit left nothing behind; the test cannot show the prune (output:\n%s)", out.String())
	}

	dir := t.TempDir()
	src := "version: 1\nstages:\n  s:\n    image: runnel-test/busybox:latest\n    steps:\n      - name: a\n        run: 'true'\n"
	if err := os.WriteFile(filepath.Join(dir, ".pipeline.yml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runnel(t, dir, "run", "--pull", "never"); r.code != 0 {
		t.Fatalf("second run: exit code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if left := leftovers(t, cli, pid); len(left) > 0 {
		t.Errorf("left behind after the next run pruned: %v", left)
	}
}

// TestRunEnvExpansionDocker: ${VAR} in env values reaches a step's
// container expanded, per matrix combination; an untrusted value that
// holds a reference (the branch name here) arrives as written.
func TestRunEnvExpansionDocker(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	src := `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    matrix:
      arch: [amd64, arm64]
    env:
      GOARCH: ${MATRIX_ARCH}
      OUT: bin/app-${ARCH}-${RUNNEL_BRANCH}
    steps:
      - name: show
        run: echo "GOARCH=$GOARCH OUT=$OUT LITERAL=$LITERAL"
        env:
          LITERAL: $${MATRIX_ARCH}
`
	if err := os.WriteFile(filepath.Join(dir, ".pipeline.yml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runnel(t, dir, "run", "--pull", "never", "--branch", "feat-${MATRIX_ARCH}")
	if r.code != 0 {
		t.Fatalf("exit code: got %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		want := "build[arch=" + arch + "]/show | GOARCH=" + arch + " OUT=bin/app-" + arch + "-feat-${MATRIX_ARCH} LITERAL=${MATRIX_ARCH}\n"
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

// waitOutput waits until out contains want, failing if the process exits
// (exited closed) first or after a minute.
func waitOutput(t *testing.T, out *syncBuffer, want string, exited <-chan struct{}) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case <-exited:
			if !strings.Contains(out.String(), want) {
				t.Fatalf("runnel exited before printing %q:\n%s", want, out.String())
			}
		case <-deadline:
			t.Fatalf("no %q within 60s:\n%s", want, out.String())
		case <-tick.C:
		}
	}
}
