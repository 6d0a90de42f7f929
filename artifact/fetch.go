package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"sync"
)

// Fetcher downloads files by URL and expected SHA-256 into a local cache
// keyed by the checksum, so a file is downloaded once however many pipelines
// or URLs name it. The zero value is not usable; set Dir.
//
// Cache layout: Dir/sha256/<hex> holds verified files; Dir/tmp holds
// downloads in progress. A file enters the cache only by rename after its
// checksum matched, so anything under Dir/sha256 was verified once; the
// cache trusts it afterwards and does not re-hash on hits.
type Fetcher struct {
	Dir      string       // cache directory, created on demand
	Client   *http.Client // nil means http.DefaultClient
	MaxBytes int64        // largest download accepted; 0 means no limit
	Logger   *slog.Logger // nil means slog.Default()

	mu     sync.Mutex
	flight map[string]*fetchCall
}

type fetchCall struct {
	done chan struct{}
	path string
	err  error
}

// Fetch returns the path of a cached file whose content has the SHA-256
// sum (lowercase hex), downloading it from url with GET when it is not
// cached yet. A download whose content differs fails with an error wrapping
// ErrChecksum and leaves nothing in the cache. Concurrent Fetch calls for
// the same checksum share one download, which runs under the context of
// the call that started it; the others stop waiting when their own context
// ends. The returned file must be treated as read-only.
func (f *Fetcher) Fetch(ctx context.Context, url, sum string) (string, error) {
	path, err := f.fetch(ctx, url, sum)
	if err != nil {
		// Errors name the URL without its query: presigned URLs carry
		// credentials there.
		return "", fmt.Errorf("fetch %s: %w", redact(url), err)
	}
	return path, nil
}

func redact(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.Redacted()
}

// redactErr removes the query from the URL net/http's *url.Error repeats.
func redactErr(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		ue.URL = redact(ue.URL)
	}
	return err
}

func (f *Fetcher) fetch(ctx context.Context, url, sum string) (string, error) {
	if !ValidSHA256(sum) {
		return "", fmt.Errorf("%w: %q is not a lowercase hex sha256", ErrChecksum, truncate(sum))
	}
	final := f.Path(sum)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}

	f.mu.Lock()
	if c, ok := f.flight[sum]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.path, c.err
		case <-ctx.Done():
			return "", fmt.Errorf("wait for download in progress: %w", ctx.Err())
		}
	}
	if f.flight == nil {
		f.flight = map[string]*fetchCall{}
	}
	c := &fetchCall{done: make(chan struct{})}
	f.flight[sum] = c
	f.mu.Unlock()

	c.path, c.err = f.download(ctx, url, sum, final)

	f.mu.Lock()
	delete(f.flight, sum)
	f.mu.Unlock()
	close(c.done)
	return c.path, c.err
}

func (f *Fetcher) download(ctx context.Context, url, sum, final string) (string, error) {
	// Another process (or a call that just finished) may have filled it.
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	log := f.Logger
	if log == nil {
		log = slog.Default()
	}
	tmpDir, err := f.dirs()
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("build request: %w", redactErr(err))
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET: %w", redactErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP status %s", resp.Status)
	}
	var body io.Reader = resp.Body
	if f.MaxBytes > 0 {
		body = io.LimitReader(resp.Body, f.MaxBytes+1)
	}
	n, err := f.save(tmpDir, sum, final, body)
	if err != nil {
		return "", err
	}
	log.Debug("artifact fetched", "url", redact(url), "sha256", sum, "bytes", n)
	return final, nil
}

// Cached reports whether a file with the SHA-256 sum is in the cache.
func (f *Fetcher) Cached(sum string) bool {
	if !ValidSHA256(sum) {
		return false
	}
	_, err := os.Stat(filepath.Join(f.Dir, "sha256", sum))
	return !errors.Is(err, fs.ErrNotExist) && err == nil
}

func (f *Fetcher) dirs() (string, error) {
	tmpDir := filepath.Join(f.Dir, "tmp")
	for _, d := range []string{tmpDir, filepath.Join(f.Dir, "sha256")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("create cache dir: %w", err)
		}
	}
	return tmpDir, nil
}

// save writes body to a temporary file, hashing it, and renames it to
// final only when its SHA-256 is sum. It returns the size.
func (f *Fetcher) save(tmpDir, sum, final string, body io.Reader) (int64, error) {
	tmp, err := os.CreateTemp(tmpDir, sum+"-*")
	if err != nil {
		return 0, fmt.Errorf("create temp file: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if err != nil {
		return n, fmt.Errorf("download: %w", err)
	}
	if f.MaxBytes > 0 && n > f.MaxBytes {
		return n, fmt.Errorf("larger than %d bytes", f.MaxBytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return n, fmt.Errorf("%w: got %d bytes with sha256 %s, expected %s", ErrChecksum, n, got, sum)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return n, fmt.Errorf("make read-only: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("close: %w", err)
	}
	committed = true
	if err := os.Rename(tmp.Name(), final); err != nil {
		os.Remove(tmp.Name())
		return n, fmt.Errorf("move into cache: %w", err)
	}
	return n, nil
}

// Add puts the content of r into the cache when its SHA-256 is sum (a
// copy of a file fetched elsewhere, say) and returns its path; a cached
// file is kept and r is not read. A mismatch wraps ErrChecksum and caches
// nothing.
func (f *Fetcher) Add(ctx context.Context, sum string, r io.Reader) (string, error) {
	if !ValidSHA256(sum) {
		return "", fmt.Errorf("%w: %q is not a lowercase hex sha256", ErrChecksum, truncate(sum))
	}
	final := f.Path(sum)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	tmpDir, err := f.dirs()
	if err != nil {
		return "", err
	}
	if _, err := f.save(tmpDir, sum, final, ctxReader{ctx, r}); err != nil {
		return "", fmt.Errorf("add %s to the fetch cache: %w", sum, err)
	}
	return final, nil
}

// Path is where the file with the SHA-256 sum is (or would be) cached.
func (f *Fetcher) Path(sum string) string { return filepath.Join(f.Dir, "sha256", sum) }

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
