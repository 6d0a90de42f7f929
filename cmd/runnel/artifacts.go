package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/artifact/fs"
	"github.com/runnel-ci/runnel/artifact/s3"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/transfers"
)

// artifactFlags configure the server's artifact store.
type artifactFlags struct {
	store          string // a directory, or s3://bucket/prefix
	s3Endpoint     string
	s3Region       string
	s3PathStyle    bool
	artifactExpiry time.Duration
	cacheExpiry    time.Duration
	fetchExpiry    time.Duration
	sweepInterval  time.Duration
}

func (a *app) addArtifactFlags(fl *pflag.FlagSet, f *artifactFlags) {
	fl.StringVar(&f.store, "artifact-store", a.envDefault("RUNNEL_ARTIFACT_STORE", ""), "where artifacts, caches and fetched files are kept: a directory (default DATA/artifacts) or s3://BUCKET/PREFIX ($RUNNEL_ARTIFACT_STORE)")
	fl.StringVar(&f.s3Endpoint, "s3-endpoint", a.envDefault("RUNNEL_S3_ENDPOINT", ""), "S3 endpoint URL for an S3-compatible server (default: AWS) ($RUNNEL_S3_ENDPOINT)")
	fl.StringVar(&f.s3Region, "s3-region", a.envDefault("RUNNEL_S3_REGION", ""), "S3 region (default: AWS_REGION, else us-east-1) ($RUNNEL_S3_REGION)")
	fl.BoolVar(&f.s3PathStyle, "s3-path-style", a.envDefault("RUNNEL_S3_PATH_STYLE", "") == "true", "S3 path-style addressing, which S3-compatible servers usually need ($RUNNEL_S3_PATH_STYLE)")
	fl.DurationVar(&f.artifactExpiry, "artifact-expiry", a.envDuration("RUNNEL_ARTIFACT_EXPIRY", transfers.DefaultArtifactExpiry), "how long artifacts without expire_in are kept ($RUNNEL_ARTIFACT_EXPIRY)")
	fl.DurationVar(&f.cacheExpiry, "cache-expiry", a.envDuration("RUNNEL_CACHE_EXPIRY", transfers.DefaultCacheExpiry), "how long an unused cache entry is kept ($RUNNEL_CACHE_EXPIRY)")
	fl.DurationVar(&f.fetchExpiry, "fetch-expiry", a.envDuration("RUNNEL_FETCH_EXPIRY", transfers.DefaultFetchExpiry), "how long an unused fetched file is kept ($RUNNEL_FETCH_EXPIRY)")
	fl.DurationVar(&f.sweepInterval, "artifact-sweep", a.envDuration("RUNNEL_ARTIFACT_SWEEP", 10*time.Minute), "how often expired artifacts, caches and fetched files are deleted ($RUNNEL_ARTIFACT_SWEEP)")
}

// openArtifactStore opens the store the flags name: a directory (relative
// to data when not absolute) or an S3 bucket with the standard AWS
// credentials (environment, shared files, instance roles).
func openArtifactStore(ctx context.Context, f artifactFlags, data string) (artifact.Store, error) {
	if !strings.HasPrefix(f.store, "s3://") {
		dir := f.store
		if dir == "" {
			dir = "artifacts"
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(data, dir)
		}
		st, err := fs.New(dir)
		if err != nil {
			return nil, fmt.Errorf("artifact store: %w", err)
		}
		return st, nil
	}
	u, err := url.Parse(f.store)
	if err != nil || u.Host == "" {
		return nil, usageError(fmt.Errorf("--artifact-store %q: want s3://BUCKET/PREFIX", f.store))
	}
	prefix := strings.TrimPrefix(u.Path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	st, err := s3.New(ctx, s3.Config{Bucket: u.Host, Prefix: prefix, Endpoint: f.s3Endpoint, PathStyle: f.s3PathStyle, Region: f.s3Region})
	if err != nil {
		return nil, fmt.Errorf("artifact store %s: %w", f.store, err)
	}
	return st, nil
}

// transferKey returns the key that signs transfer tokens and blob URLs:
// DATA/transfer.key, made (private) at first start. Servers sharing a
// database must share it.
func transferKey(data string) ([]byte, error) {
	path := filepath.Join(data, "transfer.key")
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return transferKey(data) // another process made it first
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}

// newTransfers builds the transfer service and starts its sweeper; stop
// ends the sweeper and waits for it.
func newTransfers(ctx context.Context, f artifactFlags, data string, db *store.Store, baseURL string, reg prometheus.Registerer, log *slog.Logger) (*transfers.Service, func(), error) {
	as, err := openArtifactStore(ctx, f, data)
	if err != nil {
		return nil, nil, err
	}
	key, err := transferKey(data)
	if err != nil {
		return nil, nil, err
	}
	svc, err := transfers.New(transfers.Config{DB: db, Store: as, BaseURL: baseURL, Key: key,
		ArtifactExpiry: f.artifactExpiry, CacheExpiry: f.cacheExpiry, FetchExpiry: f.fetchExpiry,
		Registerer: reg, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		svc.Run(sctx, f.sweepInterval)
	}()
	return svc, func() { cancel(); wg.Wait() }, nil
}
