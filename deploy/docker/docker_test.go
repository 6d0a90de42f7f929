package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/docker"
)

const image = "runnel-test/busybox:latest"

// serve is the command of a test app: httpd serving $VERSION at / and a
// health file at /health, which it deletes after $UNHEALTHY_AFTER seconds
// when that is set.
var serve = []string{"sh", "-c", `mkdir -p /www && echo "$VERSION" > /www/index.html && echo ok > /www/health &&
if [ -n "$UNHEALTHY_AFTER" ]; then (sleep "$UNHEALTHY_AFTER"; rm /www/health) & fi
exec httpd -f -p 8080 -h /www`}

func newClient(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker engine: %v", err)
		}
		t.Skipf("docker engine: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// env is one test app: a provider, its proxy served on a loopback port,
// and cleanup of everything labelled with the app.
type env struct {
	cli     *client.Client
	app     string
	net     string // the app's network
	prov    *docker.Provider
	proxy   string // base URL of the proxy
	control string // base URL of its control API
}

func newEnv(t testing.TB) *env {
	t.Helper()
	cli := newClient(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	app := "dt" + hex.EncodeToString(b)
	netName := "runnel-deploy-test-" + app
	// The provider drives the proxy through its control API, as an agent
	// drives a runnel proxy process.
	proxy := docker.NewProxy(nil)
	control := httptest.NewServer(&docker.Control{Proxy: proxy})
	t.Cleanup(control.Close)
	router, err := docker.NewClient(control.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := docker.New(cli, docker.Options{App: app, Network: netName, Proxy: router, Drain: 100 * time.Millisecond, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("proxy: %v", err)
		}
		cctx := context.Background()
		cs, err := cli.ContainerList(cctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelApp+"="+app))})
		if err != nil {
			t.Errorf("list containers: %v", err)
		}
		for _, c := range cs {
			if err := cli.ContainerRemove(cctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
				t.Errorf("remove container: %v", err)
			}
		}
		if err := cli.NetworkRemove(cctx, netName); err != nil {
			t.Errorf("remove network: %v", err)
		}
	})
	return &env{cli: cli, app: app, net: netName, prov: prov, proxy: "http://" + ln.Addr().String(), control: control.URL}
}

func (e *env) release(version string, steps ...int) deploy.Release {
	return deploy.Release{
		App: e.app, Version: version, Image: image, Command: serve,
		Env:  map[string]string{"VERSION": version},
		Port: 8080, TrafficSteps: steps,
		Health: deploy.HealthCheck{Path: "/health", Interval: 100 * time.Millisecond, Timeout: time.Second, StartTimeout: 10 * time.Second},
	}
}

// get returns the body the proxy serves at /, trimmed.
func (e *env) get(t testing.TB) string {
	t.Helper()
	resp, err := http.Get(e.proxy + "/")
	if err != nil {
		t.Fatalf("GET through proxy: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read proxy response: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	return strings.TrimSpace(string(body))
}

// versions returns the version labels of the app's containers.
func (e *env) versions(t testing.TB) []string {
	t.Helper()
	cs, err := e.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelApp+"="+e.app))})
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, c := range cs {
		vs = append(vs, c.Labels[docker.LabelVersion])
	}
	return vs
}

