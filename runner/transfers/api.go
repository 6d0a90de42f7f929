package transfers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

// job is what a request of the transfer API acts for.
type job struct {
	claims
	run   *store.Run
	stage *store.Stage
	plan  *pipeline.Stage
}

// httpError is an answer other than 200.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// jobHandler authenticates a transfer API request by its token, decodes
// its body (at most 64 KiB of JSON) and writes fn's answer.
func (s *Service) jobHandler(fn func(ctx context.Context, j *job, body []byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The body is small and unauthenticated until the token checks
		// out: bound the time it may take.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // best effort
		j, err := s.job(r.Context(), r.PathValue("token"))
		var out any
		if err == nil {
			var body []byte
			body, err = readBody(w, r, 64<<10)
			if err == nil {
				out, err = fn(r.Context(), j, body)
			}
		}
		var he *httpError
		switch {
		case errors.As(err, &he):
			writeJSON(w, he.code, map[string]string{"error": he.msg})
		case err != nil:
			// The path holds the token: log the operation only.
			s.log.Error("transfer API", "op", path.Base(r.URL.Path), "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		case out == nil:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, http.StatusOK, out)
		}
	}
}

// job checks a token and that its stage is unfinished at its attempt or
// a later one.
func (s *Service) job(ctx context.Context, tok string) (*job, error) {
	c, err := s.sign.parse(tok, s.cfg.Now())
	if err != nil {
		return nil, fail(http.StatusUnauthorized, "%v", err)
	}
	run, err := s.cfg.DB.Run(ctx, c.Run)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail(http.StatusForbidden, "the run is gone")
	}
	if err != nil {
		return nil, err
	}
	j := &job{claims: c, run: run}
	for _, st := range run.Stages {
		if st.Key == c.Stage {
			j.stage = st
		}
	}
	if run.Plan != nil {
		for _, ps := range run.Plan.Stages {
			if ps.ID == c.Stage {
				j.plan = ps
			}
		}
	}
	switch {
	case j.stage == nil || j.plan == nil:
		return nil, fail(http.StatusForbidden, "the stage is gone")
	case j.stage.Status.Terminal() || j.stage.Attempt < c.Attempt:
		return nil, fail(http.StatusForbidden, "the stage attempt is over")
	}
	return j, nil
}

var cacheNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

func (s *Service) lookup(ctx context.Context, j *job, body []byte) (any, error) {
	var req wire.LookupRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fail(http.StatusBadRequest, "bad request: %v", err)
	}
	var o *store.TransferObject
	var err error
	switch req.Kind {
	case wire.ObjectArtifact:
		if !slices.Contains(j.plan.Receive, req.Name) {
			return nil, fail(http.StatusForbidden, "stage %s does not receive the artifacts of %q", j.Stage, req.Name)
		}
		o, err = s.cfg.DB.ReadyObject(ctx, wire.ObjectArtifact, runScope(j.Run), req.Name, false)
	case wire.ObjectCache:
		o, err = s.lookupCache(ctx, j, req)
	case wire.ObjectFetch:
		if !artifact.ValidSHA256(req.Name) {
			return nil, fail(http.StatusBadRequest, "a fetched file is named by its lowercase hex SHA-256")
		}
		if o, err = s.cfg.DB.ReadyObject(ctx, wire.ObjectFetch, "", req.Name, false); err == nil {
			err = s.cfg.DB.TouchObject(ctx, o.ID, s.cfg.Now().Add(s.cfg.FetchExpiry))
		}
	default:
		return nil, fail(http.StatusBadRequest, "unknown kind %q", req.Kind)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail(http.StatusNotFound, "no such %s", req.Kind)
	}
	if err != nil {
		return nil, err
	}
	u, err := s.readURL(ctx, o)
	if err != nil {
		return nil, err
	}
	return wire.Object{Kind: o.Kind, Name: o.Name, Key: o.Key, Size: o.Size, SHA256: o.SHA256, URL: u}, nil
}

