package workspace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Source says where a stage's code comes from.
type Source struct {
	// URL is a clone URL (https://, ssh://, file://, git@host:path) or an
	// absolute path of a local (bare) repository.
	URL string `json:"url"`
	// Commit is the full SHA to check out.
	Commit string `json:"commit"`
	// Ref is the ref the commit was pushed to; fetched as a fallback when
	// the remote does not serve commits by SHA.
	Ref string `json:"ref,omitempty"`
}

// ErrUnsafe reports a URL, SHA or ref that could be mistaken for an option
// or selects a transport that runs commands.
var ErrUnsafe = errors.New("unsafe git source")

// Validate checks that src can be passed to git safely.
func (src Source) Validate() error {
	u := src.URL
	switch {
	case u == "":
		return fmt.Errorf("%w: empty URL", ErrUnsafe)
	case strings.HasPrefix(u, "-"):
		return fmt.Errorf("%w: URL %q starts with '-'", ErrUnsafe, u)
	case strings.Contains(u, "::"):
		// ext::, fd:: and other remote helpers named by <transport>::.
		return fmt.Errorf("%w: URL %q names a remote helper transport", ErrUnsafe, u)
	case strings.ContainsAny(u, "\x00\n\r"):
		return fmt.Errorf("%w: URL contains control characters", ErrUnsafe)
	}
	if !isSHA(src.Commit) {
		return fmt.Errorf("%w: commit %q is not a full hex SHA", ErrUnsafe, src.Commit)
	}
	if src.Ref != "" && (strings.HasPrefix(src.Ref, "-") || !strings.HasPrefix(src.Ref, "refs/") || strings.ContainsAny(src.Ref, "\x00\n\r :?*[\\^~")) {
		return fmt.Errorf("%w: ref %q", ErrUnsafe, src.Ref)
	}
	return nil
}

func isSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Cache holds one bare mirror per source URL below a directory. It is
// safe for concurrent use; checkouts of one repository are serialised.
type Cache struct {
	dir string

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// NewCache returns a Cache keeping mirrors below dir.
func NewCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create git cache %s: %w", dir, err)
	}
	return &Cache{dir: dir, locks: map[string]*sync.Mutex{}}, nil
}

