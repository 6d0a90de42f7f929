package ui

import (
	"context"
	"net/http"
	"strconv"

	"github.com/runnel-ci/runnel/runner/store"
)

// headView is, on the page of a run of a pull request from a fork, the
// approval of its head commit (runner/trust); Approval is nil before one.
type headView struct {
	Approval *store.PRApproval
}

// headApproval returns the headView of run, nil when run needs no
// approval (not a fork's pull request).
func (h *Handler) headApproval(ctx context.Context, run *store.Run) (*headView, error) {
	a, needed, err := h.cfg.Actions.PRApproval(ctx, run)
	if err != nil || !needed {
		return nil, err
	}
	return &headView{Approval: a}, nil
}

// approveHead approves the head commit of a fork's pull request: the
// form names the commit the page showed, so a page older than the run's
// head cannot approve another commit.
func (h *Handler) approveHead(w http.ResponseWriter, r *http.Request) {
	run, ok := h.loadRun(w, r)
	if !ok {
		return
	}
	user := sessionOf(r).user
	if _, err := h.cfg.Actions.ApprovePR(r.Context(), run.ID, r.PostFormValue("commit"), user); err != nil {
		h.storeError(w, r, "approve the head commit", err)
		return
	}
	h.log.Info("ui head approval", "run", run.ID, "commit", run.Commit, "user", user)
	http.Redirect(w, r, "/runs/"+strconv.FormatInt(run.ID, 10)+"?done=head", http.StatusSeeOther)
}
