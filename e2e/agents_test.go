package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// indent indents every line of s by n spaces, for a block scalar.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// TestAgentsLabelRouting: a server without its built-in agent and three
// `runnel agent` processes with different labels; each stage runs on the
// agent whose labels it requires, and the API lists the agents.
func TestAgentsLabelRouting(t *testing.T) {
	c := newCluster(t, []string{"ag-a", "ag-b", "ag-c"})
	c.startAgent("ag-a", "os=linux,tier=a", 1)
	c.startAgent("ag-b", "os=linux,tier=b", 2)
	c.startAgent("ag-c", "tier=c", 3)
	agents := c.waitAgents("ag-a", "ag-b", "ag-c")
	want := map[string]agentInfo{
		"ag-a": {Name: "ag-a", Labels: map[string]string{"os": "linux", "tier": "a"}, Capacity: 1},
		"ag-b": {Name: "ag-b", Labels: map[string]string{"os": "linux", "tier": "b"}, Capacity: 2},
		"ag-c": {Name: "ag-c", Labels: map[string]string{"tier": "c"}, Capacity: 3},
	}
	for _, a := range agents {
		w, ok := want[a.Name]
		if !ok {
			t.Errorf("unexpected agent %+v", a)
			continue
		}
		if a.Capacity != w.Capacity || fmt.Sprint(a.Labels) != fmt.Sprint(w.Labels) {
			t.Errorf("agent %s = labels %v capacity %d, want %v %d", a.Name, a.Labels, a.Capacity, w.Labels, w.Capacity)
		}
	}

	bare, work := repoSetup(t, c.dir)
	c.addRepo("labels", bare)
	sha := c.pushAndTrigger("labels", work, `version: 1
stages:
  on-a:
    image: runnel-test/busybox:latest
    labels: {os: linux, tier: a}
    steps:
      - name: s
        run: echo "stage on-a"
  on-b:
    image: runnel-test/busybox:latest
    labels: {tier: b}
    needs: [on-a]
    steps:
      - name: s
        run: echo "stage on-b"
  on-c:
    image: runnel-test/busybox:latest
    labels: {tier: c}
    steps:
      - name: s
        run: echo "stage on-c"
`)
	r := c.srv.waitRun(sha, 90*time.Second, terminal)
	if r.Status != "success" {
		t.Fatalf("run = %s, want success: %+v", r.Status, r)
	}
	wantAgent := map[string]string{"on-a": "ag-a", "on-b": "ag-b", "on-c": "ag-c"}
	for _, st := range r.Stages {
		if st.Agent != wantAgent[st.ID] {
			t.Errorf("stage %s ran on %q, want %q", st.ID, st.Agent, wantAgent[st.ID])
		}
		code, b := c.srv.api("GET", st.Steps[0].Log)
		if code != 200 || string(b) != "stage "+st.ID+"\n" {
			t.Errorf("stage %s log = %d %q, want %q", st.ID, code, b, "stage "+st.ID+"\n")
		}
	}
}

// TestAgentKilledMidStage: SIGKILL the agent running a long stage. The
// server's lease (15 s here) runs out and it queues the stage again as a
// later attempt, which runs on the other agent within a minute; the run
// finishes, and the killed attempt's container never runs at the same
// time as the new attempt: a marker server on the host records when each
// container really ran.
func TestAgentKilledMidStage(t *testing.T) { testAgentKilled(t, []string{"--lease-timeout", "15s"}) }

