// Package trust decides what a run may be given: the one rule of
// untrusted pull requests (issue 10). A pull request whose head
// repository is not its base repository (a fork) runs code that nobody
// with write access has reviewed. Until a maintainer approves its exact
// head commit, its stages that ask for secrets or deploy wait (Hold), its
// other stages run without secrets, with a read-only clone and
// read-only caches. Whether the head is the base comes from the forge's
// verified webhook payload (scm.PullRequest.SameRepo, kept as
// store.Run.SameRepo), never from commit metadata; an approval is bound to
// the head commit (store.PRApproval), so a new push needs a new one.
//
// The rules are pure functions; the runner's scheduler and secret
// resolver (Load, Hold, Decide) and the transfer service's cache grant
// (Of, Decide) ask them.
package trust

import (
	"context"
	"errors"
	"fmt"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

// Run is what the decision looks at.
type Run struct {
	Event    string // pipeline.Event kind
	SameRepo bool   // pull request from the base repository itself
	// Approved says a maintainer approved the run's exact head commit;
	// a new push is a new commit and needs a new approval.
	Approved bool
}

// Decide reports whether r is trusted: every run that is not a pull
// request, a pull request from the base repository, and a fork's pull
// request whose head commit was approved. why says what is missing when
// it is not.
func Decide(r Run) (trusted bool, why string) {
	switch {
	case r.Event != pipeline.EventPullRequest:
		return true, ""
	case r.SameRepo:
		return true, ""
	case r.Approved:
		return true, ""
	}
	return false, "pull request from a fork: withheld until a maintainer approves its head commit"
}

// Stage is what of a stage Hold looks at.
type Stage struct {
	Secrets     bool   // asks for at least one secret
	Environment string // deploys to this environment ("" for none)
}

// Hold reports whether stage s of run r waits for a maintainer's approval
// of r's head commit: a stage of an untrusted run that asks for secrets
// or deploys. Running it without them would only fail or, worse, deploy
// half-configured; the untrusted run's other stages run at once.
func Hold(r Run, s Stage) bool {
	if ok, _ := Decide(r); ok {
		return false
	}
	return s.Secrets || s.Environment != ""
}

// PendingReason is the pending reason of a stage Hold keeps waiting for
// the approval of head commit head.
func PendingReason(head string) string {
	return "waiting for a maintainer to approve this pull request's head " + head[:min(7, len(head))]
}

// Of is the Run of a stored run without its approval: a fork's pull
// request is not Approved. The transfer service's cache grant uses it as
// is: an approved fork's head gets secrets, but its caches would be
// restored by the default branch's runs long after, so they stay
// read-only (docs/secrets.md).
func Of(run *store.Run) Run {
	return Run{Event: run.Event, SameRepo: run.SameRepo}
}

// Approvals says whether a repository's head commit was approved
// (*store.Store).
type Approvals interface {
	PRApproval(ctx context.Context, repoID int64, sha string) (*store.PRApproval, error)
}

// Load is the Run of a stored run with its approval, looked up only for
// a fork's pull request.
func Load(ctx context.Context, a Approvals, run *store.Run) (Run, error) {
	r := Of(run)
	if ok, _ := Decide(r); ok {
		return r, nil
	}
	_, err := a.PRApproval(ctx, run.RepoID, run.Commit)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return r, nil
	case err != nil:
		return r, fmt.Errorf("approval of %s: %w", run.Commit, err)
	}
	r.Approved = true
	return r, nil
}
