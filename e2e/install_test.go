package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/runnel-ci/runnel/agents/engine/docker"
)

// installPipeline prints installLines numbered lines over about 4 s.
const (
	installLines    = 20
	installRuns     = 20
	installPipeline = `version: 1
stages:
  build:
    image: runnel-test/busybox:latest
    labels: {pool: install}
    steps:
      - name: count
        run: for i in $(seq 1 20); do echo "line $i"; sleep 0.2; done
`
)

// TestTwoInstallsShareDocker: two servers with their own data dirs and
// agents on one Docker engine run 20 runs each of the same pipeline at
// the same time (so both have run 1..20 with stage "build" attempt 1):
// all 40 succeed, and every Docker resource carries its own install's id
// and agent. Then, in a second wave, one install's agent is SIGKILLed and
// started again, which removes what the dead process left: the other
// install's runs are untouched (all succeed at attempt 1 with complete
// logs), and the killed install's stages run again once their lease
// (15 s here) runs out, so all its runs succeed too. Before install ids
// the two installs' names collided and one's cleanup reached the
// other's containers.
func TestTwoInstallsShareDocker(t *testing.T) {
	cli, err := docker.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	a := newCluster(t, []string{"worker"})
	b := newCluster(t, []string{"worker"}, "--lease-timeout", "15s")
	ids := map[*cluster]installIDs{}
	shas := map[*cluster]string{}
	for _, c := range []*cluster{a, b} {
		c.startAgent("worker", "pool=install", 4)
		c.waitAgents("worker")
		ids[c] = installIDs{server: readID(t, filepath.Join(c.dir, "data")), agent: readID(t, filepath.Join(c.dir, "agent-worker"))}
		bare, work := repoSetup(t, c.dir)
		c.addRepo("app", bare)
		shas[c] = commit(t, work, installPipeline)
		git(t, work, "push", "-q", "origin", "main")
	}
	if ids[a].server == ids[b].server || ids[a].agent == ids[b].agent {
		t.Fatalf("the installs share ids: %+v %+v", ids[a], ids[b])
	}
	wave := func(n int) {
		for i := 0; i < n; i++ {
			for _, c := range []*cluster{a, b} {
				c.trigger("app", shas[c])
			}
		}
	}

	// Wave 1: 20 runs each at once, all succeed.
	wave(installRuns)
	waitFor(t, 2*time.Minute, "both installs running steps", func() bool {
		return len(listResources(t, cli, "container", ids[a].server, true)) > 0 &&
			len(listResources(t, cli, "container", ids[b].server, true)) > 0
	})
	checkOwnership(t, cli, ids[a], ids[b])
	for name, c := range map[string]*cluster{"a": a, "b": b} {
		checkRuns(t, c, name, c.waitRuns(installRuns, 5*time.Minute), untouched)
	}

	// Wave 2: 4 more runs each (one per agent slot); b's agent is killed while both run steps.
	wave(4)
	waitFor(t, 2*time.Minute, "both installs running steps", func() bool {
		return len(listResources(t, cli, "container", ids[a].server, true)) > 0 &&
			len(listResources(t, cli, "container", ids[b].server, true)) > 0
	})
	victim := b.agents["worker"]
	deadPID := strconv.Itoa(victim.cmd.Process.Pid)
	victim.stop(syscall.SIGKILL)
	if len(resourcesOf(t, cli, ids[b].agent, deadPID)) == 0 {
		t.Fatal("the killed agent left no Docker resources; the test cannot show that its cleanup spares the other install")
	}
	b.startAgent("worker", "pool=install", 4)
	b.waitAgents("worker")
	// At start the agent removes what its dead process left.
	waitFor(t, time.Minute, "the restarted agent removing its dead process's resources", func() bool {
		return len(resourcesOf(t, cli, ids[b].agent, deadPID)) == 0
	})
	checkOwnership(t, cli, ids[a], ids[b])
	checkRuns(t, a, "a", a.waitRuns(installRuns+4, 5*time.Minute), untouched)
	checkRuns(t, b, "b", b.waitRuns(installRuns+4, 5*time.Minute), retried)
	for _, id := range []string{ids[a].server, ids[b].server} {
		waitFor(t, time.Minute, "no resources of install "+id, func() bool {
			return len(listResources(t, cli, "", id, false)) == 0
		})
	}
}

// How checkRuns judges an install's runs: every run succeeds with its
// complete log, and untouched ones at attempt 1, while retried ones
// include at least one run whose stage ran again.
type runsWere int

const (
	untouched runsWere = iota
	retried
)

func checkRuns(t *testing.T, c *cluster, name string, runs []run, how runsWere) {
	t.Helper()
	again := 0
	for _, r := range runs {
		d := c.runDetail(r.ID)
		st := d.stage("build")
		if d.Status != "success" || st.Status != "success" {
			t.Errorf("install %s run %d: %s, stage %s (%s) at attempt %d, want success\nagent log:\n%s",
				name, d.ID, d.Status, st.Status, st.Reason, st.Attempt, c.agents["worker"].log())
			continue
		}
		if st.Attempt > 1 {
			again++
		}
		code, log := c.srv.api("GET", st.Steps[0].Log)
		if want := numbered(installLines); code != http.StatusOK || string(log) != want {
			t.Errorf("install %s run %d attempt %d: log %d %q, want %q", name, d.ID, st.Attempt, code, log, want)
		}
	}
	switch {
	case how == untouched && again > 0:
		t.Errorf("install %s: %d runs' stages ran again, want none (nothing touched them)", name, again)
	case how == retried && again == 0:
		t.Errorf("install %s: no run's stage ran again, want the killed agent's stages retried", name)
	}
	t.Logf("install %s: %d runs succeeded, %d of them at a later attempt", name, len(runs), again)
}