func testAgentKilled(t *testing.T, extra []string) {
	c := newCluster(t, []string{"kill-1", "kill-2"}, extra...)
	c.startAgent("kill-1", "pool=kill", 1)
	c.startAgent("kill-2", "pool=kill", 1)
	c.waitAgents("kill-1", "kill-2")
	// The first attempt ticks long enough to outlive JetStream's
	// redelivery if nothing stops it; later attempts are short.
	m := newMarker(t, func(n int) string {
		if n == 1 {
			return "45"
		}
		return "2"
	})
	bare, work := repoSetup(t, c.dir)
	c.addRepo("kill", bare)
	sha := c.pushAndTrigger("kill", work, `version: 1
stages:
  long:
    image: runnel-test/busybox:latest
    labels: {pool: kill}
    steps:
      - name: tick
        run: |
`+indent(markerScript(m.port()), 10)+"\n")

	r := c.srv.waitRun(sha, 60*time.Second, func(r run) bool {
		return len(r.Stages) == 1 && r.Stages[0].Status == "running" && r.Stages[0].Agent != ""
	})
	// Wait for the container to have really started.
	waitFor(t, 30*time.Second, "the step's reports", func() bool { return len(m.snapshot()) >= 2 })
	victim := r.Stages[0].Agent
	a := c.agents[victim]
	if a == nil {
		t.Fatalf("stage runs on unknown agent %q", victim)
	}
	killed := time.Now()
	a.stop(syscall.SIGKILL)
	t.Logf("killed %s at %s, attempt %d", victim, killed.Format("15:04:05.000"), r.Stages[0].Attempt)

	r = c.srv.waitRun(sha, 90*time.Second, terminal)
	st := c.runDetail(r.ID).stage("long")
	ev := m.snapshot()
	t.Logf("run %s after %s; stage %s attempt %d on %s reason %q", r.Status, time.Since(killed).Round(time.Second), st.Status, st.Attempt, st.Agent, st.Reason)

	// Per container: first and last report.
	type span struct {
		first, last time.Time
		ended       bool
	}
	spans := map[string]*span{}
	var order []string
	for _, e := range ev {
		s := spans[e.id]
		if s == nil {
			s = &span{first: e.at}
			spans[e.id] = s
			order = append(order, e.id)
		}
		s.last = e.at
		s.ended = s.ended || e.kind == "end"
	}
	for _, id := range order {
		t.Logf("container %s: %s .. %s ended=%v", id, spans[id].first.Format("15:04:05.000"), spans[id].last.Format("15:04:05.000"), spans[id].ended)
	}
	switch {
	case st.Status == "success" && st.Attempt >= 2:
		if st.Agent == victim {
			t.Errorf("attempt %d ran on the killed agent %s", st.Attempt, victim)
		}
		if len(order) < 2 {
			t.Fatalf("marker saw %d containers, want the killed one and the new attempt", len(order))
		}
		first, second := spans[order[0]], spans[order[1]]
		if d := second.first.Sub(killed); d > time.Minute {
			t.Errorf("new attempt started %s after the kill, want < 1m", d)
		}
		if !second.ended {
			t.Errorf("new attempt's container did not report its end")
		}
		if !first.last.Before(second.first) {
			t.Errorf("killed attempt's container still ran at %s, after the new attempt started at %s: the stage ran twice at once",
				first.last.Format("15:04:05.000"), second.first.Format("15:04:05.000"))
		}
	default:
		t.Errorf("after the kill: run %s, stage %+v; want success on a later attempt", r.Status, st)
	}
}

// TestServerRestartWithRemoteAgent: kill (SIGKILL) or stop (SIGTERM) and
// restart the server
// (and its embedded NATS, same data dir and port) while a remote agent
// runs a stage. The run finishes with every stage run exactly once and
// every log complete.
func TestServerRestartWithRemoteAgent(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { testServerRestart(t, sig) })
	}
}

func testServerRestart(t *testing.T, sig syscall.Signal) {
	c := newCluster(t, []string{"survivor"})
	c.startAgent("survivor", "pool=restart", 1)
	c.waitAgents("survivor")
	bare, work := repoSetup(t, c.dir)
	c.addRepo("restart", bare)
	sha := c.pushAndTrigger("restart", work, `version: 1
stages:
  first:
    image: runnel-test/busybox:latest
    labels: {pool: restart}
    steps:
      - name: count
        run: for i in $(seq 1 10); do echo "line $i"; sleep 0.5; done
  second:
    image: runnel-test/busybox:latest
    labels: {pool: restart}
    needs: [first]
    steps:
      - name: count
        run: for i in $(seq 1 3); do echo "line $i"; done
`)
	r := c.srv.waitRun(sha, 60*time.Second, func(r run) bool {
		return len(r.Stages) == 2 && r.Stages[0].Status == "running"
	})
	// Once some log lines arrived, kill the server mid-stage.
	waitFor(t, 30*time.Second, "the first log lines", func() bool {
		st := c.runDetail(r.ID).stage("first")
		if len(st.Steps) == 0 || st.Steps[0].Log == "" {
			return false
		}
		code, b := c.srv.api("GET", st.Steps[0].Log)
		return code == 200 && strings.Contains(string(b), "line 2\n")
	})
	token := c.srv.token
	// The server's exit breaks the agent's connection: it reconnects to
	// the new one without a pause between them.
	c.srv.stop(sig)
	c.startServer(token)

	c.srv.waitRun(sha, 90*time.Second, terminal)
	d := c.runDetail(r.ID)
	if d.Status != "success" {
		t.Fatalf("run = %s (%s), want success: %+v\nagent log:\n%s", d.Status, d.Reason, d, c.agents["survivor"].log())
	}
	wantLines := map[string]int{"first": 10, "second": 3}
	for _, st := range d.Stages {
		if st.Status != "success" || st.Attempt != 1 || st.Agent != "survivor" {
			t.Errorf("stage %s = %s attempt %d on %q, want success at attempt 1 on survivor", st.ID, st.Status, st.Attempt, st.Agent)
		}
		var want strings.Builder
		for i := 1; i <= wantLines[st.ID]; i++ {
			fmt.Fprintf(&want, "line %d\n", i)
		}
		code, b := c.srv.api("GET", st.Steps[0].Log)
		if code != 200 || string(b) != want.String() {
			t.Errorf("stage %s log = %d %q, want %q", st.ID, code, b, want.String())
		}
	}
}

