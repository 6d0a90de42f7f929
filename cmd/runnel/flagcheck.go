package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/agents/agent"
)

// minLeaseTimeout is the shortest --lease-timeout: the silence after
// which the server gives a stage to a new attempt. Agents send a
// heartbeat every agent.DefaultProgress and stop a stage they could not
// report for the lease minus a third of it, so three intervals leave a
// live agent two heartbeats before it would stop.
const minLeaseTimeout = 3 * agent.DefaultProgress

// serverFlagProblems says what is wrong with the flags of `runnel server`,
// each problem with what to change; nil when they can work together.
func serverFlagProblems(f serverFlags) []string {
	var p []string
	if f.leaseTimeout < minLeaseTimeout {
		p = append(p, fmt.Sprintf("--lease-timeout %v is shorter than three agent heartbeats (%v each): "+
			"live agents would stop their stages and the server would run them again; use at least %v (the default is 45s)",
			f.leaseTimeout, agent.DefaultProgress, minLeaseTimeout))
	}
	if !f.noAgent && f.agentCapacity < 1 {
		p = append(p, fmt.Sprintf("--agent-capacity %d: the built-in agent runs at least 1 stage at once; use 1 or more, or --no-agent for no built-in agent", f.agentCapacity))
	}
	if f.natsPort < -1 || f.natsPort > 65535 {
		p = append(p, fmt.Sprintf("--nats-port %d: want a port from 1 to 65535, or -1 for a free one", f.natsPort))
	}
	p = append(p, backendProblem(f.backend)...)
	p = append(p, drainProblem(f.drainTimeout)...)
	p = append(p, artifactProblems(f.artifacts)...)
	p = append(p, stepLogMaxProblem(f.stepLogMax)...)
	return p
}

// artifactProblems checks the artifact store's durations and S3 options.
func artifactProblems(f artifactFlags) []string {
	var p []string
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--artifact-expiry", f.artifactExpiry}, {"--cache-expiry", f.cacheExpiry}, {"--fetch-expiry", f.fetchExpiry}, {"--artifact-sweep", f.sweepInterval}} {
		if d.v <= 0 {
			p = append(p, fmt.Sprintf("%s %v: want a positive duration such as 168h", d.flag, d.v))
		}
	}
	if !strings.HasPrefix(f.store, "s3://") && (f.s3Endpoint != "" || f.s3PathStyle || f.s3Region != "") {
		p = append(p, "--s3-endpoint, --s3-region and --s3-path-style need --artifact-store s3://BUCKET/PREFIX")
	}
	return p
}

// agentFlagProblems is serverFlagProblems for `runnel agent`.
func agentFlagProblems(f agentFlags) []string {
	var p []string
	if f.capacity < 1 {
		p = append(p, fmt.Sprintf("--capacity %d: an agent runs at least 1 stage at once; use 1 or more", f.capacity))
	}
	if f.workDir == "" {
		p = append(p, "--work-dir is empty: name a directory for the git cache, workspaces and the agent's install id")
	}
	p = append(p, backendProblem(f.backend)...)
	p = append(p, drainProblem(f.drainTimeout)...)
	p = append(p, stepLogMaxProblem(f.stepLogMax)...)
	return p
}

func backendProblem(b string) []string {
	if b == "docker" || b == "local" {
		return nil
	}
	return []string{fmt.Sprintf("--backend %q: want docker or local", b)}
}

func drainProblem(d time.Duration) []string {
	if d >= 0 {
		return nil
	}
	return []string{fmt.Sprintf("--drain-timeout %v is negative: use 0 to stop running stages at once, or a duration such as 2m", d)}
}

// refuseFlags turns problems (of flags and of RUNNEL_* variables) into a
// usage error listing them all, or nil.
func refuseFlags(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return usageError(errors.New("refusing to start:\n  - " + strings.Join(problems, "\n  - ")))
}

// envProblems lists the RUNNEL_* variables whose values could not be read
// (they would otherwise silently mean the default).
func (a *app) envProblems() []string {
	var p []string
	for name, v := range a.badEnv {
		p = append(p, fmt.Sprintf("$%s=%q: %s", name, a.env[name], v))
	}
	sort.Strings(p)
	return p
}
