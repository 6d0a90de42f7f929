package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Repo is a repository Runnel builds.
type Repo struct {
	ID   int64
	Name string // unique, e.g. "acme/web"
	// Forge is one of ForgeGitHub, ForgeGitea, ForgeGitLab, ForgeGeneric, ForgeGit.
	Forge string
	// CloneURL is where the server fetches the repository's code: a
	// network URL, or the absolute path of a bare repository on the
	// server's host (forge git). Empty for a forge repository whose
	// events name the clone URL (then it must be on ForgeURL's host).
	CloneURL string
	// ForgeURL is the forge's base URL as named when the repository was
	// added (e.g. https://github.com): without a CloneURL, the server
	// fetches only from this scheme and host.
	ForgeURL string
	// GenericHook lets a forge repository (github, gitea, gitlab) also
	// start runs through the generic hook with its hook token; off, only
	// its forge's verified webhooks do. Repositories of forge git and
	// generic always accept the generic hook: it is their hook.
	GenericHook bool
	// WebhookSecret verifies forge webhook signatures (HMAC verification
	// needs the value itself: it is sealed at rest, see WithSealer).
	WebhookSecret string
	DefaultBranch string
	// CancelPrevious: a newer push cancels older unfinished runs of the
	// same branch.
	CancelPrevious bool
	// Private repositories serve badges only with the badge token.
	Private bool
	// StatusAPIURL and StatusToken configure commit status reports (forge
	// API base URL and token, sealed at rest); empty means no reports.
	StatusAPIURL string
	StatusToken  string
	// AllowContainer are the container permissions (pipeline.Permission
	// names) the repository's pipelines may ask for; nil grants none.
	AllowContainer []string
	// ForkPipelineFromBase: a pull request from a fork runs the pipeline
	// file of its base branch, not its own (docs/secrets.md).
	ForkPipelineFromBase bool
	CreatedAt            time.Time
	// HasHookToken and HasBadgeToken say whether a token was set; the
	// tokens themselves are stored only as SHA-256 hashes.
	HasHookToken  bool
	HasBadgeToken bool
}

const repoCols = `id, name, forge, clone_url, forge_url, generic_hook, webhook_secret, default_branch, cancel_previous,
	private, status_api_url, status_token, created_at, hook_token_hash <> '', badge_token_hash <> '', allow_container,
	fork_pipeline_base`

func (s *Store) scanRepo(row interface{ Scan(...any) error }) (*Repo, error) {
	var r Repo
	var created sql.NullInt64
	var allow string
	if err := row.Scan(&r.ID, &r.Name, &r.Forge, &r.CloneURL, &r.ForgeURL, &r.GenericHook, &r.WebhookSecret, &r.DefaultBranch,
		&r.CancelPrevious, &r.Private, &r.StatusAPIURL, &r.StatusToken, &created,
		&r.HasHookToken, &r.HasBadgeToken, &allow, &r.ForkPipelineFromBase); err != nil {
		return nil, err
	}
	if allow != "" {
		r.AllowContainer = strings.Split(allow, ",")
	}
	r.CreatedAt = fromTS(created)
	for _, f := range []struct {
		col string
		v   *string
	}{{"webhook_secret", &r.WebhookSecret}, {"status_token", &r.StatusToken}} {
		plain, err := s.openColumn(*f.v, f.col)
		if err != nil {
			return nil, fmt.Errorf("repo %s: %w", r.Name, err)
		}
		*f.v = plain
	}
	return &r, nil
}

