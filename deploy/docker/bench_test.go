package docker_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/runnel-ci/runnel/deploy/docker"
)

// BenchmarkBlueGreen measures one Docker blue/green release end to end
// (create green, wait for health, shift 10 % → 50 % → 100 % with one
// probe per step, remove blue) against the raw work it wraps, in the same
// iteration: create and start two containers of the same image and
// command on the same network, wait until both answer HTTP, and remove
// one. Metrics: deploy-ms, raw-ms and ratio (deploy / raw), per op.
func BenchmarkBlueGreen(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	netName := "runnel-deploy-test-" + e.app
	if _, err := e.prov.Deploy(ctx, e.release("v0"), nil); err != nil {
		b.Fatalf("deploy v0: %v", err)
	}
	var deployTotal, rawTotal time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rel := e.release(fmt.Sprintf("v%d", i+1), 10, 50)
		rel.Health.Interval = 20 * time.Millisecond
		t0 := time.Now()
		if _, err := e.prov.Deploy(ctx, rel, nil); err != nil {
			b.Fatalf("deploy: %v", err)
		}
		deployTotal += time.Since(t0)

		t0 = time.Now()
		ids, err := rawPair(ctx, e, netName, i)
		rawTotal += time.Since(t0)
		for _, id := range ids {
			_ = e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(deployTotal.Milliseconds())/n, "deploy-ms/op")
	b.ReportMetric(float64(rawTotal.Milliseconds())/n, "raw-ms/op")
	b.ReportMetric(float64(deployTotal)/float64(rawTotal), "ratio")
}

// rawPair is the baseline: `docker run` of two containers on the
// network and wait until both serve. It returns the containers to remove
// (outside the timing).
func rawPair(ctx context.Context, e *env, netName string, i int) ([]string, error) {
	initProc := true
	var ids []string
	for _, c := range []string{"a", "b"} {
		cfg := &container.Config{Image: image, Cmd: serve, Env: []string{"VERSION=raw"},
			Labels: map[string]string{docker.LabelApp: e.app}}
		resp, err := e.cli.ContainerCreate(ctx, cfg, &container.HostConfig{Init: &initProc},
			&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}}, nil,
			fmt.Sprintf("%s-raw-%d-%s", e.app, i, c))
		if err != nil {
			return ids, fmt.Errorf("create: %w", err)
		}
		ids = append(ids, resp.ID)
		if err := e.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			return ids, fmt.Errorf("start: %w", err)
		}
	}
	for _, id := range ids {
		info, err := e.cli.ContainerInspect(ctx, id)
		if err != nil {
			return ids, err
		}
		url := "http://" + info.NetworkSettings.Networks[netName].IPAddress + ":8080/health"
		poll := time.NewTicker(20 * time.Millisecond) // the benchmark's readiness poll, timed with the rest
		for ; ; <-poll.C {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		poll.Stop()
	}
	return ids, nil
}