// TestLargeLogs: a 100 MiB step log and a 5 MiB single line reach the
// server byte-complete over NATS.
func TestLargeLogs(t *testing.T) {
	c := newCluster(t, []string{"big"})
	c.startAgent("big", "pool=big", 2)
	c.waitAgents("big")
	const word = "0123456789abcdef0123456789abcde" // 31 bytes + "\n" from yes
	const bigSize = 100 << 20
	const lineSize = 5 << 20
	var big []byte
	for len(big) < bigSize {
		big = append(big, word+"\n"...)
	}
	big = big[:bigSize]
	line := append(bytes.Repeat([]byte("x"), lineSize), '\n')

	bare, work := repoSetup(t, c.dir)
	c.addRepo("big", bare)
	sha := c.pushAndTrigger("big", work, fmt.Sprintf(`version: 1
stages:
  big:
    image: runnel-test/busybox:latest
    labels: {pool: big}
    steps:
      - name: hundred
        run: yes %s | head -c %d
      - name: line
        run: head -c %d /dev/zero | tr '\0' x; echo
`, word, bigSize, lineSize))
	start := time.Now()
	r := c.srv.waitRun(sha, 3*time.Minute, terminal)
	t.Logf("run %s in %s", r.Status, time.Since(start).Round(100*time.Millisecond))
	if r.Status != "success" {
		t.Fatalf("run = %s, want success: %+v", r.Status, r)
	}
	for i, want := range [][]byte{big, line} {
		code, b := c.srv.api("GET", r.Stages[0].Steps[i].Log)
		gs, ws := sha256.Sum256(b), sha256.Sum256(want)
		if code != 200 || len(b) != len(want) || gs != ws {
			t.Errorf("step %s log = %d, %d bytes sha256 %s; want %d bytes sha256 %s",
				r.Stages[0].Steps[i].Name, code, len(b), hex.EncodeToString(gs[:]), len(want), hex.EncodeToString(ws[:]))
		}
	}
}

// TestConcurrencyGroupAcrossRuns: two pushes whose deploy stages share
// the concurrency group "production" deploy one after the other in
// commit order, and the waiting one shows why it waits.
func TestConcurrencyGroupAcrossRuns(t *testing.T) {
	c := newCluster(t, []string{"deployer"})
	c.startAgent("deployer", "pool=deploy", 2)
	c.waitAgents("deployer")
	bare, work := repoSetup(t, c.dir)
	out := runnel(t, "repo", "add", "deploy", "--bare", bare, "--server", c.srv.url, "--token", c.srv.token)
	m := regexp.MustCompile(`hook token \(shown once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no hook token in %q", out)
	}
	runnel(t, "hook", "install", bare, "--server", c.srv.url, "--repo", "deploy", "--token", m[1])
	pipe := func(n int) string {
		return fmt.Sprintf(`version: 1
stages:
  deploy:
    image: runnel-test/busybox:latest
    labels: {pool: deploy}
    concurrency: production
    steps:
      - name: ship
        run: echo "deploying change %d"; sleep 3; echo done
`, n)
	}
	sha1 := commit(t, work, pipe(1))
	git(t, work, "push", "-q", "origin", "main")
	sha2 := commit(t, work, pipe(2))
	git(t, work, "push", "-q", "origin", "main")

	// While one deploy runs, the other waits with a reason naming the group.
	var waiting string
	waitFor(t, 60*time.Second, "a deploy waiting for the other", func() bool {
		var ds []runDetail
		for _, r := range c.srv.runs("repo=deploy") {
			ds = append(ds, c.runDetail(r.ID))
		}
		for _, d := range ds {
			for _, o := range ds {
				if d.ID != o.ID && o.stage("deploy").Status == "running" && d.stage("deploy").Status != "running" && d.stage("deploy").PendingReason != "" {
					waiting = d.stage("deploy").PendingReason
				}
			}
		}
		return waiting != ""
	})
	if !strings.Contains(waiting, "production") {
		t.Errorf("pending reason of the waiting deploy = %q, want it to name the concurrency group production", waiting)
	}

	r1 := c.srv.waitRun(sha1, 60*time.Second, terminal)
	r2 := c.srv.waitRun(sha2, 60*time.Second, terminal)
	d1, d2 := c.runDetail(r1.ID).stage("deploy"), c.runDetail(r2.ID).stage("deploy")
	if r1.Status != "success" || r2.Status != "success" {
		t.Fatalf("runs = %s, %s; want both success", r1.Status, r2.Status)
	}
	spans := []stageDetail{d1, d2}
	t.Logf("deploy 1: %s .. %s; deploy 2: %s .. %s", d1.StartedAt.Format("15:04:05.000"), d1.FinishedAt.Format("15:04:05.000"),
		d2.StartedAt.Format("15:04:05.000"), d2.FinishedAt.Format("15:04:05.000"))
	if !sort.SliceIsSorted(spans, func(i, j int) bool { return spans[i].StartedAt.Before(spans[j].StartedAt) }) {
		t.Errorf("deploy of the second commit started first")
	}
	if d2.StartedAt.Before(d1.FinishedAt) {
		t.Errorf("deploys overlap: second started %s before the first finished %s", d2.StartedAt, d1.FinishedAt)
	}
	if d1.Concurrency != "production" {
		t.Errorf("stage concurrency = %q, want production", d1.Concurrency)
	}
}
