package gitrepo

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

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// ErrUnsafe means a clone URL, ref or SHA was refused because git could
// read it as an option or it selects a transport that runs commands.
var ErrUnsafe = errors.New("unsafe git argument")

// CheckoutOptions are optional settings of Checkout.
type CheckoutOptions struct {
	// Username and Password (a token) are sent as HTTP basic auth. They
	// reach git through GIT_CONFIG_* environment variables (an
	// http.extraHeader), never through argv or the cache's config.
	Username, Password string
	// Submodules also checks out submodules (recursively), refusing the
	// file and ext transports for them. Off by default.
	Submodules bool
}

// Checkout materialises commit sha of cloneURL as a git work tree in dst,
// which must not exist or be empty. It keeps a bare cache of each
// repository under cacheDir (one directory per URL) and fetches into it
// only when sha is not there yet, fetching ref (when given) so that
// servers which do not serve unadvertised SHAs work too. dst shares the
// cache's objects (git alternates); the cache is never garbage-collected
// by Runnel's git calls. Concurrent Checkouts of one repository serialise
// on a file lock in cacheDir.
//
// cloneURL may be an https://, http://, ssh://, git:// or scp-like URL, a
// file:// URL or an absolute local path; it must not start with "-" and
// must not use the ext:: transport. It uses the git CLI when installed and
// go-git otherwise.
func Checkout(ctx context.Context, cacheDir, cloneURL, sha, ref, dst string, opts *CheckoutOptions) error {
	if err := checkArgs(cloneURL, sha, ref); err != nil {
		return err
	}
	if _, err := exec.LookPath("git"); err == nil {
		return checkoutCLI(ctx, cacheDir, cloneURL, sha, ref, dst, opts)
	}
	return checkoutGoGit(ctx, cacheDir, cloneURL, sha, ref, dst, opts)
}

func checkArgs(cloneURL, sha, ref string) error {
	switch {
	case cloneURL == "" || strings.HasPrefix(cloneURL, "-"):
		return fmt.Errorf("clone URL %q: %w", cloneURL, ErrUnsafe)
	case isRemoteHelper(cloneURL):
		return fmt.Errorf("clone URL %q: remote helper transports are refused: %w", cloneURL, ErrUnsafe)
	case strings.ContainsAny(cloneURL, "\x00\n\r"):
		return fmt.Errorf("clone URL %q: control characters: %w", cloneURL, ErrUnsafe)
	case !validSHA(sha):
		return fmt.Errorf("commit %q: not a full hex SHA: %w", sha, ErrUnsafe)
	case ref != "" && !validRef(ref):
		return fmt.Errorf("ref %q: %w", ref, ErrUnsafe)
	}
	return nil
}

// isRemoteHelper reports a "<transport>::<address>" URL, which makes git
// run git-remote-<transport> (ext:: runs any command).
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

func cachePath(cacheDir, cloneURL string) string {
	sum := sha256.Sum256([]byte(cloneURL))
	return filepath.Join(cacheDir, hex.EncodeToString(sum[:12])+".git")
}

// lock takes an exclusive flock on path+".lock"; the returned func
// releases it. Waiting for the lock does not observe ctx: holders are
// other Checkouts, which end.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock cache %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock cache %s: %w", path, err)
	}
	if err := ctx.Err(); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

func prepareDst(dst string) error {
	entries, err := os.ReadDir(dst)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dst, 0o755)
	}
	if err != nil {
		return fmt.Errorf("checkout into %s: %w", dst, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("checkout into %s: directory is not empty", dst)
	}
	return nil
}

// gitEnv is the environment of git commands: the process environment
// without GIT_* variables (a hook's GIT_DIR must not leak in), no prompts,
// no system config, and the credentials as config from the environment.
func gitEnv(opts *CheckoutOptions) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	env = append(env, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_ASKPASS=true", "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	keys := []string{"protocol.ext.allow", "gc.auto", "advice.detachedHead", "core.hooksPath"}
	vals := []string{"never", "0", "false", "/dev/null"}
	if opts.Username != "" || opts.Password != "" {
		cred := base64.StdEncoding.EncodeToString([]byte(opts.Username + ":" + opts.Password))
		keys = append(keys, "http.extraHeader")
		vals = append(vals, "Authorization: Basic "+cred)
	}
	env = append(env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(keys)))
	for i := range keys {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, keys[i]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, vals[i]))
	}
	return env
}

