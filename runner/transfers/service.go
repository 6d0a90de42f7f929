package transfers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/trust"
)

// Defaults of Config.
const (
	DefaultArtifactExpiry = 30 * 24 * time.Hour
	DefaultCacheExpiry    = 7 * 24 * time.Hour
	DefaultFetchExpiry    = 30 * 24 * time.Hour
	DefaultMaxObject      = 10 << 30
	// maxPresignedPut is the most one presigned S3 PUT takes.
	maxPresignedPut = 5 << 30
	// urlTTL is how long an object URL works.
	urlTTL = time.Hour
	// pendingTTL is how long a granted upload may take to be committed
	// before the sweeper removes it.
	pendingTTL = 24 * time.Hour
)

// Presigner is what an artifact.Store offers when it can hand out URLs
// itself (artifact/s3). Without it objects move through this server's
// blob API.
type Presigner interface {
	Presign(ctx context.Context, key string, ttl time.Duration) (string, error)
	PresignPut(ctx context.Context, key string, size int64, sum string, ttl time.Duration) (string, http.Header, error)
}

// Config configures New.
type Config struct {
	DB    *store.Store
	Store artifact.Store
	// BaseURL is this server's URL as agents reach it (no trailing /).
	BaseURL string
	// Key signs tokens and blob URLs: at least 32 random bytes, kept
	// secret, the same for every server of an install.
	Key []byte
	// Expiries: artifacts without expire_in; caches and fetched files
	// unused for this long. Zero means the default.
	ArtifactExpiry, CacheExpiry, FetchExpiry time.Duration
	// MaxObject bounds one upload (DefaultMaxObject; at most 5 GiB when
	// the store presigns).
	MaxObject int64
	// CacheWrite reports whether a run may write its repository's caches;
	// nil means CacheWritable.
	CacheWrite func(run *store.Run) bool
	// Registerer receives the metrics; nil means none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// CacheWritable reports whether run may write its repository's caches:
// every trusted run (runner/trust), so that a fork's pull request cannot
// poison the caches the default branch restores. Such a pull request
// reads them.
func CacheWritable(run *store.Run) bool {
	ok, _ := trust.Decide(trust.Of(run))
	return ok
}

// Service is the server side of transfers. Create it with New.
type Service struct {
	cfg     Config
	sign    signer
	presign Presigner // nil: blob URLs
	log     *slog.Logger
	mux     *http.ServeMux
	met     *metrics
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Store == nil {
		return nil, errors.New("transfers: DB and Store are required")
	}
	if len(cfg.Key) < 32 {
		return nil, errors.New("transfers: the signing key must have at least 32 bytes")
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil || cfg.BaseURL == "" {
		return nil, fmt.Errorf("transfers: base URL %q", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ArtifactExpiry, DefaultArtifactExpiry)
	def(&cfg.CacheExpiry, DefaultCacheExpiry)
	def(&cfg.FetchExpiry, DefaultFetchExpiry)
	if cfg.MaxObject <= 0 {
		cfg.MaxObject = DefaultMaxObject
	}
	if cfg.CacheWrite == nil {
		cfg.CacheWrite = CacheWritable
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, sign: signer{key: cfg.Key}, log: cfg.Logger, mux: http.NewServeMux()}
	if p, ok := cfg.Store.(Presigner); ok {
		s.presign = p
		s.cfg.MaxObject = min(s.cfg.MaxObject, maxPresignedPut)
	}
	met, err := newMetrics(cfg.Registerer, cfg.DB)
	if err != nil {
		return nil, err
	}
	s.met = met
	s.mux.HandleFunc("POST /api/v1/transfer/{token}/lookup", s.jobHandler(s.lookup))
	s.mux.HandleFunc("POST /api/v1/transfer/{token}/upload", s.jobHandler(s.upload))
	s.mux.HandleFunc("POST /api/v1/transfer/{token}/commit", s.jobHandler(s.commit))
	s.mux.HandleFunc("GET /api/v1/blobs/{key...}", s.getBlob)
	s.mux.HandleFunc("PUT /api/v1/blobs/{key...}", s.putBlob)
	return s, nil
}

// Handler serves the transfer API and the blob API (/api/v1/transfer/,
// /api/v1/blobs/). They authenticate by the signatures in their URLs.
func (s *Service) Handler() http.Handler { return s.mux }

// Grant returns the transfer grant of a job running st of run as attempt,
// or nil when the stage moves no files. It is the dispatch hook.
func (s *Service) Grant(run *store.Run, st *pipeline.Stage, attempt int) *wire.Transfer {
	if st.Artifacts == nil && len(st.Receive) == 0 && len(st.Fetch) == 0 && len(st.Cache) == 0 {
		return nil
	}
	exp := s.cfg.Now().Add(max(st.Timeout.D(), time.Hour) + 24*time.Hour).Truncate(time.Second)
	c := claims{Run: run.ID, Stage: st.ID, Attempt: attempt, CacheWrite: s.cfg.CacheWrite(run), Expires: exp.Unix()}
	return &wire.Transfer{URL: s.cfg.BaseURL + "/api/v1/transfer/" + s.sign.token(c), Expires: exp, CacheWrite: c.CacheWrite}
}

// Keys in the store.
func artifactKey(run int64, stageID string, attempt int) string {
	return "runs/" + strconv.FormatInt(run, 10) + "/" + url.PathEscape(stageID) + "/" + strconv.Itoa(attempt) + ".tar"
}

func cacheKey(repo int64, key, sum string) string {
	return "cache/" + strconv.FormatInt(repo, 10) + "/" + key + "/" + sum[:16] + ".tar"
}

func fetchKey(sum string) string { return "fetch/sha256/" + sum }

// readURL returns a short-lived URL that GETs the object at key.
func (s *Service) readURL(ctx context.Context, o *store.TransferObject) (string, error) {
	if s.presign != nil {
		return s.presign.Presign(ctx, o.Key, urlTTL)
	}
	return s.blobURL(blob{method: http.MethodGet, key: o.Key, size: o.Size, sha256: o.SHA256}), nil
}

// writeURL returns a short-lived URL and headers that PUT exactly size
// bytes with SHA-256 sum at key.
func (s *Service) writeURL(ctx context.Context, key string, size int64, sum string) (string, http.Header, error) {
	if s.presign != nil {
		return s.presign.PresignPut(ctx, key, size, sum, urlTTL)
	}
	return s.blobURL(blob{method: http.MethodPut, key: key, size: size, sha256: sum}), nil, nil
}

func (s *Service) blobURL(b blob) string {
	b.exp = s.cfg.Now().Add(urlTTL).Unix()
	u := url.URL{Path: "/api/v1/blobs/" + b.key}
	q := url.Values{"n": {strconv.FormatInt(b.size, 10)}, "h": {b.sha256}, "e": {strconv.FormatInt(b.exp, 10)}, "s": {s.sign.blobSig(b)}}
	return s.cfg.BaseURL + u.EscapedPath() + "?" + q.Encode()
}
