package github

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"mime"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/runnel-ci/runnel/scm"
)

// maxChangedCommits is the number of commits GitHub lists in a push
// payload at most; a push with that many may have more, so its changed
// paths are unknown.
const maxChangedCommits = 20

// Hook parses GitHub webhooks. The zero value is ready to use.
type Hook struct{}

var _ scm.Hook = Hook{}

// Parse implements scm.Hook; see Parse.
func (Hook) Parse(r *http.Request, secret []byte) (*scm.Event, error) { return Parse(r, secret) }

// Parse reads a GitHub webhook request, verifies X-Hub-Signature-256
// against secret on the raw body, and converts a push (branch or tag) or a
// pull_request (opened, synchronize, reopened) into an Event. ping, other
// events and actions, and branch or tag deletions give scm.ErrIgnored.
func Parse(r *http.Request, secret []byte) (*scm.Event, error) {
	body, err := scm.ReadBody(r, scm.MaxBodySize)
	if err != nil {
		return nil, fmt.Errorf("github webhook: %w", err)
	}
	payload, err := verify(r, body, secret)
	if err != nil {
		return nil, err
	}
	delivery := gh.DeliveryID(r)
	if delivery == "" {
		return nil, fmt.Errorf("github webhook: missing %s header: %w", gh.DeliveryIDHeader, scm.ErrBadRequest)
	}
	kind := gh.WebHookType(r)
	if kind == "ping" {
		return nil, fmt.Errorf("github webhook: ping: %w", scm.ErrIgnored)
	}
	if kind != "push" && kind != "pull_request" {
		return nil, fmt.Errorf("github webhook: event %q: %w", kind, scm.ErrIgnored)
	}
	parsed, err := gh.ParseWebHook(kind, payload)
	if err != nil {
		return nil, fmt.Errorf("github webhook: decode %s payload: %v: %w", kind, err, scm.ErrBadRequest)
	}
	var ev *scm.Event
	switch p := parsed.(type) {
	case *gh.PushEvent:
		ev, err = fromPush(p)
	case *gh.PullRequestEvent:
		ev, err = fromPullRequest(p)
	default:
		err = fmt.Errorf("github webhook: payload type %T: %w", parsed, scm.ErrIgnored)
	}
	if err != nil {
		return nil, err
	}
	ev.Forge = scm.ForgeGitHub
	ev.Delivery = delivery
	return ev, nil
}

// Verify implements scm.Hook: X-Hub-Signature-256, an HMAC-SHA256
// of the raw body.
func (Hook) Verify(r *http.Request, secret []byte) (scm.BodyCheck, error) {
	sig := r.Header.Get(gh.SHA256SignatureHeader)
	if sig == "" {
		return nil, fmt.Errorf("github webhook: missing %s header: %w", gh.SHA256SignatureHeader, scm.ErrSignature)
	}
	// Only sha256 is what GitHub sends in this header (go-github's
	// ValidateSignature would also take sha1= and sha512=).
	digest, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return nil, fmt.Errorf("github webhook: signature algorithm is not sha256: %w", scm.ErrSignature)
	}
	c, err := scm.HMACCheck(sha256.New, secret, digest)
	if err != nil {
		return nil, fmt.Errorf("github webhook: %w", err)
	}
	return c, nil
}

// verify checks the SHA-256 signature on the raw body and returns the JSON
// payload (the body, or its "payload" form field).
func verify(r *http.Request, body, secret []byte) ([]byte, error) {
	c, err := Hook{}.Verify(r, secret)
	if err != nil {
		return nil, err
	}
	c.Write(body)
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("github webhook: %w", err)
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("github webhook: content type: %v: %w", err, scm.ErrBadRequest)
	}
	if ct == "application/json" {
		return body, nil // verified above; the library would copy it again
	}
	payload, err := gh.ValidatePayloadFromBody(ct, bytes.NewReader(body), r.Header.Get(gh.SHA256SignatureHeader), secret)
	if err != nil {
		return nil, fmt.Errorf("github webhook: %v: %w", err, scm.ErrBadRequest)
	}
	return payload, nil
}