func runGit(ctx context.Context, env []string, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func checkoutCLI(ctx context.Context, cacheDir, cloneURL, sha, ref, dst string, opts *CheckoutOptions) error {
	if opts == nil {
		opts = &CheckoutOptions{}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("checkout %s at %s: %w", cloneURL, sha, err)
	}
	cache := cachePath(cacheDir, cloneURL)
	unlock, err := lock(ctx, cache)
	if err != nil {
		return err
	}
	defer unlock()
	env := gitEnv(opts)
	if _, err := os.Stat(filepath.Join(cache, "HEAD")); err != nil {
		if err := runGit(ctx, env, cacheDir, "init", "-q", "--bare", "--", cache); err != nil {
			return fmt.Errorf("checkout %s at %s: create cache: %w", cloneURL, sha, err)
		}
	}
	if runGit(ctx, env, cache, "cat-file", "-e", sha+"^{commit}") != nil {
		// Fetch the ref (what every server serves) and, when that does
		// not bring sha, sha itself (servers that allow it).
		fetch := []string{"fetch", "-q", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", "--", cloneURL}
		var ferr error
		if ref != "" {
			ferr = runGit(ctx, env, cache, append(fetch, "+"+ref+":"+ref)...)
		}
		if ref == "" || runGit(ctx, env, cache, "cat-file", "-e", sha+"^{commit}") != nil {
			ferr = runGit(ctx, env, cache, append(fetch, "+"+sha+":refs/runnel/"+sha)...)
		}
		if ferr != nil {
			return fmt.Errorf("checkout %s at %s: fetch: %w", cloneURL, sha, ferr)
		}
	}
	if err := prepareDst(dst); err != nil {
		return err
	}
	if err := runGit(ctx, env, dst, "clone", "-q", "--shared", "--no-checkout", "--", cache, "."); err != nil {
		return fmt.Errorf("checkout %s at %s: clone from cache: %w", cloneURL, sha, err)
	}
	if err := runGit(ctx, env, dst, "checkout", "-q", "--detach", sha); err != nil {
		return fmt.Errorf("checkout %s at %s: %w", cloneURL, sha, err)
	}
	if opts.Submodules {
		subEnv := append(env[:len(env):len(env)], "GIT_ALLOW_PROTOCOL=https:http:ssh:git")
		if err := runGit(ctx, subEnv, dst, "-c", "protocol.file.allow=never", "submodule", "update", "--init", "--recursive", "-q"); err != nil {
			return fmt.Errorf("checkout %s at %s: submodules: %w", cloneURL, sha, err)
		}
	}
	return nil
}

// checkoutGoGit is Checkout without the git CLI. It keeps the same cache
// layout; dst gets a full copy of the needed objects rather than
// alternates.
func checkoutGoGit(ctx context.Context, cacheDir, cloneURL, sha, ref, dst string, opts *CheckoutOptions) error {
	if opts == nil {
		opts = &CheckoutOptions{}
	}
	if opts.Submodules {
		return fmt.Errorf("checkout %s at %s: submodules need the git CLI", cloneURL, sha)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("checkout %s at %s: %w", cloneURL, sha, err)
	}
	cache := cachePath(cacheDir, cloneURL)
	unlock, err := lock(ctx, cache)
	if err != nil {
		return err
	}
	defer unlock()
	repo, err := git.PlainOpen(cache)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInit(cache, true)
	}
	if err != nil {
		return fmt.Errorf("checkout %s at %s: open cache: %w", cloneURL, sha, err)
	}
	hash := plumbing.NewHash(sha)
	if _, err := repo.CommitObject(hash); err != nil {
		var auth transport.AuthMethod
		if opts.Username != "" || opts.Password != "" {
			auth = &githttp.BasicAuth{Username: opts.Username, Password: opts.Password}
		}
		remote := git.NewRemote(repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{cloneURL}})
		specs := []config.RefSpec{config.RefSpec("+" + sha + ":refs/runnel/" + sha)}
		if ref != "" {
			specs = []config.RefSpec{config.RefSpec("+" + ref + ":" + ref)}
		}
		err := remote.FetchContext(ctx, &git.FetchOptions{RefSpecs: specs, Auth: auth, Tags: git.NoTags})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return fmt.Errorf("checkout %s at %s: fetch: %w", cloneURL, sha, err)
		}
	}
	// go-git serves only advertised refs, so name the commit for dst.
	pin := plumbing.ReferenceName("refs/runnel/" + sha)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(pin, hash)); err != nil {
		return fmt.Errorf("checkout %s at %s: pin in cache: %w", cloneURL, sha, err)
	}
	if err := prepareDst(dst); err != nil {
		return err
	}
	wt, err := git.PlainInit(dst, false)
	if err != nil {
		return fmt.Errorf("checkout %s at %s: init %s: %w", cloneURL, sha, dst, err)
	}
	remote := git.NewRemote(wt.Storer, &config.RemoteConfig{Name: "cache", URLs: []string{cache}})
	err = remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{config.RefSpec("+" + string(pin) + ":refs/runnel/checkout")},
		Tags:     git.NoTags,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("checkout %s at %s: copy from cache: %w", cloneURL, sha, err)
	}
	w, err := wt.Worktree()
	if err != nil {
		return fmt.Errorf("checkout %s at %s: %w", cloneURL, sha, err)
	}
	if err := w.Checkout(&git.CheckoutOptions{Hash: hash, Force: true}); err != nil {
		return fmt.Errorf("checkout %s at %s: %w", cloneURL, sha, err)
	}
	return nil
}
