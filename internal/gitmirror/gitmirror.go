package gitmirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Source says where a stage's code comes from.
type Source struct {
	// URL is a clone URL (https://, ssh://, git://, file://, git@host:path)
	// or an absolute path of a local (bare) repository.
	URL string `json:"url"`
	// Commit is the full SHA to check out.
	Commit string `json:"commit"`
	// Ref is the ref the commit was pushed to; fetched as a fallback when
	// the remote does not serve commits by SHA.
	Ref string `json:"ref,omitempty"`
	// Username and Password (a token) are sent as HTTP basic auth. They
	// reach git through GIT_CONFIG_* environment variables (an
	// http.extraHeader), never through argv or the cache's config, and are
	// never serialised with the source.
	Username string `json:"-"`
	Password string `json:"-"`
}

var (
	// ErrUnsafe reports a URL, SHA or ref that could be mistaken for an
	// option or selects a transport that runs commands.
	ErrUnsafe = errors.New("unsafe git source")
	// ErrNoRef reports that ResolveRef found no such ref.
	ErrNoRef = errors.New("no such ref")
)

// Validate checks that src can be passed to git safely.
func (src Source) Validate() error {
	u := src.URL
	switch {
	case u == "":
		return fmt.Errorf("%w: empty URL", ErrUnsafe)
	case strings.HasPrefix(u, "-"):
		return fmt.Errorf("%w: URL %q starts with '-'", ErrUnsafe, Redact(u))
	case isRemoteHelper(u):
		// ext:: runs any command; fd:: and other helpers are refused too.
		return fmt.Errorf("%w: URL %q names a remote helper transport", ErrUnsafe, Redact(u))
	case strings.ContainsAny(u, "\x00\n\r"):
		return fmt.Errorf("%w: URL contains control characters", ErrUnsafe)
	}
	if !isSHA(src.Commit) {
		return fmt.Errorf("%w: commit %q is not a full hex SHA", ErrUnsafe, src.Commit)
	}
	if src.Ref != "" && !validRef(src.Ref) {
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

// isRemoteHelper reports a "<transport>::<address>" URL, which makes git
// run git-remote-<transport>.
func isRemoteHelper(u string) bool {
	i := strings.Index(u, "::")
	if i <= 0 {
		return false
	}
	for _, c := range u[:i] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.') {
			return false
		}
	}
	return true
}

// validRef accepts the subset of git ref names that is safe as a refspec
// source: refs/..., no option-like, wildcard or refspec characters.
func validRef(ref string) bool {
	if !strings.HasPrefix(ref, "refs/") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".lock") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.Contains(ref, "@{") {
		return false
	}
	for _, c := range ref {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\+", c) {
			return false
		}
	}
	for _, part := range strings.Split(ref, "/") {
		if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "-") {
			return false
		}
	}
	return true
}

// Cache holds one bare mirror per source URL below a directory. It is
// safe for concurrent use, also by several processes sharing the
// directory: fetches into one mirror serialise on a file lock. Objects
// are never removed from a mirror (Runnel's git calls run with gc.auto=0),
// so a mirror can be read while another fetch adds to it.
type Cache struct {
	dir string
}

// NewCache returns a Cache keeping mirrors below dir.
func NewCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create git cache %s: %w", dir, err)
	}
	return &Cache{dir: dir}, nil
}

// Checkout makes dest (which must not exist or be empty) contain the tree
// of src.Commit, without a .git entry: the workspace is mounted into
// containers where a link to the cache would not resolve. It fetches
// only what the cache lacks (see Fetch).
func (c *Cache) Checkout(ctx context.Context, src Source, dest string) error {
	mirror, err := c.Fetch(ctx, src)
	if err != nil {
		return err
	}
	if err := prepareDest(dest); err != nil {
		return err
	}
	index, err := os.CreateTemp(c.dir, "index-*")
	if err != nil {
		return fmt.Errorf("create temporary index: %w", err)
	}
	index.Close()
	os.Remove(index.Name()) // git wants to create it
	defer os.Remove(index.Name())
	env := append(gitEnv(src), "GIT_DIR="+mirror, "GIT_INDEX_FILE="+index.Name(), "GIT_WORK_TREE="+dest)
	if _, err := git(ctx, env, "read-tree", src.Commit); err != nil {
		return fmt.Errorf("check out %s: read tree of %s: %w", Redact(src.URL), src.Commit, err)
	}
	if _, err := git(ctx, env, "checkout-index", "--all", "--force"); err != nil {
		return fmt.Errorf("check out %s at %s into %s: %w", Redact(src.URL), src.Commit, dest, err)
	}
	return nil
}

