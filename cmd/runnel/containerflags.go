package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/runnel-ci/runnel/agents/engine/docker"
	"github.com/runnel-ci/runnel/pipeline"
)

// containerFlags are what an agent grants its step containers: the
// container permissions it allows (what a job asks beyond them is
// refused) and the limits every step and service container gets.
type containerFlags struct {
	allow  []string
	memory string
	cpus   float64
	pids   int64
}

// addContainerFlags adds the flags with prefix ("" for `runnel agent`,
// "agent-" for the server's built-in agent) and env variable prefix.
func (a *app) addContainerFlags(fl *pflag.FlagSet, f *containerFlags, prefix, env string) {
	d := docker.DefaultLimits
	var allow []string
	if v := a.envDefault(env+"ALLOW_CONTAINER", ""); v != "" {
		allow = strings.Split(v, ",")
	}
	fl.StringSliceVar(&f.allow, prefix+"allow-container", allow,
		"container permissions this agent grants to jobs that ask (default none): "+permissionNames()+" ($"+env+"ALLOW_CONTAINER)")
	fl.StringVar(&f.memory, prefix+"step-memory", a.envDefault(env+"STEP_MEMORY", fmt.Sprintf("%dm", d.Memory>>20)),
		"memory limit of every step and service container, e.g. 512m or 4g ($"+env+"STEP_MEMORY)")
	fl.Float64Var(&f.cpus, prefix+"step-cpus", d.CPUs, "CPU limit of every step and service container, in CPUs")
	fl.Int64Var(&f.pids, prefix+"step-pids", d.PIDs, "process limit of every step and service container")
}

// parse checks the flags; name is the flag prefix, for messages.
func (f containerFlags) parse(prefix string) ([]pipeline.Permission, docker.Limits, error) {
	allowed, err := pipeline.ParsePermissions(f.allow)
	if err != nil {
		return nil, docker.Limits{}, usageError(fmt.Errorf("--%sallow-container: %w", prefix, err))
	}
	mem, err := parseSize(f.memory)
	if err != nil || mem < 6<<20 {
		return nil, docker.Limits{}, usageError(fmt.Errorf("--%sstep-memory %q: want a size of at least 6m, like 512m or 4g", prefix, f.memory))
	}
	if f.cpus <= 0 {
		return nil, docker.Limits{}, usageError(fmt.Errorf("--%sstep-cpus %v: want more than 0", prefix, f.cpus))
	}
	if f.pids < 16 {
		return nil, docker.Limits{}, usageError(fmt.Errorf("--%sstep-pids %d: want at least 16", prefix, f.pids))
	}
	return allowed, docker.Limits{Memory: mem, CPUs: f.cpus, PIDs: f.pids}, nil
}

// parseSize reads a byte count with an optional k, m or g suffix (powers
// of 1024).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, strings.TrimSuffix(s, "g")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q", s)
	}
	return n * mult, nil
}