// CreateRepo inserts r (ID, CreatedAt and the Has* fields are ignored) and
// returns the stored repo. An empty DefaultBranch becomes "main". A taken
// name gives ErrDuplicate.
func (s *Store) CreateRepo(ctx context.Context, r Repo) (*Repo, error) {
	if r.Name == "" || r.Forge == "" {
		return nil, fmt.Errorf("create repo %q: name and forge are required", r.Name)
	}
	if r.DefaultBranch == "" {
		r.DefaultBranch = "main"
	}
	secret, token, err := s.sealRepo(r)
	if err != nil {
		return nil, fmt.Errorf("create repo %q: %w", r.Name, err)
	}
	var id int64
	err = s.w.QueryRowContext(ctx, s.rebind(`INSERT INTO repos
		(name, forge, clone_url, forge_url, generic_hook, webhook_secret, default_branch, cancel_previous, private,
		status_api_url, status_token, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		r.Name, r.Forge, r.CloneURL, r.ForgeURL, r.GenericHook, secret, r.DefaultBranch, r.CancelPrevious, r.Private,
		r.StatusAPIURL, token, s.now().UnixMicro()).Scan(&id)
	if err != nil {
		if isUnique(err) {
			return nil, fmt.Errorf("create repo %q: %w", r.Name, ErrDuplicate)
		}
		return nil, fmt.Errorf("create repo %q: %w", r.Name, err)
	}
	return s.RepoByID(ctx, id)
}

// UpdateRepo stores the settings of r, found by r.ID: forge, clone URL,
// forge URL, generic hook, webhook secret, default branch, cancel-previous, private, status report
// settings, container permissions, fork pipeline source. Name and tokens
// are not changed here.
func (s *Store) UpdateRepo(ctx context.Context, r Repo) error {
	secret, token, err := s.sealRepo(r)
	if err != nil {
		return fmt.Errorf("update repo %d: %w", r.ID, err)
	}
	res, err := s.w.ExecContext(ctx, s.rebind(`UPDATE repos SET forge = ?, clone_url = ?, forge_url = ?, generic_hook = ?,
		webhook_secret = ?, default_branch = ?, cancel_previous = ?, private = ?, status_api_url = ?, status_token = ?,
		allow_container = ?, fork_pipeline_base = ? WHERE id = ?`),
		r.Forge, r.CloneURL, r.ForgeURL, r.GenericHook, secret, r.DefaultBranch, r.CancelPrevious, r.Private,
		r.StatusAPIURL, token, strings.Join(r.AllowContainer, ","), r.ForkPipelineFromBase, r.ID)
	if err != nil {
		return fmt.Errorf("update repo %d: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update repo %d: %w", r.ID, ErrNotFound)
	}
	return nil
}

// Repo returns the repo named name, or ErrNotFound.
func (s *Store) Repo(ctx context.Context, name string) (*Repo, error) {
	r, err := s.scanRepo(s.queryRow(ctx, s.r, `SELECT `+repoCols+` FROM repos WHERE name = ?`, name))
	if err != nil {
		return nil, fmt.Errorf("get repo %q: %w", name, notFound(err))
	}
	return r, nil
}

// RepoByID returns the repo with that id, or ErrNotFound.
func (s *Store) RepoByID(ctx context.Context, id int64) (*Repo, error) {
	r, err := s.scanRepo(s.queryRow(ctx, s.r, `SELECT `+repoCols+` FROM repos WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get repo %d: %w", id, notFound(err))
	}
	return r, nil
}

// Repos lists all repos ordered by name.
func (s *Store) Repos(ctx context.Context) ([]*Repo, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+repoCols+` FROM repos ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list repos: %w", err)
	}
	defer rows.Close()
	var out []*Repo
	for rows.Next() {
		r, err := s.scanRepo(rows)
		if err != nil {
			return nil, fmt.Errorf("list repos: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list repos: %w", err)
	}
	return out, nil
}

// DeleteRepo deletes a repo with its runs, deliveries' run links and
// deployments.
func (s *Store) DeleteRepo(ctx context.Context, id int64) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Its secrets go with it (no foreign key: repo 0 holds the global ones).
		if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM secrets WHERE repo_id = ?`), id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM repos WHERE id = ?`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete repo %d: %w", id, err)
	}
	return nil
}

// RepoToken names one of a repo's secret tokens.
type RepoToken string

// Repo tokens.
const (
	// HookToken authenticates the generic JSON hook and the git
	// post-receive hook of the repo.
	HookToken RepoToken = "hook"
	// BadgeToken lets badges of a private repo be served.
	BadgeToken RepoToken = "badge"
)

func (k RepoToken) column() (string, error) {
	switch k {
	case HookToken:
		return "hook_token_hash", nil
	case BadgeToken:
		return "badge_token_hash", nil
	}
	return "", fmt.Errorf("unknown repo token kind %q", k)
}

// RotateRepoToken makes a new random token of kind k for the repo, stores
// its SHA-256 hash (replacing any previous token) and returns the
// plaintext, which is not kept anywhere.
func (s *Store) RotateRepoToken(ctx context.Context, repoID int64, k RepoToken) (string, error) {
	col, err := k.column()
	if err != nil {
		return "", err
	}
	plain, err := newSecret("rnh_")
	if err != nil {
		return "", err
	}
	res, err := s.w.ExecContext(ctx, s.rebind(`UPDATE repos SET `+col+` = ? WHERE id = ?`), hashToken(plain), repoID)
	if err != nil {
		return "", fmt.Errorf("rotate %s token of repo %d: %w", k, repoID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", fmt.Errorf("rotate %s token of repo %d: %w", k, repoID, ErrNotFound)
	}
	return plain, nil
}

// CheckRepoToken reports whether plaintext is the repo's current token of
// kind k (constant-time compare of hashes). A repo without such a token
// never matches.
func (s *Store) CheckRepoToken(ctx context.Context, repoID int64, k RepoToken, plaintext string) (bool, error) {
	col, err := k.column()
	if err != nil {
		return false, err
	}
	var stored string
	err = s.r.QueryRowContext(ctx, s.rebind(`SELECT `+col+` FROM repos WHERE id = ?`), repoID).Scan(&stored)
	if err != nil {
		return false, fmt.Errorf("check %s token of repo %d: %w", k, repoID, notFound(err))
	}
	if stored == "" || plaintext == "" {
		return false, nil
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(hashToken(plaintext))) == 1, nil
}

// RepoByHookToken returns the repo whose hook token plaintext is, or
// ErrNotFound: the generic hook authenticates with it before reading any
// of the request's body. The lookup is by hash, so the plaintext is never
// compared byte by byte.
func (s *Store) RepoByHookToken(ctx context.Context, plaintext string) (*Repo, error) {
	if plaintext == "" {
		return nil, fmt.Errorf("repo by hook token: %w", ErrNotFound)
	}
	r, err := s.scanRepo(s.queryRow(ctx, s.r, `SELECT `+repoCols+` FROM repos WHERE hook_token_hash = ?`, hashToken(plaintext)))
	if err != nil {
		return nil, fmt.Errorf("repo by hook token: %w", notFound(err))
	}
	return r, nil
}

// hashToken is the stored form of a token: hex SHA-256.
func hashToken(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// newSecret returns prefix + 32 random bytes, base64url.
func newSecret(prefix string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}
