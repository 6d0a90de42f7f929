package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/artifact"
)

// caches looks every cache of the stage up and downloads the entries
// found into verified temporary files: a cache that is missing, corrupt
// or unreachable is a miss, never a failure of the stage.
func (t *Transfer) caches(ctx context.Context, s *engine.Spec, out io.Writer) ([]part, *restored) {
	st := s.Stage
	r := &restored{keys: make([]string, len(st.Cache)), exact: make([]bool, len(st.Cache))}
	var parts []part
	for i, c := range st.Cache {
		key, n, err := CacheKey(s.Source, c)
		if err != nil {
			logf(out, "cache %s: not restored: %v", c.Key, err)
			continue
		}
		r.keys[i] = key
		if len(c.Files) > 0 && n == 0 {
			logf(out, "cache %s: no file matches %v; the key hashes nothing", key, c.Files)
		}
		if t.Remote == nil {
			logf(out, "cache %s: not restored: no artifact store", key)
			continue
		}
		o, found, exact, err := t.Remote.Cache(ctx, key, c.Fallback)
		switch {
		case err != nil:
			logf(out, "cache %s: miss: lookup failed: %v", key, err)
			continue
		case !found:
			logf(out, "cache %s: miss; nothing to restore", key)
			continue
		}
		path, err := t.download(ctx, o)
		if err != nil {
			logf(out, "cache %s: miss: %s is unusable: %v", key, o.Name, err)
			continue
		}
		r.exact[i] = exact
		done := fmt.Sprintf("cache %s: hit; restored %s", key, size(o.Size))
		if !exact {
			done = fmt.Sprintf("cache %s: miss; fallback restored %s (%s)", key, o.Name, size(o.Size))
		}
		parts = append(parts, part{label: "cache " + key, tar: true, open: openFile(path), done: done, temp: path})
	}
	return parts, r
}

// download copies o into a temporary file, reading it to the end so
// that its checksum is verified before anything of it is used.
func (t *Transfer) download(ctx context.Context, o Object) (string, error) {
	rc, err := t.Remote.Open(ctx, o)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	f, err := os.CreateTemp(t.TempDir, "download-*.tar")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// fetches makes every fetch of the stage a verified file on this machine:
// cached here, else the store's copy, else downloaded (and then kept in
// the store for the next run on any agent).
func (t *Transfer) fetches(ctx context.Context, s *engine.Spec, out io.Writer) ([]part, error) {
	var parts []part
	for _, f := range s.Stage.Fetch {
		path, how, err := t.fetch(ctx, f.URL, f.SHA256, out)
		if err != nil {
			if errors.Is(err, artifact.ErrChecksum) {
				return nil, content(err)
			}
			return nil, err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", f.Dest, err)
		}
		parts = append(parts, part{label: "fetch " + f.Dest, open: openFile(path), dest: f.Dest, size: fi.Size(),
			done: fmt.Sprintf("fetch %s: %s, %s (sha256 %s)", f.Dest, how, size(fi.Size()), short(f.SHA256))})
	}
	return parts, nil
}

func (t *Transfer) fetch(ctx context.Context, url, sum string, out io.Writer) (string, string, error) {
	if t.Fetcher == nil {
		return "", "", errors.New("fetch: no fetch cache configured")
	}
	if t.Fetcher.Cached(sum) {
		return t.Fetcher.Path(sum), "cached on this agent", nil
	}
	if t.Remote != nil {
		o, found, err := t.Remote.Fetched(ctx, sum)
		if err == nil && found {
			if path, err := t.fromStore(ctx, o, sum); err == nil {
				return path, "from the store", nil
			} else {
				logf(out, "fetch %s: the store's copy is unusable (%v); downloading", url, err)
			}
		}
	}
	path, err := t.Fetcher.Fetch(ctx, url, sum)
	if err != nil {
		return "", "", err
	}
	if t.Remote != nil {
		if err := t.keepFetched(ctx, path, sum); err != nil {
			logf(out, "fetch %s: not kept in the store: %v", url, err)
		}
	}
	return path, "downloaded from " + url, nil
}

func (t *Transfer) fromStore(ctx context.Context, o Object, sum string) (string, error) {
	rc, err := t.Remote.Open(ctx, o)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return t.Fetcher.Add(ctx, sum, rc)
}

func (t *Transfer) keepFetched(ctx context.Context, path, sum string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return t.Remote.Put(ctx, KindFetch, sum, f, fi.Size(), sum)
}
