package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/runnel-ci/runnel/agents/engine"
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

func newDockerEngine(ctx context.Context, pull engine.PullPolicy, log *slog.Logger) (engine.Engine, func(), error) {
	return nil, nil, fmt.Errorf("docker backend: not available in this build")
}
