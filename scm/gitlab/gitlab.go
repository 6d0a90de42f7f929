package gitlab

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

// maxCommits is the number of commits GitLab lists in a push payload at
// most.
const maxCommits = 20

// Hook parses GitLab webhooks. The zero value is ready to use.
type Hook struct{}

var _ scm.Hook = Hook{}

// Parse implements scm.Hook; see Parse.
func (Hook) Parse(r *http.Request, secret []byte) (*scm.Event, error) { return Parse(r, secret) }

type commit struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	Timestamp string `json:"timestamp"`
	Author    struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"author"`
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

type payload struct {
	ObjectKind   string   `json:"object_kind"`
	Before       string   `json:"before"`
	After        string   `json:"after"`
	Ref          string   `json:"ref"`
	CheckoutSHA  *string  `json:"checkout_sha"`
	UserUsername string   `json:"user_username"`
	UserName     string   `json:"user_name"`
	Commits      []commit `json:"commits"`
	TotalCommits int      `json:"total_commits_count"`
	Project      struct {
		PathWithNamespace string `json:"path_with_namespace"`
		GitHTTPURL        string `json:"git_http_url"`
	} `json:"project"`
}

// Verify implements scm.Hook: X-Gitlab-Token is the secret, so the
// headers alone authenticate the request (scm.Authentic).
func (Hook) Verify(r *http.Request, secret []byte) (scm.BodyCheck, error) {
	if len(secret) == 0 {
		return nil, fmt.Errorf("gitlab webhook: no secret configured: %w", scm.ErrSignature)
	}
	tok := r.Header.Get("X-Gitlab-Token")
	// Comparing digests keeps the secret's length out of the timing.
	a, b := sha256.Sum256([]byte(tok)), sha256.Sum256(secret)
	if tok == "" || subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return nil, fmt.Errorf("gitlab webhook: missing or wrong X-Gitlab-Token: %w", scm.ErrSignature)
	}
	return scm.Authentic, nil
}

// Parse reads a GitLab webhook, checks X-Gitlab-Token against secret
// before reading the body, and converts a "Push Hook", "Tag Push Hook" or
// "Merge Request Hook" (open, reopen, update with new commits) into an
// Event. Other events and actions, and deletions, give scm.ErrIgnored.
func Parse(r *http.Request, secret []byte) (*scm.Event, error) {
	if _, err := (Hook{}).Verify(r, secret); err != nil {
		return nil, err
	}
	body, err := scm.ReadBody(r, scm.MaxBodySize)
	if err != nil {
		return nil, fmt.Errorf("gitlab webhook: %w", err)
	}
	delivery := r.Header.Get("X-Gitlab-Event-UUID")
	if delivery == "" {
		delivery = r.Header.Get("Idempotency-Key")
	}
	var ev *scm.Event
	switch e := r.Header.Get("X-Gitlab-Event"); e {
	case "Push Hook":
		ev, err = fromPush(body, "push", scm.KindPush)
	case "Tag Push Hook":
		ev, err = fromPush(body, "tag_push", scm.KindTag)
	case "Merge Request Hook":
		ev, err = fromMergeRequest(body)
	default:
		return nil, fmt.Errorf("gitlab webhook: event %q: %w", e, scm.ErrIgnored)
	}
	if err != nil {
		return nil, err
	}
	ev.Forge, ev.Delivery = scm.ForgeGitLab, delivery
	return ev, nil
}

func fromPush(body []byte, wantKind, kind string) (*scm.Event, error) {
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("gitlab webhook: decode payload: %v: %w", err, scm.ErrBadRequest)
	}
	if p.ObjectKind != wantKind {
		return nil, fmt.Errorf("gitlab webhook: object_kind %q in a %s event: %w", p.ObjectKind, wantKind, scm.ErrBadRequest)
	}
	if scm.IsZeroSHA(p.After) {
		return nil, fmt.Errorf("gitlab webhook: push deletes %q: %w", p.Ref, scm.ErrIgnored)
	}
	// For an annotated tag, after is the tag object; checkout_sha is the
	// commit.
	sha := p.After
	if p.CheckoutSHA != nil && *p.CheckoutSHA != "" {
		sha = *p.CheckoutSHA
	}
	ev := &scm.Event{
		Kind:     kind,
		Repo:     p.Project.PathWithNamespace,
		CloneURL: p.Project.GitHTTPURL,
		Ref:      p.Ref,
		Before:   p.Before,
		Commit:   sha,
		Author:   p.UserUsername,
	}
	if kind == scm.KindPush {
		ev.Branch = scm.BranchOf(p.Ref)
		if ev.Branch == "" {
			return nil, fmt.Errorf("gitlab webhook: push to ref %q: %w", p.Ref, scm.ErrIgnored)
		}
	} else {
		ev.Tag = scm.TagOf(p.Ref)
		if ev.Tag == "" {
			return nil, fmt.Errorf("gitlab webhook: tag push to ref %q: %w", p.Ref, scm.ErrIgnored)
		}
	}
	if ev.Repo == "" || !scm.ValidSHA(ev.Commit) {
		return nil, fmt.Errorf("gitlab webhook: push without project or valid commit SHA: %w", scm.ErrBadRequest)
	}
	for _, c := range p.Commits {
		if c.ID == sha {
			ev.Message = c.Message
			if t, err := time.Parse(time.RFC3339, c.Timestamp); err == nil {
				ev.Timestamp = t
			}
		}
	}
	if ev.Author == "" {
		ev.Author = p.UserName
	}
	if kind == scm.KindPush && !scm.IsZeroSHA(p.Before) && len(p.Commits) > 0 &&
		len(p.Commits) < maxCommits && p.TotalCommits == len(p.Commits) {
		seen := map[string]bool{}
		ev.Changed = []string{}
		for _, c := range p.Commits {
			for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
				for _, f := range list {
					if !seen[f] {
						seen[f] = true
						ev.Changed = append(ev.Changed, f)
					}
				}
			}
		}
	}
	return ev, nil
}
