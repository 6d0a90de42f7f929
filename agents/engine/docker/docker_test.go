package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/enginetest"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

const (
	busybox = "runnel-test/busybox:latest"
	goImage = "runnel-test/go:latest"
)

// testClient returns a Docker client, skipping the test when no engine
// answers, unless CI is set: then a missing engine is a failure.
func testClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := NewClient()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker engine unavailable with CI set: %v", err)
		}
		t.Skipf("docker engine unavailable: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func testEngine(t *testing.T, cli *client.Client, owner string) *Engine {
	t.Helper()
	if owner == "" {
		owner = fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano())
	}
	e, err := New(cli, Options{Owner: owner, PullPolicy: engine.PullNever, StopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// resources lists what exists under filter f.
func resources(t *testing.T, cli *client.Client, f filters.Args) []string {
	t.Helper()
	ctx := context.Background()
	var got []string
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		got = append(got, "container "+c.ID[:12])
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		got = append(got, "network "+n.Name)
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Volumes {
		got = append(got, "volume "+v.Name)
	}
	return got
}

func contractConfig(t *testing.T, cli *client.Client, e *Engine) enginetest.Config {
	return enginetest.Config{
		Engine: e,
		Image:  busybox,
		Grace:  time.Second,
		AfterTeardown: func(t *testing.T, s *engine.Spec) {
			if left := resources(t, cli, e.SpecFilter(s)); len(left) > 0 {
				t.Errorf("after Teardown: got %v, want nothing labelled with the spec", left)
			}
		},
	}
}

func TestContract(t *testing.T) {
	cli := testClient(t)
	enginetest.Run(t, contractConfig(t, cli, testEngine(t, cli, "")))
}

func TestSetupLabelsEverything(t *testing.T) {
	cli := testClient(t)
	e := testEngine(t, cli, "")
	c := contractConfig(t, cli, e)
	s := enginetest.NewSpec(t, busybox, nil, t.TempDir())
	s.Stage.Services = []pipeline.Service{{Name: "idle", Image: busybox, Command: []string{"sleep", "1000"}}}
	enginetest.SetUp(t, c, s)
	f := filters.NewArgs(
		filters.Arg("label", LabelInstall+"="+e.Install()),
		filters.Arg("label", LabelOwner+"="+e.Owner()),
		filters.Arg("label", LabelHost+"="+hostname()),
		filters.Arg("label", LabelPID+"="+strconv.Itoa(os.Getpid())),
		filters.Arg("label", LabelRun+"="+s.RunID),
		filters.Arg("label", LabelStage+"="+s.Stage.ID),
		filters.Arg("label", LabelAttempt+"=1"),
	)
	got := resources(t, cli, f)
	var kinds []string
	for _, r := range got {
		kinds = append(kinds, strings.Fields(r)[0])
	}
	if want := "container network volume"; strings.Join(kinds, " ") != want {
		t.Errorf("labelled resources: got %v, want one each of %s", got, want)
	}
}

func TestServiceByName(t *testing.T) {
	cli := testClient(t)
	e := testEngine(t, cli, "")
	c := contractConfig(t, cli, e)
	s := enginetest.NewSpec(t, busybox, nil, "")
	s.Stage.Services = []pipeline.Service{
		{
			Name:    "web",
			Image:   busybox,
			Command: []string{"sh", "-c", "sleep 1; mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"},
			Ready:   pipeline.Readiness{Port: 8080, Timeout: pipeline.Duration(30 * time.Second)},
		},
		{
			Name:    "cmdready",
			Image:   busybox,
			Command: []string{"sh", "-c", "sleep 1; touch /tmp/up; exec sleep 1000"},
			Ready:   pipeline.Readiness{Command: []string{"test", "-f", "/tmp/up"}},
		},
	}
	enginetest.SetUp(t, c, s)
	code, out, err := enginetest.RunStep(context.Background(), t, c, s, "wget -q -O - http://web:8080/index.html", nil)
	if want := "hello-from-web\n"; err != nil || code != 0 || out != want {
		t.Fatalf("got %d, %v, %q, want 0, nil, %q", code, err, out, want)
	}
}

func TestServiceExitsDuringWait(t *testing.T) {
	cli := testClient(t)
	e := testEngine(t, cli, "")
	s := enginetest.NewSpec(t, busybox, nil, "")
	s.Stage.Services = []pipeline.Service{{
		Name:    "crashy",
		Image:   busybox,
		Command: []string{"sh", "-c", "echo db is broken; exit 7"},
		Ready:   pipeline.Readiness{Port: 5432, Timeout: pipeline.Duration(20 * time.Second)},
	}}
	defer e.Teardown(context.Background(), s)
	err := e.Setup(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "db is broken") || !strings.Contains(err.Error(), "crashy") {
		t.Fatalf("got %v, want an error naming crashy with its output", err)
	}
}

func TestPullNeverMissingImage(t *testing.T) {
	cli := testClient(t)
	e := testEngine(t, cli, "")
	missing := "runnel-test/does-not-exist:" + strconv.Itoa(os.Getpid())
	c := contractConfig(t, cli, e)
	s := enginetest.NewSpec(t, busybox, nil, "")
	enginetest.SetUp(t, c, s)
	code, err := e.Run(context.Background(), s, &pipeline.Step{Name: "x", Run: "true", Image: missing}, os.Stderr)
	if !errors.Is(err, engine.ErrImageNotFound) || code != engine.ExitUnknown {
		t.Fatalf("got %d, %v, want %d and an error wrapping ErrImageNotFound", code, err, engine.ExitUnknown)
	}
	s2 := enginetest.NewSpec(t, missing, nil, "")
	defer e.Teardown(context.Background(), s2)
	s2.Source = t.TempDir()
	if err := e.Setup(context.Background(), s2); !errors.Is(err, engine.ErrImageNotFound) {
		t.Fatalf("Setup: got %v, want an error wrapping ErrImageNotFound", err)
	}
}

func TestStepImage(t *testing.T) {
	cli := testClient(t)
	e := testEngine(t, cli, "")
	c := contractConfig(t, cli, e)
	s := enginetest.NewSpec(t, busybox, nil, "")
	enginetest.SetUp(t, c, s)
	var out strings.Builder
	code, err := e.Run(context.Background(), s, &pipeline.Step{Name: "go", Image: goImage, Run: "go version | cut -d' ' -f1-2"}, &out)
	if err != nil || code != 0 || !strings.HasPrefix(out.String(), "go version") {
		t.Fatalf("got %d, %v, %q, want 0, nil, \"go version ...\"", code, err, out.String())
	}
}

func TestPrune(t *testing.T) {
	cli := testClient(t)
	owner := fmt.Sprintf("test-%d-prune-%d", os.Getpid(), time.Now().UnixNano())
	crashed := testEngine(t, cli, owner)
	s := enginetest.NewSpec(t, busybox, nil, t.TempDir())
	s.Stage.Services = []pipeline.Service{{Name: "idle", Image: busybox, Command: []string{"sleep", "1000"}}}
	if err := crashed.Setup(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	other := enginetest.NewSpec(t, busybox, nil, "")
	bystander := testEngine(t, cli, "")
	if err := bystander.Setup(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	defer bystander.Teardown(context.Background(), other)

	ownerFilter := filters.NewArgs(filters.Arg("label", LabelOwner+"="+owner))
	if got := resources(t, cli, ownerFilter); len(got) != 3 {
		t.Fatalf("before Prune: got %v, want 3 resources", got)
	}
	// A new process with the same owner cleans up after the crashed one.
	if err := testEngine(t, cli, owner).Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := resources(t, cli, ownerFilter); len(got) != 0 {
		t.Errorf("after Prune: got %v, want nothing", got)
	}
	if got := resources(t, cli, bystander.SpecFilter(other)); len(got) != 2 {
		t.Errorf("other owner's resources after Prune: got %v, want its network and volume", got)
	}
}

// TestPruneDead: a process of an owner removes what dead processes of
// the same owner on this host left, and nothing of a live process of the
// owner or of another owner, dead or alive.
func TestPruneDead(t *testing.T) {
	cli := testClient(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	alive := exec.Command("sleep", "1000")
	if err := alive.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { alive.Process.Kill(); alive.Wait() }()

	owner := fmt.Sprintf("test-%d-prunedead-%d", os.Getpid(), time.Now().UnixNano())
	// asProcess is an engine of owner as the process pid would have it.
	asProcess := func(owner string, pid int) *Engine {
		e := testEngine(t, cli, owner)
		e.pid = strconv.Itoa(pid)
		return e
	}
	deadMine := asProcess(owner, gone.Process.Pid)
	liveMine := asProcess(owner, alive.Process.Pid)
	deadOther := asProcess(owner+"-other", gone.Process.Pid)
	specs := map[*Engine]*engine.Spec{}
	for _, e := range []*Engine{deadMine, liveMine, deadOther} {
		s := enginetest.NewSpec(t, busybox, nil, "")
		specs[e] = s
		if err := e.Setup(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		defer e.Teardown(context.Background(), s)
	}
	if err := testEngine(t, cli, owner).PruneDead(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		e    *Engine
		want int
	}{
		{"dead process of the owner", deadMine, 0},
		{"live process of the owner", liveMine, 2},
		{"dead process of another owner", deadOther, 2},
	} {
		if got := resources(t, cli, c.e.SpecFilter(specs[c.e])); len(got) != c.want {
			t.Errorf("%s: got %v, want %d resources", c.name, got, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	e, err := New(nil, Options{Install: "one"})
	if err != nil {
		t.Fatal(err)
	}
	a := &engine.Spec{RunID: "r/1", Attempt: 1, Stage: &pipeline.Stage{ID: "test[go=1.22]"}}
	b := &engine.Spec{RunID: "r_1", Attempt: 1, Stage: &pipeline.Stage{ID: "test[go=1.22]"}}
	c := &engine.Spec{RunID: "r/1", Attempt: 2, Stage: &pipeline.Stage{ID: "test[go=1.22]"}}
	d := &engine.Spec{Install: "two", RunID: "r/1", Attempt: 1, Stage: &pipeline.Stage{ID: "test[go=1.22]"}}
	na, nb, nc, nd := e.ResourceName(a), e.ResourceName(b), e.ResourceName(c), e.ResourceName(d)
	if na == nb || na == nc || na == nd {
		t.Errorf("names collide: %q %q %q %q", na, nb, nc, nd)
	}
	if !strings.HasPrefix(na, "runnel-one-") || !strings.HasPrefix(nd, "runnel-two-") {
		t.Errorf("names %q, %q do not start with runnel-INSTALL-", na, nd)
	}
	if strings.ContainsAny(na, "/[]=,") {
		t.Errorf("name %q has characters Docker rejects", na)
	}
}

func TestServiceNotReadyTimesOut(t *testing.T) {
	cli := testClient(t)
	e := testEngine(t, cli, "")
	s := enginetest.NewSpec(t, busybox, nil, "")
	s.Stage.Services = []pipeline.Service{{
		Name:    "deaf",
		Image:   busybox,
		Command: []string{"sleep", "1000"},
		Ready:   pipeline.Readiness{Port: 9999}, // default timeout: 60s
	}, {
		Name:  "missing",
		Image: "runnel-test/does-not-exist:latest",
	}}
	defer e.Teardown(context.Background(), s)
	start := time.Now()
	err := e.Setup(context.Background(), s)
	if !errors.Is(err, engine.ErrImageNotFound) {
		t.Fatalf("got %v, want an error wrapping ErrImageNotFound for the second service", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Setup took %v after a failed service start; waits were not cancelled", d)
	}
	s2 := *s
	stage := *s.Stage
	s2.Stage = &stage
	stage.Services = []pipeline.Service{s.Stage.Services[0]}
	stage.Services[0].Ready.Timeout = pipeline.Duration(2 * time.Second)
	s2.Attempt = 2
	defer e.Teardown(context.Background(), &s2)
	err = e.Setup(context.Background(), &s2)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "deaf") {
		t.Fatalf("got %v, want a deadline error naming service deaf", err)
	}
}

func TestPullIfNotPresentFailingPull(t *testing.T) {
	// No registry is reachable here: the pull fails, and a missing image
	// whose pull failed is ErrImageNotFound, for every concurrent caller.
	cli := testClient(t)
	e, err := New(cli, Options{Owner: fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	c := contractConfig(t, cli, e)
	s := enginetest.NewSpec(t, busybox, nil, "")
	enginetest.SetUp(t, c, s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := e.Run(ctx, s, &pipeline.Step{Name: "x", Run: "true", Image: "runnel-test/does-not-exist:pull"}, os.Stderr)
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; !errors.Is(err, engine.ErrImageNotFound) {
			t.Errorf("got %v, want an error wrapping ErrImageNotFound", err)
		}
	}
}

func TestServiceHealthcheck(t *testing.T) {
	cli := testClient(t)
	ctx := context.Background()
	tag := fmt.Sprintf("runnel-test/healthy-%d:latest", os.Getpid())
	dockerfile := "FROM " + busybox + "\nHEALTHCHECK --interval=1s --timeout=1s --retries=30 CMD test -f /tmp/ok\n"
	if err := buildImage(ctx, cli, tag, dockerfile); err != nil {
		t.Fatalf("build test image: %v", err)
	}
	t.Cleanup(func() { cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true}) })

	e := testEngine(t, cli, "")
	c := contractConfig(t, cli, e)
	s := enginetest.NewSpec(t, busybox, nil, "")
	s.Stage.Services = []pipeline.Service{{
		Name:    "slow",
		Image:   tag,
		Command: []string{"sh", "-c", "sleep 2; touch /tmp/ok; exec sleep 1000"},
	}}
	enginetest.SetUp(t, c, s)
	// Setup returned, so the service must be healthy now.
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", LabelRun+"="+s.RunID), filters.Arg("label", LabelService+"=slow"))})
	if err != nil || len(cs) != 1 {
		t.Fatalf("find service: %v, %d containers", err, len(cs))
	}
	info, err := cli.ContainerInspect(ctx, cs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Health.Status; got != "healthy" {
		t.Errorf("health after Setup: got %q, want healthy", got)
	}
}

func buildImage(ctx context.Context, cli *client.Client, tag, dockerfile string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}); err != nil {
		return err
	}
	tw.Write([]byte(dockerfile))
	tw.Close()
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, PullParent: false})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil)
}

// TestLimits: every step container has the engine's memory and process
// limits, no-new-privileges and the user it asks for; a step that
// allocates past its memory limit is reported out of memory, not as a
// bare 137.
func TestLimits(t *testing.T) {
	cli := testClient(t)
	e, err := New(cli, Options{Owner: fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano()), PullPolicy: engine.PullNever,
		StopGrace: time.Second, Limits: Limits{Memory: 32 << 20, CPUs: 0.5, PIDs: 64}})
	if err != nil {
		t.Fatal(err)
	}
	c := contractConfig(t, cli, e)
	s := enginetest.NewSpec(t, busybox, nil, "")
	enginetest.SetUp(t, c, s)
	ctx := t.Context()

	var out strings.Builder
	code, err := e.Run(ctx, s, &pipeline.Step{Name: "limits", Container: &pipeline.Container{User: "65534:65534"}, Run: `
cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max
grep NoNewPrivs /proc/self/status
id -u`}, &out)
	if err != nil || code != 0 {
		t.Fatalf("limits step: %d, %v\n%s", code, err, out.String())
	}
	fields := strings.Fields(out.String())
	want := []string{strconv.Itoa(32 << 20), "64", "NoNewPrivs:", "1", "65534"}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Errorf("limits step printed %q, want %q", fields, want)
	}

	out.Reset()
	code, err = e.Run(ctx, s, &pipeline.Step{Name: "hog", Run: "dd if=/dev/zero of=/dev/null bs=64M count=1"}, &out)
	if !errors.Is(err, engine.ErrOutOfMemory) || code != 137 {
		t.Fatalf("hog step: %d, %v, want 137 and ErrOutOfMemory\n%s", code, err, out.String())
	}

	// The stage's result says so too.
	oom := enginetest.NewSpec(t, busybox, nil, "")
	oom.Stage.Steps = []*pipeline.Step{{Name: "hog", Run: "dd if=/dev/zero of=/dev/null bs=64M count=1"}}
	res := (&stage.Executor{Engine: e}).Run(ctx, oom)
	if r := res.Steps[0]; r.Status != rules.Failure || r.ExitCode != 137 || !strings.HasPrefix(r.Reason, "out of memory") {
		t.Errorf("hog step result: %s %d %q, want failure 137 \"out of memory...\"", r.Status, r.ExitCode, r.Reason)
	}

	// An ordinary failure is not mistaken for one.
	code, err = e.Run(ctx, s, &pipeline.Step{Name: "fail", Run: "sh -c 'kill -9 $$'; echo unreachable"}, &out)
	if err != nil || code != 137 {
		t.Fatalf("killed step: %d, %v, want 137 and no error", code, err)
	}
}

// TestContainerSettings: what a step's container asks for reaches Docker
// (whether it may ask is the executor's business).
func TestContainerSettings(t *testing.T) {
	cli := testClient(t)
	e := testEngine(t, cli, "")
	c := contractConfig(t, cli, e)
	s := enginetest.NewSpec(t, busybox, nil, "")
	enginetest.SetUp(t, c, s)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/f", []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	// With the host's network the container has the Docker host's name,
	// which is not ours when the tests run in a container.
	info, err := cli.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	host := info.Name
	var out strings.Builder
	code, err := e.Run(t.Context(), s, &pipeline.Step{Name: "s", Run: "cat /h/f; echo; hostname; touch /h/g 2>/dev/null || echo read-only",
		Container: &pipeline.Container{Volumes: []string{dir + ":/h:ro"}, Network: "host", CapAdd: []string{"NET_ADMIN"}}}, &out)
	want := "from the host\n" + host + "\nread-only\n"
	if err != nil || code != 0 || out.String() != want {
		t.Fatalf("got %d, %v, %q; want 0, nil, %q", code, err, out.String(), want)
	}
	_, err = e.Run(t.Context(), s, &pipeline.Step{Name: "bad", Run: "true", Container: &pipeline.Container{Network: "container:x"}}, &out)
	if err == nil {
		t.Error("network container:x accepted")
	}
}
