package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/artifact"
)

// Local is a Remote on a local artifact.Store, for `runnel run`: one
// run's artifacts under runs/<run>/ and caches under cache/<scope>/.
// Fetched files stay in the Transfer's Fetcher, which is on the same
// machine: Local keeps no second copy. Every run may write caches.
type Local struct {
	Store artifact.Store
	RunID string
	Scope string // the cache namespace, e.g. LocalScope of the working tree
}

var _ Remote = (*Local)(nil)

// LocalScope names the cache namespace of the working tree at dir: its
// base name and a hash of its absolute path.
func LocalScope(dir string) string {
	h := sha256.Sum256([]byte(dir))
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, filepath.Base(dir))
	if len(base) > 40 {
		base = base[:40]
	}
	return strings.TrimLeft(base, ".") + "-" + hex.EncodeToString(h[:6])
}

// ArtifactKey is the store key of the artifacts of a run's stage.
func ArtifactKey(runID, stageID string) string {
	return "runs/" + url.PathEscape(runID) + "/" + url.PathEscape(stageID) + ".tar"
}

func (l *Local) cacheKey(key string) string { return "cache/" + l.Scope + "/" + key }

func (l *Local) stat(ctx context.Context, kind Kind, name, key string) (Object, bool, error) {
	info, err := l.Store.Stat(ctx, key)
	if errors.Is(err, artifact.ErrNotFound) {
		return Object{}, false, nil
	}
	if err != nil {
		return Object{}, false, err
	}
	return Object{Kind: kind, Name: name, Key: key, Size: info.Size, SHA256: info.SHA256}, true, nil
}

// Artifact implements Remote.
func (l *Local) Artifact(ctx context.Context, stageID string) (Object, bool, error) {
	return l.stat(ctx, KindArtifact, stageID, ArtifactKey(l.RunID, stageID))
}

// Cache implements Remote.
func (l *Local) Cache(ctx context.Context, key string, fallback []string) (Object, bool, bool, error) {
	o, found, err := l.stat(ctx, KindCache, key, l.cacheKey(key))
	if err != nil || found {
		return o, found, found, err
	}
	for _, prefix := range fallback {
		infos, err := l.Store.List(ctx, l.cacheKey(prefix))
		if err != nil {
			return Object{}, false, false, err
		}
		var newest *artifact.Info
		for i := range infos {
			if newest == nil || infos[i].ModTime.After(newest.ModTime) {
				newest = &infos[i]
			}
		}
		if newest != nil {
			name := strings.TrimPrefix(newest.Key, l.cacheKey(""))
			return Object{Kind: KindCache, Name: name, Key: newest.Key, Size: newest.Size, SHA256: newest.SHA256}, true, false, nil
		}
	}
	return Object{}, false, false, nil
}

// Fetched implements Remote: Local keeps no fetched files.
func (l *Local) Fetched(ctx context.Context, sum string) (Object, bool, error) {
	return Object{}, false, nil
}

// Open implements Remote: the store verifies what it recorded, and that
// must be what o says.
func (l *Local) Open(ctx context.Context, o Object) (io.ReadCloser, error) {
	rc, info, err := l.Store.Get(ctx, o.Key)
	if err != nil {
		return nil, err
	}
	if info.SHA256 != o.SHA256 || info.Size != o.Size {
		rc.Close()
		return nil, fmt.Errorf("read %s: %w: it changed since it was found", o.Key, artifact.ErrChecksum)
	}
	return rc, nil
}

// Put implements Remote.
func (l *Local) Put(ctx context.Context, kind Kind, name string, f *os.File, size int64, sum string) error {
	var key string
	switch kind {
	case KindArtifact:
		key = ArtifactKey(l.RunID, name)
	case KindCache:
		key = l.cacheKey(name)
	case KindFetch:
		return nil // the Fetcher on this machine has it
	default:
		return fmt.Errorf("put: unknown kind %q", kind)
	}
	info, err := l.Store.Put(ctx, key, f, size)
	if err != nil {
		return err
	}
	if info.SHA256 != sum {
		return fmt.Errorf("put %s: %w: stored sha256 %s, expected %s", key, artifact.ErrChecksum, info.SHA256, sum)
	}
	return nil
}

// CacheWritable implements Remote.
func (l *Local) CacheWritable() bool { return true }

// DeleteRun removes this run's artifacts.
func (l *Local) DeleteRun(ctx context.Context) error {
	return deleteAll(ctx, l.Store, "runs/"+url.PathEscape(l.RunID)+"/", time.Time{})
}

// PruneCaches removes the cache entries (of every scope) written before
// cutoff.
func PruneCaches(ctx context.Context, st artifact.Store, cutoff time.Time) error {
	return deleteAll(ctx, st, "cache/", cutoff)
}

// deleteAll deletes the objects under prefix written before cutoff (all
// of them for the zero time).
func deleteAll(ctx context.Context, st artifact.Store, prefix string, cutoff time.Time) error {
	infos, err := st.List(ctx, prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, info := range infos {
		if !cutoff.IsZero() && !info.ModTime.Before(cutoff) {
			continue
		}
		if err := st.Delete(ctx, info.Key); err != nil && !errors.Is(err, artifact.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
