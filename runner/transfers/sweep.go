package transfers

import (
	"context"
	"errors"
	"time"

	"github.com/runnel-ci/runnel/artifact"
)

// sweepBatch is how many expired objects one pass looks at.
const sweepBatch = 500

// Sweep deletes expired objects (superseded artifacts, unused caches and
// fetched files, uploads never committed): the database row first, then
// the object, so that no row ever names a deleted object. It returns how
// many it deleted.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	n := 0
	for {
		exp, err := s.cfg.DB.ExpiredObjects(ctx, sweepBatch)
		if err != nil || len(exp) == 0 {
			return n, err
		}
		for _, o := range exp {
			ok, err := s.cfg.DB.DeleteExpiredObject(ctx, o.ID)
			if err != nil {
				return n, err
			}
			if !ok {
				continue // used again since it was listed
			}
			if err := s.cfg.Store.Delete(ctx, o.Key); err != nil && !errors.Is(err, artifact.ErrNotFound) {
				s.log.Warn("delete expired object", "key", o.Key, "err", err)
			}
			s.met.deleted.WithLabelValues(o.Kind).Inc()
			n++
		}
		if len(exp) < sweepBatch {
			return n, nil
		}
	}
}

// Run sweeps every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sweep artifact store", "err", err)
		} else if n > 0 {
			s.log.Info("swept artifact store", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