// lookupCache finds a cache entry of the run's repository: the key, else
// the newest under the first fallback prefix that has one.
func (s *Service) lookupCache(ctx context.Context, j *job, req wire.LookupRequest) (*store.TransferObject, error) {
	if !cacheNameRE.MatchString(req.Name) || len(req.Fallback) > pipeline.MaxCacheFallback ||
		slices.ContainsFunc(req.Fallback, func(p string) bool { return !cacheNameRE.MatchString(p) }) {
		return nil, fail(http.StatusBadRequest, "cache keys and prefixes are 1 to 200 of [A-Za-z0-9._-]")
	}
	scope := repoScope(j.run.RepoID)
	result := "hit"
	o, err := s.cfg.DB.ReadyObject(ctx, wire.ObjectCache, scope, req.Name, false)
	for _, p := range req.Fallback {
		if !errors.Is(err, store.ErrNotFound) {
			break
		}
		result = "fallback"
		o, err = s.cfg.DB.ReadyObject(ctx, wire.ObjectCache, scope, p, true)
	}
	if errors.Is(err, store.ErrNotFound) {
		s.met.cacheLookups.WithLabelValues("miss").Inc()
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	s.met.cacheLookups.WithLabelValues(result).Inc()
	return o, s.cfg.DB.TouchObject(ctx, o.ID, s.cfg.Now().Add(s.cfg.CacheExpiry))
}

func runScope(run int64) string   { return "run:" + strconv.FormatInt(run, 10) }
func repoScope(repo int64) string { return "repo:" + strconv.FormatInt(repo, 10) }

// uploadTarget checks an upload or commit request and returns its key and
// scope.
func (s *Service) uploadTarget(ctx context.Context, j *job, req wire.UploadRequest) (*store.TransferObject, error) {
	if req.Size <= 0 || req.Size > s.cfg.MaxObject {
		return nil, fail(http.StatusBadRequest, "size %d is not between 1 and %d bytes", req.Size, s.cfg.MaxObject)
	}
	if !artifact.ValidSHA256(req.SHA256) {
		return nil, fail(http.StatusBadRequest, "sha256 is not lowercase hex")
	}
	o := &store.TransferObject{Kind: req.Kind, Name: req.Name, Size: req.Size, SHA256: req.SHA256}
	switch req.Kind {
	case wire.ObjectArtifact:
		if req.Name != j.Stage {
			return nil, fail(http.StatusForbidden, "stage %s uploads only its own artifacts", j.Stage)
		}
		o.Scope, o.RunID, o.Attempt = runScope(j.Run), j.Run, j.stage.Attempt
		o.Key = artifactKey(j.Run, j.Stage, j.stage.Attempt)
	case wire.ObjectCache:
		if !j.CacheWrite {
			return nil, fail(http.StatusForbidden, "this run may not write caches")
		}
		if !cacheNameRE.MatchString(req.Name) {
			return nil, fail(http.StatusBadRequest, "cache keys are 1 to 200 of [A-Za-z0-9._-]")
		}
		o.Scope, o.Key = repoScope(j.run.RepoID), cacheKey(j.run.RepoID, req.Name, req.SHA256)
	case wire.ObjectFetch:
		if req.Name != req.SHA256 {
			return nil, fail(http.StatusBadRequest, "a fetched file is named by its SHA-256")
		}
		o.Key = fetchKey(req.SHA256)
	default:
		return nil, fail(http.StatusBadRequest, "unknown kind %q", req.Kind)
	}
	return o, nil
}

func (s *Service) upload(ctx context.Context, j *job, body []byte) (any, error) {
	var req wire.UploadRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fail(http.StatusBadRequest, "bad request: %v", err)
	}
	o, err := s.uploadTarget(ctx, j, req)
	if err != nil {
		return nil, err
	}
	if o.Kind != wire.ObjectArtifact {
		// Caches and fetched files are written once: an entry saved by
		// another stage meanwhile wins.
		if _, err := s.cfg.DB.ReadyObject(ctx, o.Kind, o.Scope, o.Name, false); err == nil {
			return nil, fail(http.StatusConflict, "%s %s exists", o.Kind, o.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	o.ExpiresAt = s.cfg.Now().Add(pendingTTL)
	if err := s.cfg.DB.ReserveObject(ctx, *o); errors.Is(err, store.ErrDuplicate) {
		return nil, fail(http.StatusConflict, "%s %s exists", o.Kind, o.Name)
	} else if err != nil {
		return nil, err
	}
	u, h, err := s.writeURL(ctx, o.Key, o.Size, o.SHA256)
	if err != nil {
		return nil, err
	}
	return wire.Upload{URL: u, Headers: h}, nil
}

// commit records an upload once the store holds exactly what was
// declared.
func (s *Service) commit(ctx context.Context, j *job, body []byte) (any, error) {
	var req wire.UploadRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fail(http.StatusBadRequest, "bad request: %v", err)
	}
	o, err := s.uploadTarget(ctx, j, req)
	if err != nil {
		return nil, err
	}
	info, err := s.cfg.Store.Stat(ctx, o.Key)
	if errors.Is(err, artifact.ErrNotFound) {
		return nil, fail(http.StatusConflict, "nothing was uploaded to %s", o.Key)
	}
	if err != nil {
		return nil, err
	}
	if info.Size != o.Size || info.SHA256 != o.SHA256 {
		return nil, fail(http.StatusConflict, "%s holds %d bytes with sha256 %s, not the declared %d bytes with %s",
			o.Key, info.Size, info.SHA256, o.Size, o.SHA256)
	}
	if _, err := s.cfg.DB.CommitObject(ctx, o.Key, s.cfg.Now().Add(s.expiry(j, o.Kind))); errors.Is(err, store.ErrNotFound) {
		return nil, fail(http.StatusConflict, "no upload of %s is pending", o.Key)
	} else if err != nil {
		return nil, err
	}
	return nil, nil
}

// expiry is how long a committed object of kind lives (unused, for caches
// and fetched files).
func (s *Service) expiry(j *job, kind string) time.Duration {
	switch kind {
	case wire.ObjectArtifact:
		if a := j.plan.Artifacts; a != nil && a.ExpireIn > 0 {
			return a.ExpireIn.D()
		}
		return s.cfg.ArtifactExpiry
	case wire.ObjectCache:
		return s.cfg.CacheExpiry
	}
	return s.cfg.FetchExpiry
}
