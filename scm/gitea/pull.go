package gitea

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

type repository struct {
	ID       int64  `json:"id"`
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
}

// branch is Gitea's PRBranchInfo: one side of a pull request.
type branch struct {
	Ref    string      `json:"ref"`
	SHA    string      `json:"sha"`
	RepoID int64       `json:"repo_id"`
	Repo   *repository `json:"repo"`
}

type pullPayload struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	PullRequest *struct {
		Number    int    `json:"number"`
		Title     string `json:"title"`
		User      user   `json:"user"`
		Base      branch `json:"base"`
		Head      branch `json:"head"`
		UpdatedAt string `json:"updated_at"`
	} `json:"pull_request"`
	Repository repository `json:"repository"`
	Sender     user       `json:"sender"`
}

// id returns the repository id a branch info gives, 0 when none.
func (b branch) id() int64 {
	if b.RepoID != 0 {
		return b.RepoID
	}
	if b.Repo != nil {
		return b.Repo.ID
	}
	return 0
}

func (b branch) repo() repository {
	if b.Repo == nil {
		return repository{}
	}
	return *b.Repo
}

// fromPullRequest converts a pull_request payload. Gitea names its
// actions opened, reopened and synchronized (new commits on the head
// branch); the others (closed, edited, labels, reviews) start nothing.
func fromPullRequest(body []byte) (*scm.Event, error) {
	var p pullPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("gitea webhook: decode pull_request payload: %v: %w", err, scm.ErrBadRequest)
	}
	switch p.Action {
	case "opened", "reopened", "synchronized":
	default:
		return nil, fmt.Errorf("gitea webhook: pull_request action %q: %w", p.Action, scm.ErrIgnored)
	}
	pr := p.PullRequest
	if pr == nil {
		return nil, fmt.Errorf("gitea webhook: pull_request without pull_request object: %w", scm.ErrBadRequest)
	}
	num := p.Number
	if num == 0 {
		num = pr.Number
	}
	head, base := pr.Head.repo(), pr.Base.repo()
	if base.FullName == "" {
		base = p.Repository
	}
	author := pr.User.Login
	if author == "" {
		author = pr.User.Username
	}
	ev := &scm.Event{
		Kind:     scm.KindPullRequest,
		Repo:     p.Repository.FullName,
		CloneURL: p.Repository.CloneURL,
		Ref:      fmt.Sprintf("refs/pull/%d/head", num),
		Branch:   pr.Base.Ref,
		Commit:   pr.Head.SHA,
		Message:  pr.Title,
		Author:   author,
		PullRequest: &scm.PullRequest{
			Number:       num,
			Title:        pr.Title,
			HeadRef:      pr.Head.Ref,
			HeadSHA:      pr.Head.SHA,
			BaseRef:      pr.Base.Ref,
			BaseSHA:      pr.Base.SHA,
			HeadCloneURL: head.CloneURL,
			HeadRepo:     head.FullName,
			SameRepo:     scm.SameRepo(pr.Head.id(), pr.Base.id(), head.FullName, base.FullName),
		},
	}
	if t, err := time.Parse(time.RFC3339, pr.UpdatedAt); err == nil {
		ev.Timestamp = t
	}
	if ev.Repo == "" || num <= 0 || !scm.ValidSHA(ev.Commit) || ev.Branch == "" {
		return nil, fmt.Errorf("gitea webhook: pull_request without repository, number, head SHA or base ref: %w", scm.ErrBadRequest)
	}
	return ev, nil
}