func TestBlueGreen(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	t.Run("first release", func(t *testing.T) {
		res, err := e.prov.Deploy(ctx, e.release("v1"), nil)
		if err != nil {
			t.Fatalf("deploy v1: %v", err)
		}
		if res.Outcome != deploy.Succeeded || res.From != "" || res.To != "v1" {
			t.Errorf("got outcome %s from %q to %q, want succeeded from \"\" to v1", res.Outcome, res.From, res.To)
		}
		if got := e.get(t); got != "v1" {
			t.Errorf("proxy serves %q, want v1", got)
		}
	})

	t.Run("shift in steps", func(t *testing.T) {
		// At every step, count 100 responses (the proxy splits every 100
		// consecutive requests exactly).
		counts := map[int]map[string]int{}
		res, err := e.prov.Deploy(ctx, e.release("v2", 10, 50), func(ev deploy.Event) {
			if ev.Phase != deploy.PhaseShift {
				return
			}
			c := map[string]int{}
			for range 100 {
				c[e.get(t)]++
			}
			counts[ev.Weight] = c
		})
		if err != nil {
			t.Fatalf("deploy v2: %v", err)
		}
		want := map[int]map[string]int{10: {"v1": 90, "v2": 10}, 50: {"v1": 50, "v2": 50}, 100: {"v2": 100}}
		for w, wc := range want {
			for v, n := range wc {
				if counts[w][v] != n {
					t.Errorf("at %d%%: got %v, want %v", w, counts[w], wc)
					break
				}
			}
		}
		if res.Outcome != deploy.Succeeded || res.From != "v1" || res.To != "v2" {
			t.Errorf("got outcome %s from %q to %q, want succeeded from v1 to v2", res.Outcome, res.From, res.To)
		}
		var ws []int
		for _, s := range res.Steps {
			ws = append(ws, s.Weight)
			if !s.Healthy || s.Finished.Before(s.Started) {
				t.Errorf("step %+v: want healthy with finish after start", s)
			}
		}
		if len(ws) != 3 || ws[0] != 10 || ws[1] != 50 || ws[2] != 100 {
			t.Errorf("got steps %v, want [10 50 100]", ws)
		}
		if got := e.get(t); got != "v2" {
			t.Errorf("proxy serves %q, want v2", got)
		}
		if got := e.versions(t); len(got) != 1 || got[0] != "v2" {
			t.Errorf("containers of the app: got versions %v, want [v2]", got)
		}
	})

	t.Run("same version again", func(t *testing.T) {
		res, err := e.prov.Deploy(ctx, e.release("v2", 50), nil)
		if err != nil || res.Outcome != deploy.Succeeded || len(res.Steps) != 0 {
			t.Errorf("got %s, %d steps, err %v; want succeeded without steps", res.Outcome, len(res.Steps), err)
		}
	})

	t.Run("unhealthy under traffic rolls back", func(t *testing.T) {
		rel := e.release("v3", 10, 50)
		rel.Env["UNHEALTHY_AFTER"] = "2"
		rel.BakeTime = 5 * time.Second
		// Hammer the proxy during the release and after it.
		var (
			mu        sync.Mutex
			served    = map[string]int{}
			afterV3   int
			done      = make(chan struct{})
			finished  = make(chan struct{})
			wg        sync.WaitGroup
			returned  bool
			afterReqs int
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(finished)
			pace := time.NewTicker(5 * time.Millisecond) // the traffic's pace (a load generator)
			defer pace.Stop()
			for ; ; <-pace.C {
				mu.Lock()
				after := returned
				mu.Unlock()
				select {
				case <-done:
					return
				default:
				}
				resp, err := http.Get(e.proxy + "/")
				if err != nil {
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				v := strings.TrimSpace(string(body))
				mu.Lock()
				served[v]++
				if after {
					afterReqs++
					if v != "v2" {
						afterV3++
					}
				}
				mu.Unlock()
			}
		}()
		res, err := e.prov.Deploy(ctx, rel, nil)
		mu.Lock()
		returned = true
		mu.Unlock()
		// Enough responses after the rollback to show which version serves.
		waitFor(t, 60*time.Second, "100 responses after the rollback", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return afterReqs >= 100
		})
		close(done)
		wg.Wait()
		<-finished

		if !errors.Is(err, deploy.ErrRolledBack) || res.Outcome != deploy.RolledBack {
			t.Fatalf("got outcome %s, err %v; want rolled_back", res.Outcome, err)
		}
		if res.From != "v2" || res.To != "v3" || res.Reason == "" {
			t.Errorf("got from %q to %q reason %q, want from v2 to v3 with a reason", res.From, res.To, res.Reason)
		}
		if served["v3"] == 0 {
			t.Errorf("proxy never served v3 during the release (served %v); the test proves nothing", served)
		}
		if afterReqs == 0 || afterV3 != 0 {
			t.Errorf("after rollback: %d of %d responses were not v2, want 0 of >0", afterV3, afterReqs)
		}
		if got := e.get(t); got != "v2" {
			t.Errorf("proxy serves %q, want v2", got)
		}
		if got := e.versions(t); len(got) != 1 || got[0] != "v2" {
			t.Errorf("containers of the app: got versions %v, want [v2]", got)
		}
	})

	t.Run("never healthy fails without traffic", func(t *testing.T) {
		rel := e.release("v4", 50)
		rel.Health.Path = "/missing"
		rel.Health.StartTimeout = time.Second
		res, err := e.prov.Deploy(ctx, rel, nil)
		if !errors.Is(err, deploy.ErrFailed) || res.Outcome != deploy.Failed || len(res.Steps) != 0 {
			t.Fatalf("got outcome %s, %d steps, err %v; want failed without steps", res.Outcome, len(res.Steps), err)
		}
		if got := e.get(t); got != "v2" {
			t.Errorf("proxy serves %q, want v2", got)
		}
		if got := e.versions(t); len(got) != 1 || got[0] != "v2" {
			t.Errorf("containers of the app: got versions %v, want [v2]", got)
		}
	})

	t.Run("cancel mid-shift leaves the old version", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		rel := e.release("v5", 10, 50)
		rel.BakeTime = 10 * time.Second
		res, err := e.prov.Deploy(cctx, rel, func(ev deploy.Event) {
			if ev.Phase == deploy.PhaseShift && ev.Weight == 10 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, deploy.ErrRolledBack) || res.Outcome != deploy.RolledBack {
			t.Fatalf("got outcome %s, err %v; want rolled_back wrapping context.Canceled", res.Outcome, err)
		}
		if got := e.get(t); got != "v2" {
			t.Errorf("proxy serves %q, want v2", got)
		}
		if got := e.versions(t); len(got) != 1 || got[0] != "v2" {
			t.Errorf("containers of the app: got versions %v, want [v2]", got)
		}
	})

	t.Run("exec health check", func(t *testing.T) {
		rel := e.release("v6")
		rel.Health = deploy.HealthCheck{Exec: []string{"test", "-f", "/www/health"}, Interval: 100 * time.Millisecond, StartTimeout: 10 * time.Second}
		if _, err := e.prov.Deploy(ctx, rel, nil); err != nil {
			t.Fatalf("deploy v6: %v", err)
		}
		if got := e.get(t); got != "v6" {
			t.Errorf("proxy serves %q, want v6", got)
		}
	})
}

// TestAdopt: a new Provider (a restarted agent) adopts the running
// container and removes leftovers.
func TestAdopt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.prov.Deploy(ctx, e.release("v1"), nil); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	proxy := docker.NewProxy(nil)
	prov, err := docker.New(e.cli, docker.Options{App: e.app, Network: "runnel-deploy-test-" + e.app, Proxy: proxy, Drain: time.Millisecond, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res, err := prov.Deploy(ctx, e.release("v2", 50), nil)
	if err != nil || res.From != "v1" {
		t.Fatalf("got from %q, err %v; want from v1", res.From, err)
	}
	if got := e.versions(t); len(got) != 1 || got[0] != "v2" {
		t.Errorf("containers of the app: got versions %v, want [v2]", got)
	}
}

// waitFor polls cond on a ticker until it holds.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}
