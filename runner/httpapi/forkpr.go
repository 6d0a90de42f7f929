package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
)

// HeadApproval is, on a run of a pull request from a fork, whether a
// maintainer approved its head commit (runner/trust): until then its
// stages that ask for secrets or deploy wait.
type HeadApproval struct {
	Approved   bool      `json:"approved"`
	ApprovedBy string    `json:"approved_by,omitempty"`
	ApprovedAt time.Time `json:"approved_at,omitzero"`
	// RunID is the run the approval was given on (any run of the same
	// head commit shares it).
	RunID int64 `json:"run_id,omitempty"`
}

// ApprovePRRequest is the optional body of POST /api/v1/runs/{id}/approve.
type ApprovePRRequest struct {
	// Commit, when set, must be the run's head commit: the one the
	// maintainer reviewed.
	Commit string `json:"commit,omitempty"`
}

// withHeadApproval fills in v.HeadApproval for a run of a fork's pull
// request.
func (s *Server) withHeadApproval(ctx context.Context, run *store.Run, v *RunView) error {
	a, needed, err := s.cfg.Runner.PRApproval(ctx, run)
	if err != nil || !needed {
		return err
	}
	v.HeadApproval = &HeadApproval{}
	if a != nil {
		*v.HeadApproval = HeadApproval{Approved: true, ApprovedBy: a.By, ApprovedAt: a.At, RunID: a.RunID}
	}
	return nil
}

// approvePR handles POST /api/v1/runs/{id}/approve: a maintainer approves
// the head commit of a fork's pull request (409 for any other run, or
// when the body names another commit). It answers the run.
func (s *Server) approvePR(w http.ResponseWriter, r *http.Request) {
	run, ok := s.loadRun(w, r)
	if !ok {
		return
	}
	var req ApprovePRRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	if _, err := s.cfg.Runner.ApprovePR(r.Context(), run.ID, req.Commit, user(r)); err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("pull request head approved", "run", run.ID, "commit", run.Commit, "user", user(r))
	run, err := s.cfg.Store.Run(r.Context(), run.ID)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.writeRun(w, r, http.StatusOK, run)
}

// writeRun answers run with its head approval.
func (s *Server) writeRun(w http.ResponseWriter, r *http.Request, code int, run *store.Run) {
	v := s.view(run)
	if err := s.withHeadApproval(r.Context(), run, &v); err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, code, v)
}
