package githook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/generic"
	"github.com/runnel-ci/runnel/scm/gitrepo"
)

// marker identifies a hook written by Install.
const marker = "# installed by runnel"

// Git config keys Install sets in the repository.
const (
	KeyServer = "runnel.server"
	KeyRepo   = "runnel.repo"
	KeyToken  = "runnel.token"
)

var (
	// ErrHookExists means the repository has a post-receive hook that
	// Install did not write.
	ErrHookExists = errors.New("a foreign post-receive hook exists")
	// ErrNotBare means the path is not a bare git repository.
	ErrNotBare = errors.New("not a bare git repository")
)

// Install makes the bare repository at repoPath report pushes to the
// Runnel server at serverURL as repository repoName, authenticated with
// token. runnelPath is the absolute path of the runnel binary the hook
// runs ("" means the running executable). See the package doc for what
// happens to an existing hook.
func Install(repoPath, serverURL, repoName, token, runnelPath string) error {
	if runnelPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("install hook in %s: find runnel binary: %w", repoPath, err)
		}
		runnelPath = exe
	}
	if !filepath.IsAbs(runnelPath) || strings.ContainsAny(runnelPath, "'\n\r\x00") {
		return fmt.Errorf("install hook in %s: runnel path %q must be absolute and contain no quote or newline", repoPath, runnelPath)
	}
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("install hook in %s: server URL %q is not an http(s) URL", repoPath, serverURL)
	}
	if repoName == "" || token == "" {
		return fmt.Errorf("install hook in %s: repository name and token are required", repoPath)
	}
	repo, err := git.PlainOpen(repoPath)
	if err != nil {
		return fmt.Errorf("install hook in %s: %w", repoPath, err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return fmt.Errorf("install hook in %s: read config: %w", repoPath, err)
	}
	if !cfg.Core.IsBare {
		return fmt.Errorf("install hook in %s: %w", repoPath, ErrNotBare)
	}
	hook := filepath.Join(repoPath, "hooks", "post-receive")
	if old, err := os.ReadFile(hook); err == nil && !bytes.Contains(old, []byte(marker)) {
		return fmt.Errorf("install hook in %s: %s: %w", repoPath, hook, ErrHookExists)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("install hook in %s: %w", repoPath, err)
	}
	sec := cfg.Raw.Section("runnel")
	sec.SetOption("server", serverURL)
	sec.SetOption("repo", repoName)
	sec.SetOption("token", token)
	if err := repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("install hook in %s: write config: %w", repoPath, err)
	}
	script := "#!/bin/sh\n" + marker + ": forwards pushes to the Runnel server.\n" +
		"# Settings: git config runnel.server, runnel.repo, runnel.token of this repository.\n" +
		"exec '" + runnelPath + "' hook post-receive\n"
	if err := os.MkdirAll(filepath.Dir(hook), 0o755); err != nil {
		return fmt.Errorf("install hook in %s: %w", repoPath, err)
	}
	tmp := hook + ".runnel-tmp"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return fmt.Errorf("install hook in %s: %w", repoPath, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // WriteFile's mode is masked by umask
		return fmt.Errorf("install hook in %s: %w", repoPath, err)
	}
	if err := os.Rename(tmp, hook); err != nil {
		return fmt.Errorf("install hook in %s: %w", repoPath, err)
	}
	return nil
}

// Config is what PostReceive needs.
type Config struct {
	RepoPath  string // the repository (GIT_DIR), to read commit messages
	ServerURL string // e.g. https://ci.example.com
	Repo      string // repository name on the server
	Token     string // bearer token of the repository
	// Client sends the requests; nil means a client with a 10 s timeout.
	Client *http.Client
	// Out receives one line per ref for the pusher; nil discards.
	Out io.Writer
}

