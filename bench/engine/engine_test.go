package enginebench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/docker"
	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/agents/logs"
	"github.com/runnel-ci/runnel/pipeline"
)

const busybox = "runnel-test/busybox:latest"

func spec(name, image string) *engine.Spec {
	return &engine.Spec{
		RunID:   fmt.Sprintf("bench-%d-%d", os.Getpid(), time.Now().UnixNano()),
		Attempt: 1,
		Stage:   &pipeline.Stage{ID: name, Name: name, Image: image, Env: map[string]string{"CI": "true"}},
	}
}

// BenchmarkDockerStep runs, per iteration, one step `true` through
// Engine.Run and one raw ContainerCreate+Start+Wait+Remove of the same
// container (same image, command, network and volume), interleaved so
// both see the same machine state. It reports both per-step times and
// their ratio.
func BenchmarkDockerStep(b *testing.B) {
	cli, err := docker.NewClient()
	if err == nil {
		_, err = cli.Ping(context.Background())
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			b.Fatalf("docker unavailable with CI set: %v", err)
		}
		b.Skipf("docker unavailable: %v", err)
	}
	defer cli.Close()
	e, err := docker.New(cli, docker.Options{Owner: fmt.Sprintf("bench-%d", os.Getpid()), PullPolicy: engine.PullNever})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	s := spec("dockerstep", busybox)
	if err := e.Setup(ctx, s); err != nil {
		b.Fatal(err)
	}
	defer e.Teardown(context.WithoutCancel(ctx), s)
	defer e.Prune(context.WithoutCancel(ctx))

	netName, volName := e.ResourceName(s), e.ResourceName(s)
	step := &pipeline.Step{Name: "true", Run: "true"}
	raw := func() error {
		resp, err := cli.ContainerCreate(ctx, &container.Config{
			Image:      busybox,
			Entrypoint: []string{"/bin/sh", "-e", "-c"},
			Cmd:        []string{"true"},
			WorkingDir: docker.WorkspaceDir,
			Labels:     map[string]string{docker.LabelOwner: e.Owner()},
		}, &container.HostConfig{
			NetworkMode: container.NetworkMode(netName),
			Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: volName, Target: docker.WorkspaceDir}},
		}, nil, nil, "")
		if err != nil {
			return err
		}
		if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			return err
		}
		waitCh, errCh := cli.ContainerWait(ctx, resp.ID, container.WaitConditionNotRunning)
		select {
		case r := <-waitCh:
			if r.StatusCode != 0 {
				return fmt.Errorf("exit %d", r.StatusCode)
			}
		case err := <-errCh:
			return err
		}
		return cli.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	// One of each to warm caches.
	if _, err := e.Run(ctx, s, step, io.Discard); err != nil {
		b.Fatal(err)
	}
	if err := raw(); err != nil {
		b.Fatal(err)
	}
	var tEngine, tRaw time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		code, err := e.Run(ctx, s, step, io.Discard)
		if err != nil || code != 0 {
			b.Fatalf("engine step: %d, %v", code, err)
		}
		mid := time.Now()
		if err := raw(); err != nil {
			b.Fatalf("raw step: %v", err)
		}
		tEngine += mid.Sub(start)
		tRaw += time.Since(mid)
	}
	b.StopTimer()
	report(b, tEngine, tRaw)
}

func report(b *testing.B, tEngine, tRaw time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(tEngine.Microseconds())/1000/n, "engine-ms/step")
	b.ReportMetric(float64(tRaw.Microseconds())/1000/n, "raw-ms/step")
	b.ReportMetric(float64(tEngine)/float64(tRaw), "ratio")
}

func newLocal(b *testing.B) (*local.Engine, *engine.Spec) {
	e := local.New(local.Options{Root: b.TempDir()})
	s := spec("localstep", "")
	if err := e.Setup(context.Background(), s); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Teardown(context.Background(), s) })
	return e, s
}

// BenchmarkLocalStep compares a step `true` through the local engine with
// a plain `sh -c true` in its own process group, interleaved.
func BenchmarkLocalStep(b *testing.B) {
	e, s := newLocal(b)
	ctx := context.Background()
	step := &pipeline.Step{Name: "true", Run: "true"}
	var tEngine, tRaw time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if code, err := e.Run(ctx, s, step, io.Discard); err != nil || code != 0 {
			b.Fatalf("engine step: %d, %v", code, err)
		}
		mid := time.Now()
		cmd := exec.Command("sh", "-c", "true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		tEngine += mid.Sub(start)
		tRaw += time.Since(mid)
	}
	report(b, tEngine, tRaw)
}

// BenchmarkLocalLogs runs `seq 1000000` (6.9 MB) per iteration three ways
// into a file: through the local engine, through the engine and the logs
// chain (mask + prefix + cap), and straight to the file (the shell's
// stdout is the file).
func BenchmarkLocalLogs(b *testing.B) {
	e, s := newLocal(b)
	ctx := context.Background()
	step := &pipeline.Step{Name: "seq", Run: "seq 1000000"}
	dir := b.TempDir()
	open := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	var tEngine, tChain, tRaw time.Duration
	for i := 0; i < b.N; i++ {
		f := open("engine.log")
		t0 := time.Now()
		if code, err := e.Run(ctx, s, step, f); err != nil || code != 0 {
			b.Fatalf("engine: %d, %v", code, err)
		}
		tEngine += time.Since(t0)
		f.Close()

		f = open("chain.log")
		t0 = time.Now()
		w := logs.Chain(f, logs.MaskSet(logs.NewSet("s3cr3t-token")), logs.Prefix("[build/seq] "), logs.Limit(1<<30))
		if code, err := e.Run(ctx, s, step, w); err != nil || code != 0 {
			b.Fatalf("engine+chain: %d, %v", code, err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		tChain += time.Since(t0)
		f.Close()

		f = open("raw.log")
		t0 = time.Now()
		cmd := exec.Command("sh", "-c", "seq 1000000")
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		tRaw += time.Since(t0)
		f.Close()
	}
	n := float64(b.N)
	b.ReportMetric(float64(tEngine.Microseconds())/1000/n, "engine-ms/op")
	b.ReportMetric(float64(tChain.Microseconds())/1000/n, "engine+chain-ms/op")
	b.ReportMetric(float64(tRaw.Microseconds())/1000/n, "raw-ms/op")
	b.ReportMetric(float64(tEngine)/float64(tRaw), "ratio")
}
