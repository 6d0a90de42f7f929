package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestServerFlagProblems(t *testing.T) {
	ok := serverFlags{stepLogMax: "100m", leaseTimeout: 45 * time.Second, agentCapacity: 2, natsPort: 4222, backend: "docker", drainTimeout: 2 * time.Minute,
		artifacts: artifactFlags{artifactExpiry: time.Hour, cacheExpiry: time.Hour, fetchExpiry: time.Hour, sweepInterval: time.Minute}}
	for _, c := range []struct {
		name string
		edit func(*serverFlags)
		want []string // each problem contains these, in order; nil: no problem
	}{
		{"defaults", func(*serverFlags) {}, nil},
		{"lease at the minimum", func(f *serverFlags) { f.leaseTimeout = 35 * time.Second }, nil},
		{"lease below AckWait", func(f *serverFlags) { f.leaseTimeout = 8 * time.Second },
			[]string{"--lease-timeout 8s is shorter than three agent heartbeats (5s each)", "use at least 15s"}},
		{"lease just short", func(f *serverFlags) { f.leaseTimeout = 14 * time.Second }, []string{"--lease-timeout 14s", "use at least 15s"}},
		{"no capacity", func(f *serverFlags) { f.agentCapacity = 0 }, []string{"--agent-capacity 0", "or --no-agent"}},
		{"no capacity without an agent", func(f *serverFlags) { f.agentCapacity, f.noAgent = 0, true }, nil},
		{"bad step log max", func(f *serverFlags) { f.stepLogMax = "0" }, []string{`--step-log-max "0": want a size`}},
		{"random NATS port", func(f *serverFlags) { f.natsPort = -1 }, nil},
		{"NATS port too big", func(f *serverFlags) { f.natsPort = 70000 }, []string{"--nats-port 70000", "-1 for a free one"}},
		{"unknown backend", func(f *serverFlags) { f.backend = "podman" }, []string{`--backend "podman": want docker or local`}},
		{"negative drain", func(f *serverFlags) { f.drainTimeout = -time.Second }, []string{"--drain-timeout -1s is negative", "use 0"}},
		{"no sweep", func(f *serverFlags) { f.artifacts.sweepInterval = 0 }, []string{"--artifact-sweep 0s: want a positive duration"}},
		{"negative cache expiry", func(f *serverFlags) { f.artifacts.cacheExpiry = -time.Hour }, []string{"--cache-expiry -1h0m0s"}},
		{"S3 options without S3", func(f *serverFlags) { f.artifacts.s3Endpoint = "http://minio:9000" }, []string{"need --artifact-store s3://"}},
		{"S3", func(f *serverFlags) { f.artifacts.store, f.artifacts.s3Endpoint = "s3://b/p", "http://minio:9000" }, nil},
		{"everything at once", func(f *serverFlags) { f.leaseTimeout, f.agentCapacity, f.backend = time.Second, -1, "" },
			[]string{"--lease-timeout 1s", "--agent-capacity -1", `--backend ""`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := ok
			c.edit(&f)
			checkProblems(t, serverFlagProblems(f), c.want)
		})
	}
}

func TestAgentFlagProblems(t *testing.T) {
	ok := agentFlags{capacity: 1, backend: "local", workDir: "/var/lib/runnel-agent", drainTimeout: time.Minute, stepLogMax: "100m"}
	for _, c := range []struct {
		name string
		edit func(*agentFlags)
		want []string
	}{
		{"defaults", func(*agentFlags) {}, nil},
		{"no capacity", func(f *agentFlags) { f.capacity = 0 }, []string{"--capacity 0: an agent runs at least 1 stage at once; use 1 or more"}},
		{"no work dir", func(f *agentFlags) { f.workDir = "" }, []string{"--work-dir is empty"}},
		{"unknown backend", func(f *agentFlags) { f.backend = "k8s" }, []string{`--backend "k8s"`}},
		{"negative drain", func(f *agentFlags) { f.drainTimeout = -time.Minute }, []string{"--drain-timeout -1m0s is negative"}},
		{"bad step log max", func(f *agentFlags) { f.stepLogMax = "lots" }, []string{`--step-log-max "lots": want a size`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := ok
			c.edit(&f)
			checkProblems(t, agentFlagProblems(f), c.want)
		})
	}
}

// checkProblems: one problem per want entry, in order, each containing
// its want (several wants in one entry would be one problem; here each
// want names the problem it expects).
func checkProblems(t *testing.T, got, want []string) {
	t.Helper()
	if len(want) == 0 {
		if len(got) != 0 {
			t.Errorf("got problems %q, want none", got)
		}
		return
	}
	joined := strings.Join(got, "\n")
	for _, w := range want {
		i := strings.Index(joined, w)
		if i < 0 {
			t.Errorf("problems %q lack %q", got, w)
			return
		}
		joined = joined[i+len(w):]
	}
}

// TestServerRefusesBadFlags: `runnel server` with a lease that cannot
// work and a malformed RUNNEL_* variable exits 2 naming both, before it
// creates anything.
func TestServerRefusesBadFlags(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"server", "--data", data, "--lease-timeout", "8s", "--nats-port", "-1"},
		[]string{"RUNNEL_AGENT_CAPACITY=two"}, &out, &errb)
	if code != exitUsage {
		t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitUsage, errb.String())
	}
	for _, want := range []string{`$RUNNEL_AGENT_CAPACITY="two": not an integer`, "--lease-timeout 8s", "use at least 15s"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("data directory: %v, want it not made", err)
	}
}

// TestAgentCapacityDefault: the built-in agent and a standalone agent
// both run one stage per CPU unless told otherwise.
func TestAgentCapacityDefault(t *testing.T) {
	for _, tc := range []struct{ cmd, flag string }{{"server", "--agent-capacity"}, {"agent", "--capacity"}} {
		t.Run(tc.cmd, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{tc.cmd, "--help"}, nil, &out, &errb); code != 0 {
				t.Fatalf("%s --help: exit %d\n%s", tc.cmd, code, errb.String())
			}
			help := out.String() + errb.String()
			line := ""
			for l := range strings.Lines(help) {
				if strings.Contains(l, tc.flag+" int") {
					line = l
				}
			}
			want := fmt.Sprintf("default: the number of CPUs ($RUNNEL_AGENT_CAPACITY) (default %d)", runtime.NumCPU())
			if !strings.Contains(line, want) {
				t.Errorf("%s --help: %s line %q, want it to end in %q", tc.cmd, tc.flag, line, want)
			}
		})
	}
}
