package gitea

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

// Hook parses Gitea/Forgejo webhooks. The zero value is ready to use.
type Hook struct{}

var _ scm.Hook = Hook{}

// Parse implements scm.Hook; see Parse.
func (Hook) Parse(r *http.Request, secret []byte) (*scm.Event, error) { return Parse(r, secret) }

type user struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Username string `json:"username"`
	Login    string `json:"login"` // set in user objects (pull request authors), not commit authors
}

type commit struct {
	ID        string   `json:"id"`
	Message   string   `json:"message"`
	Author    user     `json:"author"`
	Timestamp string   `json:"timestamp"`
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Modified  []string `json:"modified"`
}

type pushPayload struct {
	Ref          string   `json:"ref"`
	Before       string   `json:"before"`
	After        string   `json:"after"`
	Commits      []commit `json:"commits"`
	HeadCommit   *commit  `json:"head_commit"`
	TotalCommits int      `json:"total_commits"`
	Repository   struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
	} `json:"repository"`
	Pusher struct {
		Login string `json:"login"`
	} `json:"pusher"`
}

// header returns the Gitea header name or its Forgejo twin's value.
func header(r *http.Request, name string) string {
	if v := r.Header.Get("X-Gitea-" + name); v != "" {
		return v
	}
	if v := r.Header.Get("X-Forgejo-" + name); v != "" {
		return v
	}
	return r.Header.Get("X-Gogs-" + name)
}

// Verify implements scm.Hook: X-Gitea-Signature (or Forgejo's), the
// hex-encoded HMAC-SHA256 of the raw body.
func (Hook) Verify(r *http.Request, secret []byte) (scm.BodyCheck, error) {
	sig := r.Header.Get("X-Gitea-Signature")
	if sig == "" {
		sig = r.Header.Get("X-Forgejo-Signature")
	}
	c, err := scm.HMACCheck(sha256.New, secret, sig)
	if err != nil {
		return nil, fmt.Errorf("gitea webhook: %w", err)
	}
	return c, nil
}

// Parse reads a Gitea or Forgejo webhook, verifies its signature on the
// raw body, and converts a push (branch or tag) or a pull_request
// (opened, synchronized, reopened) into an Event. Other events and
// actions, and deletions, give scm.ErrIgnored.
func Parse(r *http.Request, secret []byte) (*scm.Event, error) {
	body, err := scm.ReadBody(r, scm.MaxBodySize)
	if err != nil {
		return nil, fmt.Errorf("gitea webhook: %w", err)
	}
	c, err := Hook{}.Verify(r, secret)
	if err != nil {
		return nil, err
	}
	c.Write(body)
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("gitea webhook: %w", err)
	}
	delivery := header(r, "Delivery")
	if delivery == "" {
		return nil, fmt.Errorf("gitea webhook: missing X-Gitea-Delivery header: %w", scm.ErrBadRequest)
	}
	var ev *scm.Event
	switch kind := header(r, "Event"); kind {
	case "push":
		ev, err = fromPush(body)
	case "pull_request":
		ev, err = fromPullRequest(body)
	default:
		return nil, fmt.Errorf("gitea webhook: event %q: %w", kind, scm.ErrIgnored)
	}
	if err != nil {
		return nil, err
	}
	ev.Forge, ev.Delivery = scm.ForgeGitea, delivery
	return ev, nil
}

func fromPush(body []byte) (*scm.Event, error) {
	var p pushPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("gitea webhook: decode push payload: %v: %w", err, scm.ErrBadRequest)
	}
	if scm.IsZeroSHA(p.After) {
		return nil, fmt.Errorf("gitea webhook: push deletes %q: %w", p.Ref, scm.ErrIgnored)
	}
	ev := &scm.Event{
		Repo:     p.Repository.FullName,
		CloneURL: p.Repository.CloneURL,
		Ref:      p.Ref,
		Before:   p.Before,
		Commit:   p.After,
		Author:   p.Pusher.Login,
	}
	switch {
	case scm.BranchOf(p.Ref) != "":
		ev.Kind, ev.Branch = scm.KindPush, scm.BranchOf(p.Ref)
	case scm.TagOf(p.Ref) != "":
		ev.Kind, ev.Tag = scm.KindTag, scm.TagOf(p.Ref)
	default:
		return nil, fmt.Errorf("gitea webhook: push to ref %q: %w", p.Ref, scm.ErrIgnored)
	}
	if ev.Repo == "" || !scm.ValidSHA(ev.Commit) {
		return nil, fmt.Errorf("gitea webhook: push without repository or valid after SHA: %w", scm.ErrBadRequest)
	}
	if hc := p.HeadCommit; hc != nil {
		ev.Message = hc.Message
		if hc.Author.Username != "" {
			ev.Author = hc.Author.Username
		} else if hc.Author.Name != "" {
			ev.Author = hc.Author.Name
		}
		if t, err := time.Parse(time.RFC3339, hc.Timestamp); err == nil {
			ev.Timestamp = t
		}
	}
	// The list is complete only for an update with all commits listed.
	if ev.Kind == scm.KindPush && !scm.IsZeroSHA(p.Before) && len(p.Commits) > 0 && p.TotalCommits == len(p.Commits) {
		ev.Changed = changed(p.Commits)
	}
	return ev, nil
}

func changed(commits []commit) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, c := range commits {
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, p := range list {
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// StatusReporter reports commit statuses to a Gitea or Forgejo server.
type StatusReporter struct {
	base   string
	token  string
	client *http.Client
}

var _ scm.StatusReporter = (*StatusReporter)(nil)

// NewStatusReporter returns a reporter for the server at baseURL (e.g.
// https://gitea.example.com) authenticating with an access token.
// httpClient nil means a client with a 30 s timeout.
func NewStatusReporter(baseURL, token string, httpClient *http.Client) (*StatusReporter, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gitea status reporter: base URL %q is not an http(s) URL", baseURL)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &StatusReporter{base: strings.TrimRight(baseURL, "/"), token: token, client: httpClient}, nil
}

// Report creates a commit status (POST /api/v1/repos/{owner}/{repo}/statuses/{sha}).
func (s *StatusReporter) Report(ctx context.Context, st scm.Status) error {
	owner, name, ok := strings.Cut(st.Repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("gitea status for %q: repository is not owner/name", st.Repo)
	}
	if !scm.ValidSHA(st.Commit) {
		return fmt.Errorf("gitea status for %s: commit %q is not a full SHA", st.Repo, st.Commit)
	}
	st.State = st.State.Basic()
	switch st.State {
	case scm.StatePending, scm.StateSuccess, scm.StateFailure, scm.StateError:
	default:
		return fmt.Errorf("gitea status for %s@%s: unknown state %q", st.Repo, st.Commit, st.State)
	}
	body, err := json.Marshal(map[string]string{
		"state":       string(st.State),
		"context":     st.Context,
		"description": scm.Clip(st.Description, 255),
		"target_url":  st.TargetURL,
	})
	if err != nil {
		return err
	}
	u := fmt.Sprintf("%s/api/v1/repos/%s/%s/statuses/%s", s.base, url.PathEscape(owner), url.PathEscape(name), st.Commit)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("gitea status %s for %s@%s: %w", st.State, st.Repo, st.Commit, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "token "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("gitea status %s for %s@%s: %w", st.State, st.Repo, st.Commit, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("gitea status %s for %s@%s: %s: %s", st.State, st.Repo, st.Commit, resp.Status, strings.TrimSpace(string(msg)))
		if scm.Rejected(resp.StatusCode) {
			err = fmt.Errorf("%w: %w", scm.ErrRejected, err)
		}
		return err
	}
	return nil
}
