package workspace

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/agent"
	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/docker"
	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

// finishes is a natsserver.Handler that keeps the finished updates.
type finishes struct {
	mu  sync.Mutex
	got map[string]wire.Update // by run
	ch  chan struct{}
}

func (f *finishes) Update(_ context.Context, u *wire.Update) error {
	if u.Kind == wire.KindFinished {
		f.mu.Lock()
		f.got[u.RunID] = *u
		f.mu.Unlock()
		select {
		case f.ch <- struct{}{}:
		default:
		}
	}
	return nil
}

func (f *finishes) Log(context.Context, *wire.LogChunk) error { return nil }

// Claim grants every claim: these jobs are each published once.
func (f *finishes) Claim(_ context.Context, c *wire.Claim) *wire.ClaimReply {
	return &wire.ClaimReply{Granted: true, Attempt: c.Attempt, Lease: pipeline.Duration(time.Minute)}
}

func (f *finishes) wait(t *testing.T, run string) wire.Update {
	t.Helper()
	deadline := time.After(3 * time.Minute)
	for {
		f.mu.Lock()
		u, ok := f.got[run]
		f.mu.Unlock()
		if ok {
			return u
		}
		select {
		case <-f.ch:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("run %s did not finish", run)
		}
	}
}

// TestCraftedJobRefused publishes jobs straight to NATS, as anyone with
// the server's NATS credentials could, bypassing the server's check of
// the repository's container permissions. A job asking for a privileged
// container with a host mount is refused by an agent that does not allow
// them, before any container exists (the step would leave a file on the
// host); an agent that allows host mounts runs a job asking for one.
func TestCraftedJobRefused(t *testing.T) {
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
	eng, err := docker.New(cli, docker.Options{Owner: fmt.Sprintf("test-%d-policy", os.Getpid()), PullPolicy: engine.PullNever})
	if err != nil {
		t.Fatal(err)
	}

	var creds []natsserver.AgentCredential
	tokens := map[string]string{}
	for _, name := range []string{"strict", "lenient"} {
		tok, cred, err := natsserver.NewAgentCredential(name)
		if err != nil {
			t.Fatal(err)
		}
		cred.Labels = map[string]string{"pool": name}
		tokens[name], creds = tok, append(creds, cred)
	}
	srv, err := natsserver.StartEmbedded(natsserver.Options{DataDir: t.TempDir(), Port: -1, Agents: creds})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := natsbus.Connect(srv.ClientURL(), srv.ServerCreds())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	d, err := natsserver.NewDispatcher(ctx, nc, natsserver.DispatcherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fin := &finishes{got: map[string]wire.Update{}, ch: make(chan struct{}, 1)}
	wg.Go(func() { d.Run(ctx, fin) }) //nolint:errcheck // ends with ctx

	startAgent := func(name string, labels map[string]string, allowed []pipeline.Permission) {
		c, err := natsbus.ParseAgentToken(tokens[name])
		if err != nil {
			t.Fatal(err)
		}
		anc, err := natsbus.Connect(srv.ClientURL(), c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(anc.Close)
		a, err := agent.New(agent.Config{Name: name, Labels: labels,
			Runner: &StageRunner{Engine: eng, WorkDir: t.TempDir(), AllowContainer: allowed}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { a.Run(ctx, anc) }) //nolint:errcheck // ends with ctx
	}
	startAgent("strict", map[string]string{"pool": "strict"}, nil)
	startAgent("lenient", map[string]string{"pool": "lenient"}, []pipeline.Permission{pipeline.PermHostMounts})

	hostDir := t.TempDir()
	crafted := func(run, pool string, privileged bool) {
		st := &pipeline.Stage{ID: "pwn", Name: "pwn", Image: "runnel-test/busybox:latest", Labels: map[string]string{"pool": pool},
			Timeout: pipeline.Duration(time.Minute),
			Steps: []*pipeline.Step{{Name: "escape", Run: "touch /host/" + run,
				Container: &pipeline.Container{Privileged: privileged, Volumes: []string{hostDir + ":/host"}}}}}
		b, err := wire.Encode(&wire.Job{RunID: run, StageID: "pwn", Attempt: 1, Stage: st})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Request(wire.JobSubject(st.Labels), b, 10*time.Second); err != nil { // a JetStream publish ack
			t.Fatal(err)
		}
	}
	run := fmt.Sprintf("crafted-%d", time.Now().UnixNano())
	crafted(run+"-strict", "strict", true)
	crafted(run+"-lenient", "lenient", false) // this Docker engine cannot start privileged containers

	u := fin.wait(t, run+"-strict")
	if u.Status != rules.Error || !strings.Contains(u.Reason, "refused by this agent's container policy") ||
		!strings.Contains(u.Reason, "privileged") || !strings.Contains(u.Reason, "host-mounts") {
		t.Errorf("strict agent: finished %s %q, want error refused by this agent's container policy (privileged, host-mounts)", u.Status, u.Reason)
	}
	if _, err := os.Stat(filepath.Join(hostDir, run+"-strict")); err == nil {
		t.Error("the refused job's step ran: its file is on the host")
	}
	u = fin.wait(t, run+"-lenient")
	if u.Status != rules.Success {
		t.Errorf("lenient agent: finished %s %q, want success", u.Status, u.Reason)
	}
	if _, err := os.Stat(filepath.Join(hostDir, run+"-lenient")); err != nil {
		t.Errorf("the allowed job's step did not run: %v", err)
	}
}