type installIDs struct{ server, agent string }

func readID(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "install-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// trigger starts a run of sha by the API.
func (c *cluster) trigger(repo, sha string) {
	c.t.Helper()
	code, b := c.srv.do("POST", "/api/v1/repos/"+repo+"/trigger", strings.NewReader(`{"branch":"main","commit":"`+sha+`"}`),
		map[string]string{"Authorization": "Bearer " + c.srv.token})
	if code != http.StatusCreated {
		c.t.Fatalf("trigger: %d %s", code, b)
	}
}

// waitRuns waits until the server has n runs, all finished.
func (c *cluster) waitRuns(n int, d time.Duration) []run {
	c.t.Helper()
	var runs []run
	waitFor(c.t, d, fmt.Sprintf("%d finished runs", n), func() bool {
		runs = c.srv.runs("limit=100")
		done := 0
		for _, r := range runs {
			if terminal(r) {
				done++
			}
		}
		return len(runs) == n && done == n
	})
	return runs
}

func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		<-poll.C
	}
}

// pruneKilled removes what the SIGKILLed processes of the install with
// data directory dataDir left in Docker, as the install's next start
// does (docker.Engine.PruneDead with the install as owner). A test that
// kills a server or agent it does not start again calls it.
func pruneKilled(t *testing.T, dataDir string) {
	t.Helper()
	cli, err := docker.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	id := readID(t, dataDir)
	eng, err := docker.New(cli, docker.Options{Install: id, Owner: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.PruneDead(context.Background()); err != nil {
		t.Errorf("prune what the killed processes of install %s left: %v", id, err)
	}
}

// nothingLeft fails the test for every Docker container, network and
// volume of the installs with data directories dataDirs, whose processes
// must all have ended.
func nothingLeft(t *testing.T, dataDirs ...string) {
	t.Helper()
	cli, err := docker.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, dir := range dataDirs {
		id := readID(t, dir)
		for _, r := range listResources(t, cli, "", id, false) {
			t.Errorf("install %s left %s %s (labels %v)", id, r.kind, r.name, r.labels)
		}
	}
}

// resource is a Docker container, network or volume with Runnel labels.
type resource struct {
	kind, name string
	labels     map[string]string
	running    bool
}

// listResources lists the resources of kind ("" for all) labelled with
// install; running keeps only running containers.
func listResources(t *testing.T, cli *client.Client, kind, install string, running bool) []resource {
	t.Helper()
	return dockerResources(t, cli, kind, filters.NewArgs(filters.Arg("label", docker.LabelInstall+"="+install)), running)
}

// resourcesOf lists what the process pid of owner made.
func resourcesOf(t *testing.T, cli *client.Client, owner, pid string) []resource {
	t.Helper()
	return dockerResources(t, cli, "", filters.NewArgs(filters.Arg("label", docker.LabelOwner+"="+owner),
		filters.Arg("label", docker.LabelPID+"="+pid)), false)
}

func dockerResources(t *testing.T, cli *client.Client, kind string, f filters.Args, running bool) []resource {
	t.Helper()
	ctx := context.Background()
	var out []resource
	if kind == "" || kind == "container" {
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: !running, Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			out = append(out, resource{"container", strings.TrimPrefix(c.Names[0], "/"), c.Labels, c.State == "running"})
		}
	}
	if kind == "" || kind == "network" {
		ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			out = append(out, resource{"network", n.Name, n.Labels, false})
		}
	}
	if kind == "" || kind == "volume" {
		vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs.Volumes {
			out = append(out, resource{"volume", v.Name, v.Labels, false})
		}
	}
	return out
}

// checkOwnership: whatever one install's agent made carries that install's
// id in its label and (networks and volumes) its name, never the other's.
func checkOwnership(t *testing.T, cli *client.Client, installs ...installIDs) {
	t.Helper()
	for _, in := range installs {
		all := dockerResources(t, cli, "", filters.NewArgs(filters.Arg("label", docker.LabelOwner+"="+in.agent)), false)
		all = append(all, listResources(t, cli, "", in.server, false)...)
		for _, r := range all {
			if r.labels[docker.LabelInstall] != in.server || r.labels[docker.LabelOwner] != in.agent {
				t.Errorf("%s %s: install %q owner %q, want install %q owner %q", r.kind, r.name,
					r.labels[docker.LabelInstall], r.labels[docker.LabelOwner], in.server, in.agent)
			}
			if r.kind != "container" && !strings.HasPrefix(r.name, "runnel-"+in.server+"-") {
				t.Errorf("%s %s: name does not start with runnel-%s-", r.kind, r.name, in.server)
			}
		}
	}
}
