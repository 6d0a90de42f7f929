package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/transfer"
	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/artifact/fs"
	"github.com/runnel-ci/runnel/pipeline"
)

// localCacheAge is how long `runnel run` keeps a cache entry.
const localCacheAge = 30 * 24 * time.Hour

// maxFetch bounds one fetched file.
const maxFetch = 4 << 30

// userCacheDir is the default of `runnel run --cache-dir`:
// $XDG_CACHE_HOME/runnel, else ~/.cache/runnel.
func (a *app) userCacheDir() string {
	if d := a.env["XDG_CACHE_HOME"]; filepath.IsAbs(d) {
		return filepath.Join(d, "runnel")
	}
	if h := a.env["HOME"]; h != "" {
		return filepath.Join(h, ".cache", "runnel")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "runnel")
	}
	return filepath.Join(os.TempDir(), "runnel-cache")
}

// usesTransfers reports whether any stage of plan moves files around its
// steps.
func usesTransfers(plan *pipeline.Plan) bool {
	for _, st := range plan.Stages {
		if st.Artifacts != nil || len(st.Receive) > 0 || len(st.Fetch) > 0 || len(st.Cache) > 0 {
			return true
		}
	}
	return false
}

// localTransfer is the stage.Transfer of `runnel run`: a store, a fetch
// cache and temporary archives below dir, caches scoped to the working
// tree src. The returned func deletes the run's artifacts.
func localTransfer(ctx context.Context, dir, src, runID string, eng engine.Engine, log *slog.Logger) (*transfer.Transfer, func(), error) {
	files, ok := eng.(engine.Files)
	if !ok {
		return nil, nil, errors.New("this backend cannot move artifacts, fetches or caches")
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, nil, fmt.Errorf("cache directory: %w", err)
	}
	store, err := fs.New(filepath.Join(dir, "store"))
	if err != nil {
		return nil, nil, fmt.Errorf("cache directory: %w", err)
	}
	if err := transfer.PruneCaches(ctx, store, time.Now().Add(-localCacheAge)); err != nil {
		log.Warn("removing old caches", "err", err)
	}
	remote := &transfer.Local{Store: store, RunID: runID, Scope: transfer.LocalScope(src)}
	done := func() {
		if err := remote.DeleteRun(context.WithoutCancel(ctx)); err != nil {
			log.Warn("removing the run's artifacts", "err", err)
		}
	}
	return &transfer.Transfer{
		Files:   files,
		Remote:  remote,
		Fetcher: &artifact.Fetcher{Dir: filepath.Join(dir, "fetch"), Client: transfer.FetchClient(), MaxBytes: maxFetch, Logger: log},
		TempDir: tmp,
		Logger:  log,
	}, done, nil
}
