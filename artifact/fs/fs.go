package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/runnel-ci/runnel/artifact"
)

const (
	dirSuffix  = ".d"
	objSuffix  = ".obj"
	metaSuffix = ".json"
)

// Store is an artifact.Store on local disk.
type Store struct {
	root string
}

var _ artifact.Store = (*Store)(nil)

// New returns a store under dir, creating the directory if needed.
func New(dir string) (*Store, error) {
	for _, d := range []string{filepath.Join(dir, "objects"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("artifact store in %s: %w", dir, err)
		}
	}
	return &Store{root: dir}, nil
}

type meta struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ObjectPath returns the file holding key's content (for tests and tools
// that need to reach behind the store).
func (s *Store) ObjectPath(key string) (string, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return "", err
	}
	return s.base(key) + objSuffix, nil
}

// base maps a valid key to its path without suffix.
func (s *Store) base(key string) string {
	segs := strings.Split(key, "/")
	for i := range segs[:len(segs)-1] {
		segs[i] += dirSuffix
	}
	return filepath.Join(s.root, "objects", filepath.Join(segs...))
}

// Put implements artifact.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (artifact.Info, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return artifact.Info{}, fmt.Errorf("put: %w", err)
	}
	base := s.base(key)
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "put-*")
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // fails harmlessly once renamed
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: write: %w", key, err)
	}
	if size >= 0 && n != size {
		return artifact.Info{}, fmt.Errorf("put %s: read %d bytes, size says %d", key, n, size)
	}
	if err := tmp.Sync(); err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: sync: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	m := meta{Key: key, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	mb, err := json.Marshal(m)
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	// Content first, metadata second: a crash in between leaves the old
	// metadata with new content, which Get reports as ErrChecksum rather
	// than serving unverified bytes. A concurrent Delete may prune the
	// parent directory between MkdirAll and Rename, hence one retry.
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(filepath.Dir(base), 0o700); err != nil {
			return artifact.Info{}, fmt.Errorf("put %s: %w", key, err)
		}
		err := os.Rename(tmp.Name(), base+objSuffix)
		if err == nil {
			break
		}
		if attempt > 0 || !errors.Is(err, iofs.ErrNotExist) {
			return artifact.Info{}, fmt.Errorf("put %s: %w", key, err)
		}
	}
	if err := writeFileAtomic(filepath.Join(s.root, "tmp"), base+metaSuffix, mb); err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: metadata: %w", key, err)
	}
	fi, err := os.Stat(base + objSuffix)
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	return artifact.Info{Key: key, Size: n, SHA256: m.SHA256, ModTime: fi.ModTime()}, nil
}

func writeFileAtomic(tmpDir, name string, b []byte) error {
	f, err := os.CreateTemp(tmpDir, "meta-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// Stat implements artifact.Store.
func (s *Store) Stat(ctx context.Context, key string) (artifact.Info, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return artifact.Info{}, fmt.Errorf("stat: %w", err)
	}
	info, err := s.stat(s.base(key))
	if err != nil {
		return artifact.Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return info, nil
}

func (s *Store) stat(base string) (artifact.Info, error) {
	b, err := os.ReadFile(base + metaSuffix)
	if errors.Is(err, iofs.ErrNotExist) {
		return artifact.Info{}, artifact.ErrNotFound
	}
	if err != nil {
		return artifact.Info{}, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil || !artifact.ValidSHA256(m.SHA256) {
		return artifact.Info{}, fmt.Errorf("%w: unreadable metadata %s", artifact.ErrChecksum, base+metaSuffix)
	}
	fi, err := os.Stat(base + objSuffix)
	if errors.Is(err, iofs.ErrNotExist) {
		return artifact.Info{}, artifact.ErrNotFound
	}
	if err != nil {
		return artifact.Info{}, err
	}
	return artifact.Info{Key: m.Key, Size: m.Size, SHA256: m.SHA256, ModTime: fi.ModTime()}, nil
}

// Get implements artifact.Store.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, artifact.Info, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return nil, artifact.Info{}, fmt.Errorf("get: %w", err)
	}
	base := s.base(key)
	info, err := s.stat(base)
	if err != nil {
		return nil, artifact.Info{}, fmt.Errorf("get %s: %w", key, err)
	}
	f, err := os.Open(base + objSuffix)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, artifact.Info{}, fmt.Errorf("get %s: %w", key, artifact.ErrNotFound)
	}
	if err != nil {
		return nil, artifact.Info{}, fmt.Errorf("get %s: %w", key, err)
	}
	return artifact.VerifyReader(f, key, info.SHA256, info.Size), info, nil
}

// Delete implements artifact.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := artifact.CleanKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	base := s.base(key)
	// Metadata first: without it the object is gone for readers.
	err := os.Remove(base + metaSuffix)
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, artifact.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := os.Remove(base + objSuffix); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	// Prune now-empty directories up to objects/; failures (not empty,
	// a concurrent Put) are expected and harmless.
	objects := filepath.Join(s.root, "objects")
	for d := filepath.Dir(base); d != objects && strings.HasPrefix(d, objects); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// List implements artifact.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]artifact.Info, error) {
	if _, err := artifact.CleanPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	// Walk only below the directory named by the prefix's complete segments.
	start := filepath.Join(s.root, "objects")
	rel := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		rel = prefix[:i]
		start = s.base(rel + "/x")
		start = filepath.Dir(start)
	}
	var out []artifact.Info
	err := filepath.WalkDir(start, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, iofs.ErrNotExist) {
				return iofs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, metaSuffix) {
			return nil
		}
		key := s.keyOf(strings.TrimSuffix(p, metaSuffix))
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := s.stat(strings.TrimSuffix(p, metaSuffix))
		if errors.Is(err, artifact.ErrNotFound) {
			return nil // deleted while we walked
		}
		if err != nil {
			return err
		}
		info.Key = key
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// keyOf maps a path without suffix back to its key.
func (s *Store) keyOf(base string) string {
	rel, _ := filepath.Rel(filepath.Join(s.root, "objects"), base)
	segs := strings.Split(filepath.ToSlash(rel), "/")
	for i := range segs[:len(segs)-1] {
		segs[i] = strings.TrimSuffix(segs[i], dirSuffix)
	}
	return path.Join(segs...)
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
