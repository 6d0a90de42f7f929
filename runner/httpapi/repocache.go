package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
)

// repoCache keeps repo lookups of webhooks for a short time. Updates
// through the API invalidate it (invalidate bumps gen, and a lookup that
// started before an invalidation is not cached), so a changed webhook
// secret applies at once; changes made elsewhere (another process, the
// UI) apply within the TTL.
type repoCache struct {
	ttl time.Duration
	mu  sync.Mutex
	gen uint64
	m   map[string]repoEntry
}

type repoEntry struct {
	repo    *store.Repo
	expires time.Time
}

const repoCacheMax = 4096

// repo returns the repo named name, from the cache when fresh. The
// result is shared: callers must not modify it.
func (s *Server) repo(ctx context.Context, name string) (*store.Repo, error) {
	c := &s.repos
	if c.ttl <= 0 {
		return s.cfg.Store.Repo(ctx, name)
	}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[name]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.repo, nil
	}
	r, err := s.cfg.Store.Repo(ctx, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= repoCacheMax {
			clear(c.m)
		}
		c.m[name] = repoEntry{repo: r, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return r, nil
}

// InvalidateRepos drops cached repo lookups. The API's repo changes call
// it; call it after changing a repo through the store directly in the
// same process (otherwise the change applies within RepoCacheTTL).
func (s *Server) InvalidateRepos() {
	c := &s.repos
	c.mu.Lock()
	c.gen++
	clear(c.m)
	c.mu.Unlock()
}