// Fetch makes sure the mirror of src.URL holds src.Commit and returns the
// mirror's directory (a bare repository). It asks for the commit by SHA
// (shallow) and, when the server refuses that, fetches src.Ref. What it
// fetched stays named under refs/runnel/, so the next fetch negotiates
// with it and transfers only new objects.
func (c *Cache) Fetch(ctx context.Context, src Source) (string, error) {
	if err := src.Validate(); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(src.URL))
	mirror := filepath.Join(c.dir, hex.EncodeToString(sum[:12])+".git")
	unlock, err := lock(ctx, mirror)
	if err != nil {
		return "", err
	}
	defer unlock()
	env := gitEnv(src)
	if _, err := os.Stat(filepath.Join(mirror, "HEAD")); err != nil {
		if _, err := git(ctx, env, "init", "--quiet", "--bare", "--", mirror); err != nil {
			return "", fmt.Errorf("init mirror for %s: %w", Redact(src.URL), err)
		}
	}
	env = append(env, "GIT_DIR="+mirror)
	has := func() bool {
		_, err := git(ctx, env, "cat-file", "-e", src.Commit+"^{commit}")
		return err == nil
	}
	if has() {
		return mirror, nil
	}
	fetch := []string{"fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules"}
	_, err = git(ctx, env, append(fetch, "--depth=1", "--", src.URL, "+"+src.Commit+":refs/runnel/"+src.Commit)...)
	if err == nil {
		return mirror, nil
	}
	if src.Ref == "" {
		return "", fmt.Errorf("fetch %s from %s: %w", src.Commit, Redact(src.URL), err)
	}
	// Some servers refuse a want by SHA: fetch the ref instead.
	if _, err2 := git(ctx, env, append(fetch, "--", src.URL, "+"+src.Ref+":refs/runnel/"+strings.TrimPrefix(src.Ref, "refs/"))...); err2 != nil {
		return "", fmt.Errorf("fetch %s from %s: %w (by ref %s: %v)", src.Commit, Redact(src.URL), err, src.Ref, err2)
	}
	if !has() {
		return "", fmt.Errorf("fetch %s from %s: commit not found after fetching %s", src.Commit, Redact(src.URL), src.Ref)
	}
	return mirror, nil
}

// lock takes an exclusive flock on path+".lock"; the returned func
// releases it. Waiting does not observe ctx: holders are other fetches,
// which end.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock git cache %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock git cache %s: %w", path, err)
	}
	if err := ctx.Err(); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

func prepareDest(dest string) error {
	entries, err := os.ReadDir(dest)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return fmt.Errorf("create workspace %s: %w", dest, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("check out into %s: %w", dest, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("check out into %s: directory is not empty", dest)
	}
	return nil
}

// gitEnv is the environment of git commands: the process environment
// without GIT_* variables (a hook's GIT_DIR must not leak in), no prompts,
// no system config, no hooks, no command-running transports, no garbage
// collection, and src's credentials as configuration from the
// environment.
func gitEnv(src Source) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	env = append(env, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_ASKPASS=true", "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	// Only the transports git ships: a "<scheme>://" URL must not make git
	// run whatever git-remote-<scheme> helper is on PATH.
	keys := []string{"protocol.allow", "protocol.file.allow", "protocol.http.allow", "protocol.https.allow",
		"protocol.ssh.allow", "protocol.git.allow", "protocol.ext.allow", "protocol.fd.allow",
		"gc.auto", "maintenance.auto", "core.hooksPath"}
	vals := []string{"never", "always", "always", "always",
		"always", "always", "never", "never",
		"0", "false", "/dev/null"}
	if src.Username != "" || src.Password != "" {
		cred := base64.StdEncoding.EncodeToString([]byte(src.Username + ":" + src.Password))
		keys = append(keys, "http.extraHeader")
		vals = append(vals, "Authorization: Basic "+cred)
	}
	env = append(env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(keys)))
	for i := range keys {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, keys[i]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, vals[i]))
	}
	return env
}

func git(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = env
	// When ctx ends, kill git's whole process group: a fetch runs
	// git-remote-http(s) as a child that holds the output pipes, and
	// killing git alone leaves it (and Wait) hanging on a forge that does
	// not answer.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// ResolveRef returns the commit ref points to in the repository at url
// (a local path or a clone URL), using git ls-remote.
func ResolveRef(ctx context.Context, url, ref string) (string, error) {
	src := Source{URL: url, Commit: strings.Repeat("0", 40), Ref: ref}
	if err := src.Validate(); err != nil {
		return "", err
	}
	if ref == "" {
		return "", fmt.Errorf("%w: empty ref", ErrUnsafe)
	}
	out, err := git(ctx, gitEnv(src), "ls-remote", "--", url, ref)
	if err != nil {
		return "", fmt.Errorf("resolve %s in %s: %w", ref, Redact(url), err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == ref && isSHA(f[0]) {
			return f[0], nil
		}
	}
	return "", fmt.Errorf("resolve %s in %s: %w", ref, Redact(url), ErrNoRef)
}
