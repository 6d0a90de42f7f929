package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/docker"
	"github.com/runnel-ci/runnel/agents/engine/local"
)

// newEngine builds the executor backend of `runnel run`. The returned
// close function releases the engine's client; call it when the run is
// over.
func newEngine(ctx context.Context, backend string, pull engine.PullPolicy, log *slog.Logger) (engine.Engine, func(), error) {
	switch backend {
	case "local":
		return local.New(local.Options{Logger: log}), func() {}, nil
	case "docker":
		return newDockerEngine(ctx, pull, log)
	}
	return nil, nil, usageError(fmt.Errorf("--backend %q: want docker or local", backend))
}

// runOwner is the owner of every `runnel run` process's Docker resources.
// Each process is an install of its own (a new random id: its names and
// cleanup never meet another's), and they share this owner so that the
// next `runnel run` on the host removes what a killed one left.
const runOwner = "runnel-run"

// newDockerEngine connects to the Docker engine the environment points at
// and removes what earlier `runnel run` processes on this host left behind
// when they crashed (their PID is gone), so nothing accumulates.
func newDockerEngine(ctx context.Context, pull engine.PullPolicy, log *slog.Logger) (engine.Engine, func(), error) {
	cli, err := docker.NewClient()
	if err != nil {
		return nil, nil, err
	}
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, nil, fmt.Errorf("docker backend: no Docker engine answers (use --backend local to run without Docker): %w", err)
	}
	eng, err := docker.New(cli, docker.Options{Owner: runOwner, PullPolicy: pull, Logger: log})
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	if err := eng.PruneDead(ctx); err != nil {
		log.Warn("removing leftovers of earlier runs failed", "err", err)
	}
	return eng, func() { cli.Close() }, nil
}