func fromPush(p *gh.PushEvent) (*scm.Event, error) {
	ref := p.GetRef()
	if p.GetDeleted() || scm.IsZeroSHA(p.GetAfter()) {
		return nil, fmt.Errorf("github webhook: push deletes %q: %w", ref, scm.ErrIgnored)
	}
	ev := &scm.Event{
		Ref:      ref,
		Before:   p.GetBefore(),
		Commit:   p.GetAfter(),
		Repo:     p.GetRepo().GetFullName(),
		CloneURL: p.GetRepo().GetCloneURL(),
	}
	switch {
	case scm.BranchOf(ref) != "":
		ev.Kind = scm.KindPush
		ev.Branch = scm.BranchOf(ref)
	case scm.TagOf(ref) != "":
		ev.Kind = scm.KindTag
		ev.Tag = scm.TagOf(ref)
	default:
		return nil, fmt.Errorf("github webhook: push to ref %q: %w", ref, scm.ErrIgnored)
	}
	if ev.Repo == "" || !scm.ValidSHA(ev.Commit) {
		return nil, fmt.Errorf("github webhook: push without repository or valid after SHA: %w", scm.ErrBadRequest)
	}
	if hc := p.GetHeadCommit(); hc != nil {
		ev.Message = hc.GetMessage()
		ev.Timestamp = hc.GetTimestamp().Time
		ev.Author = authorName(hc.GetAuthor())
	}
	if ev.Author == "" {
		ev.Author = p.GetPusher().GetName()
	}
	// The commit list is complete only for an update of an existing
	// branch with fewer than the 20 commits GitHub lists at most.
	if ev.Kind == scm.KindPush && !p.GetCreated() && !scm.IsZeroSHA(ev.Before) &&
		len(p.Commits) > 0 && len(p.Commits) < maxChangedCommits {
		ev.Changed = changedPaths(p.Commits)
	}
	return ev, nil
}

func authorName(a *gh.CommitAuthor) string {
	if a == nil {
		return ""
	}
	if a.GetLogin() != "" {
		return a.GetLogin()
	}
	if a.GetName() != "" {
		return a.GetName()
	}
	return a.GetEmail()
}

func changedPaths(commits []*gh.HeadCommit) []string {
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

func fromPullRequest(p *gh.PullRequestEvent) (*scm.Event, error) {
	switch a := p.GetAction(); a {
	case "opened", "synchronize", "reopened":
	default:
		return nil, fmt.Errorf("github webhook: pull_request action %q: %w", a, scm.ErrIgnored)
	}
	pr := p.GetPullRequest()
	if pr == nil {
		return nil, fmt.Errorf("github webhook: pull_request without pull_request object: %w", scm.ErrBadRequest)
	}
	num := p.GetNumber()
	if num == 0 {
		num = pr.GetNumber()
	}
	ev := &scm.Event{
		Kind:     scm.KindPullRequest,
		Repo:     p.GetRepo().GetFullName(),
		CloneURL: p.GetRepo().GetCloneURL(),
		Ref:      fmt.Sprintf("refs/pull/%d/head", num),
		Branch:   pr.GetBase().GetRef(),
		Before:   p.GetBefore(),
		Commit:   pr.GetHead().GetSHA(),
		Message:  pr.GetTitle(),
		Author:   pr.GetUser().GetLogin(),
		PullRequest: &scm.PullRequest{
			Number:       num,
			Title:        pr.GetTitle(),
			HeadRef:      pr.GetHead().GetRef(),
			HeadSHA:      pr.GetHead().GetSHA(),
			BaseRef:      pr.GetBase().GetRef(),
			BaseSHA:      pr.GetBase().GetSHA(),
			HeadCloneURL: pr.GetHead().GetRepo().GetCloneURL(),
			HeadRepo:     pr.GetHead().GetRepo().GetFullName(),
			SameRepo: scm.SameRepo(pr.GetHead().GetRepo().GetID(), pr.GetBase().GetRepo().GetID(),
				pr.GetHead().GetRepo().GetFullName(), pr.GetBase().GetRepo().GetFullName()),
		},
	}
	if ts := pr.GetUpdatedAt(); !ts.IsZero() {
		ev.Timestamp = ts.Time
	}
	if ev.Repo == "" || !scm.ValidSHA(ev.Commit) || ev.Branch == "" {
		return nil, fmt.Errorf("github webhook: pull_request without repository, head SHA or base ref: %w", scm.ErrBadRequest)
	}
	return ev, nil
}
