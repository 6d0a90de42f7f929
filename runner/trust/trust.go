// Package trust decides what a run may be given: the one rule of
// untrusted pull requests (issue 10). A pull request whose head
// repository is not its base repository (a fork) runs code that nobody
// with write access has reviewed, so until a maintainer approves its exact
// head commit it gets no secrets and cannot write the repository's caches
// (and, as for every pull request, no environment stages run:
// pipeline.Environment.Allows). Whether the head is the base comes from
// the forge's verified webhook payload (scm.PullRequest.SameRepo, kept as
// store.Run.SameRepo), never from commit metadata.
//
// The rule is a pure function; the runner's secret resolver
// (runner.Config.Trusted) and the transfer service's cache grant
// (transfers.CacheWritable) both ask it.
package trust

import (
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

// Of is the Run of a stored run. Approvals of a fork's head commit are
// not recorded yet, so a fork's pull request is never Approved.
func Of(run *store.Run) Run {
	return Run{Event: run.Event, SameRepo: run.SameRepo}
}