// LoadConfig reads the hook settings of the repository at repoPath from
// its git config, falling back to RUNNEL_SERVER, RUNNEL_REPO and
// RUNNEL_TOKEN from getenv.
func LoadConfig(repoPath string, getenv func(string) string) (Config, error) {
	// Absolute, so what the hook tells the pusher names the spool fully.
	if abs, err := filepath.Abs(repoPath); err == nil {
		repoPath = abs
	}
	c := Config{RepoPath: repoPath}
	repo, err := git.PlainOpen(repoPath)
	if err != nil {
		return c, fmt.Errorf("load hook config of %s: %w", repoPath, err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return c, fmt.Errorf("load hook config of %s: %w", repoPath, err)
	}
	sec := cfg.Raw.Section("runnel")
	pick := func(key, env string) string {
		if v := sec.Option(key); v != "" {
			return v
		}
		return getenv(env)
	}
	c.ServerURL = pick("server", "RUNNEL_SERVER")
	c.Repo = pick("repo", "RUNNEL_REPO")
	c.Token = pick("token", "RUNNEL_TOKEN")
	if c.ServerURL == "" || c.Repo == "" || c.Token == "" {
		return c, fmt.Errorf("load hook config of %s: %s, %s and %s must be set", repoPath, KeyServer, KeyRepo, KeyToken)
	}
	return c, nil
}

// Run is the body of "runnel hook post-receive": it loads the config of
// the repository git runs the hook in (GIT_DIR, else the working
// directory) and calls PostReceive.
func Run(ctx context.Context, stdin io.Reader, out io.Writer, getenv func(string) string) error {
	dir := getenv("GIT_DIR")
	if dir == "" {
		dir = "."
	}
	cfg, err := LoadConfig(dir, getenv)
	if err != nil {
		return err
	}
	cfg.Out = out
	return PostReceive(ctx, stdin, cfg)
}

// Update is one line of post-receive input: a ref moved from Old to New.
type Update struct {
	Old, New, Ref string
}

// maxUpdates bounds how many lines ParseUpdates accepts.
const maxUpdates = 10000

// ParseUpdates reads "<old> <new> <ref>" lines as git gives them to
// post-receive.
func ParseUpdates(r io.Reader) ([]Update, error) {
	var out []Update
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 || !scm.ValidSHA(f[0]) || !scm.ValidSHA(f[1]) || f[2] == "" || !strings.HasPrefix(f[2], "refs/") {
			return nil, fmt.Errorf("post-receive input line %d: want \"<old> <new> <ref>\", got %q", n, line)
		}
		if len(out) == maxUpdates {
			return nil, fmt.Errorf("post-receive input: more than %d refs", maxUpdates)
		}
		out = append(out, Update{Old: f[0], New: f[1], Ref: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read post-receive input: %w", err)
	}
	return out, nil
}

// PostReceive reads post-receive input from stdin and sends each updated
// branch or tag to cfg.ServerURL + generic.Path, with the commit's
// message, time and author and the changed paths. Deletions and other
// refs are skipped. Each push is first written to the repository's spool
// (SpoolDir), then the spool is flushed, older pushes first (see Flush):
// when the server does not answer, the push waits there and the pusher
// is told that its run is delayed, not lost. It writes one line per ref
// to cfg.Out and returns an error when the server refused a push.
func PostReceive(ctx context.Context, stdin io.Reader, cfg Config) error {
	updates, err := ParseUpdates(stdin)
	if err != nil {
		return err
	}
	var entries []spooled
	for _, u := range updates {
		if scm.IsZeroSHA(u.New) || (scm.BranchOf(u.Ref) == "" && scm.TagOf(u.Ref) == "") {
			continue
		}
		p := generic.Payload{Repo: cfg.Repo, Ref: u.Ref, Before: u.Old, Commit: peel(cfg.RepoPath, u.New)}
		if c, err := gitrepo.CommitInfo(cfg.RepoPath, p.Commit); err == nil {
			p.Message, p.Author = c.Message, c.Author
			t := c.Time.UTC()
			p.Timestamp = &t
		}
		// A tag may point at a tag object; only commits have a diff.
		if changed, err := gitrepo.ChangedPaths(cfg.RepoPath, u.Old, u.New); err == nil && changed != nil {
			p.Changed = changed
		}
		id, err := newDeliveryID()
		if err != nil {
			return err
		}
		entries = append(entries, spooled{Delivery: id, Payload: p, At: time.Now().UTC()})
	}
	if len(entries) == 0 {
		_, err := Flush(ctx, cfg)
		return err
	}
	if err := spool(filepath.Join(cfg.RepoPath, SpoolDir), entries); err != nil {
		// Without a spool the pushes are sent once, as they are.
		fmt.Fprintf(cfg.out(), "runnel: cannot spool the push (%v); sending it without a retry\n", err)
		return sendUnspooled(ctx, cfg, entries)
	}
	_, err = Flush(ctx, cfg)
	return err
}

// sendUnspooled sends entries once, reporting each.
func sendUnspooled(ctx context.Context, cfg Config, entries []spooled) error {
	endpoint := strings.TrimRight(cfg.ServerURL, "/") + generic.Path
	var errs []error
	for i := range entries {
		e := &entries[i]
		status, err := post(ctx, cfg.client(), endpoint, cfg.Token, e.Delivery, &e.Payload)
		if err != nil {
			fmt.Fprintf(cfg.out(), "runnel: could not queue a run for %s: %v\n", e.Payload.Ref, err)
			errs = append(errs, fmt.Errorf("post %s: %w", e.Payload.Ref, err))
			continue
		}
		reportSent(cfg.out(), e, status)
	}
	return errors.Join(errs...)
}

func (c Config) out() io.Writer {
	if c.Out == nil {
		return io.Discard
	}
	return c.Out
}

func (c Config) client() *http.Client {
	if c.Client == nil {
		return &http.Client{Timeout: 10 * time.Second}
	}
	return c.Client
}

func newDeliveryID() (string, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("make delivery id: %w", err)
	}
	return hex.EncodeToString(id), nil
}

// peel returns the commit an annotated tag object sha points to, or sha.
func peel(repoPath, sha string) string {
	repo, err := git.PlainOpen(repoPath)
	if err != nil {
		return sha
	}
	tag, err := repo.TagObject(plumbing.NewHash(sha))
	if err != nil {
		return sha
	}
	c, err := tag.Commit()
	if err != nil {
		return sha
	}
	return c.Hash.String()
}

// post sends p with delivery id delivery; status is 0 when no answer came.
func post(ctx context.Context, client *http.Client, endpoint, token, delivery string, p *generic.Payload) (int, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(generic.DeliveryHeader, delivery)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.StatusCode, nil
}
