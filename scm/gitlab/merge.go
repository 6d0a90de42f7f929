package gitlab

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

type project struct {
	PathWithNamespace string `json:"path_with_namespace"`
	GitHTTPURL        string `json:"git_http_url"`
}

type mergePayload struct {
	ObjectKind string `json:"object_kind"`
	User       struct {
		Username string `json:"username"`
		Name     string `json:"name"`
	} `json:"user"`
	Project project `json:"project"`
	Attrs   *struct {
		IID             int      `json:"iid"`
		Action          string   `json:"action"`
		OldRev          string   `json:"oldrev"`
		Title           string   `json:"title"`
		SourceBranch    string   `json:"source_branch"`
		TargetBranch    string   `json:"target_branch"`
		SourceProjectID int64    `json:"source_project_id"`
		TargetProjectID int64    `json:"target_project_id"`
		Source          *project `json:"source"`
		Target          *project `json:"target"`
		LastCommit      struct {
			ID        string `json:"id"`
			Timestamp string `json:"timestamp"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
}

// fromMergeRequest converts a "Merge Request Hook" payload. A merge
// request is built when it is opened or reopened, and on an update that
// brought new commits: GitLab sets oldrev only then (an update of the
// title, labels or assignees has none). Close, merge and approvals start
// nothing.
func fromMergeRequest(body []byte) (*scm.Event, error) {
	var p mergePayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("gitlab webhook: decode merge request payload: %v: %w", err, scm.ErrBadRequest)
	}
	if p.ObjectKind != "merge_request" {
		return nil, fmt.Errorf("gitlab webhook: object_kind %q in a merge_request event: %w", p.ObjectKind, scm.ErrBadRequest)
	}
	a := p.Attrs
	if a == nil {
		return nil, fmt.Errorf("gitlab webhook: merge request without object_attributes: %w", scm.ErrBadRequest)
	}
	switch {
	case a.Action == "open" || a.Action == "reopen":
	case a.Action == "update" && a.OldRev != "":
	default:
		return nil, fmt.Errorf("gitlab webhook: merge request action %q without new commits: %w", a.Action, scm.ErrIgnored)
	}
	source, target := project{}, p.Project
	if a.Source != nil {
		source = *a.Source
	}
	if a.Target != nil && a.Target.PathWithNamespace != "" {
		target = *a.Target
	}
	author := p.User.Username
	if author == "" {
		author = p.User.Name
	}
	ev := &scm.Event{
		Kind:     scm.KindPullRequest,
		Repo:     p.Project.PathWithNamespace,
		CloneURL: p.Project.GitHTTPURL,
		// GitLab keeps every merge request's head in the target project
		// under this ref, also when it comes from a fork.
		Ref:     fmt.Sprintf("refs/merge-requests/%d/head", a.IID),
		Branch:  a.TargetBranch,
		Before:  a.OldRev,
		Commit:  a.LastCommit.ID,
		Message: a.Title,
		Author:  author,
		PullRequest: &scm.PullRequest{
			Number:       a.IID,
			Title:        a.Title,
			HeadRef:      a.SourceBranch,
			HeadSHA:      a.LastCommit.ID,
			BaseRef:      a.TargetBranch,
			HeadCloneURL: source.GitHTTPURL,
			HeadRepo:     source.PathWithNamespace,
			SameRepo:     scm.SameRepo(a.SourceProjectID, a.TargetProjectID, source.PathWithNamespace, target.PathWithNamespace),
		},
	}
	if t, err := time.Parse(time.RFC3339, a.LastCommit.Timestamp); err == nil {
		ev.Timestamp = t
	}
	if ev.Repo == "" || a.IID <= 0 || !scm.ValidSHA(ev.Commit) || ev.Branch == "" {
		return nil, fmt.Errorf("gitlab webhook: merge request without project, iid, last commit SHA or target branch: %w", scm.ErrBadRequest)
	}
	return ev, nil
}