func (c *Cache) lock(key string) func() {
	c.mu.Lock()
	l, ok := c.locks[key]
	if !ok {
		l = &sync.Mutex{}
		c.locks[key] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Checkout makes dest (which must not exist or be empty) contain the tree
// of src.Commit. It fetches only what the cache lacks.
func (c *Cache) Checkout(ctx context.Context, src Source, dest string) error {
	if err := src.Validate(); err != nil {
		return err
	}
	mirror, unlock, err := c.fetch(ctx, src)
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("create workspace %s: %w", dest, err)
	}
	index, err := os.CreateTemp(c.dir, "index-*")
	if err != nil {
		return fmt.Errorf("create temporary index: %w", err)
	}
	index.Close()
	os.Remove(index.Name()) // git wants to create it
	defer os.Remove(index.Name())
	env := []string{"GIT_INDEX_FILE=" + index.Name(), "GIT_WORK_TREE=" + dest}
	if _, err := gitEnv(ctx, mirror, env, "read-tree", src.Commit); err != nil {
		return fmt.Errorf("read tree of %s: %w", src.Commit, err)
	}
	if _, err := gitEnv(ctx, mirror, env, "checkout-index", "--all", "--force"); err != nil {
		return fmt.Errorf("check out %s into %s: %w", src.Commit, dest, err)
	}
	return nil
}

// fetch makes sure the mirror of src.URL has src.Commit and returns the
// mirror with its lock held; the caller calls unlock.
func (c *Cache) fetch(ctx context.Context, src Source) (mirror string, unlock func(), err error) {
	if err := src.Validate(); err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256([]byte(src.URL))
	key := hex.EncodeToString(sum[:12])
	unlock = c.lock(key)
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	mirror = filepath.Join(c.dir, key+".git")
	if _, err := os.Stat(filepath.Join(mirror, "HEAD")); err != nil {
		if err := os.MkdirAll(mirror, 0o750); err != nil {
			return "", nil, fmt.Errorf("create mirror for %s: %w", src.URL, err)
		}
		if _, err := git(ctx, "", "init", "--quiet", "--bare", "--", mirror); err != nil {
			return "", nil, fmt.Errorf("init mirror for %s: %w", src.URL, err)
		}
	}
	if _, err := git(ctx, mirror, "cat-file", "-e", src.Commit+"^{commit}"); err != nil {
		if _, err := git(ctx, mirror, "fetch", "--quiet", "--no-tags", "--depth=1", "--", src.URL, src.Commit); err != nil {
			if src.Ref == "" {
				return "", nil, fmt.Errorf("fetch %s from %s: %w", src.Commit, src.URL, err)
			}
			// Some servers refuse a want by SHA: fetch the ref instead.
			if _, err2 := git(ctx, mirror, "fetch", "--quiet", "--no-tags", "--", src.URL, src.Ref); err2 != nil {
				return "", nil, fmt.Errorf("fetch %s from %s: %w (by ref %s: %v)", src.Commit, src.URL, err, src.Ref, err2)
			}
			if _, err := git(ctx, mirror, "cat-file", "-e", src.Commit+"^{commit}"); err != nil {
				return "", nil, fmt.Errorf("commit %s not found in %s after fetching %s: %w", src.Commit, src.URL, src.Ref, err)
			}
		}
	}
	return mirror, unlock, nil
}

func git(ctx context.Context, gitDir string, args ...string) ([]byte, error) {
	return gitEnv(ctx, gitDir, nil, args...)
}

// gitEnv runs git with a fixed, hardened configuration: no remote helper
// that runs commands, no hooks, no terminal prompts.
func gitEnv(ctx context.Context, gitDir string, env []string, args ...string) ([]byte, error) {
	full := []string{"-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never", "-c", "core.hooksPath=/dev/null"}
	if gitDir != "" {
		full = append(full, "--git-dir="+gitDir)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "GIT_CONFIG_NOSYSTEM=1")
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// ErrNoFile reports that the commit has no such file.
var ErrNoFile = errors.New("file not in commit")

// ReadFile returns the content of path at commit in the repository whose
// git directory is gitDir (a bare repository on this host).
func ReadFile(ctx context.Context, gitDir, commit, path string) ([]byte, error) {
	if !isSHA(commit) {
		return nil, fmt.Errorf("%w: commit %q is not a full hex SHA", ErrUnsafe, commit)
	}
	if strings.HasPrefix(path, "-") || strings.Contains(path, ":") {
		return nil, fmt.Errorf("%w: path %q", ErrUnsafe, path)
	}
	if _, err := git(ctx, gitDir, "cat-file", "-e", commit+"^{commit}"); err != nil {
		return nil, fmt.Errorf("read %s at %s: commit not found: %w", path, commit, err)
	}
	if _, err := git(ctx, gitDir, "cat-file", "-e", commit+":"+path); err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", path, commit, ErrNoFile)
	}
	b, err := git(ctx, gitDir, "cat-file", "blob", commit+":"+path)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", path, commit, err)
	}
	return b, nil
}

// ReadFile fetches src.Commit into the cache (if needed) and returns the
// content of path at it.
func (c *Cache) ReadFile(ctx context.Context, src Source, path string) ([]byte, error) {
	mirror, unlock, err := c.fetch(ctx, src)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return ReadFile(ctx, mirror, src.Commit, path)
}

// ResolveRef returns the commit ref points to in the repository at url
// (a local path or a clone URL), using git ls-remote.
func ResolveRef(ctx context.Context, url, ref string) (string, error) {
	if err := (Source{URL: url, Commit: strings.Repeat("0", 40), Ref: ref}).Validate(); err != nil {
		return "", err
	}
	out, err := git(ctx, "", "ls-remote", "--", url, ref)
	if err != nil {
		return "", fmt.Errorf("resolve %s in %s: %w", ref, url, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == ref && isSHA(f[0]) {
			return f[0], nil
		}
	}
	return "", fmt.Errorf("resolve %s in %s: %w", ref, url, ErrNoFile)
}
