package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

// RunView is a run as the API shows it.
type RunView struct {
	ID            int64                 `json:"id"`
	Number        int64                 `json:"number"`
	Repo          string                `json:"repo"`
	Event         string                `json:"event"`
	Ref           string                `json:"ref,omitempty"`
	Branch        string                `json:"branch,omitempty"`
	Tag           string                `json:"tag,omitempty"`
	Commit        string                `json:"commit"`
	SourceURL     string                `json:"source_url,omitempty"`
	Message       string                `json:"message,omitempty"`
	Author        string                `json:"author,omitempty"`
	Inputs        map[string]string     `json:"inputs,omitempty"`
	Schedule      string                `json:"schedule,omitempty"`
	Status        store.Status          `json:"status"`
	Reason        string                `json:"reason,omitempty"`
	PendingReason string                `json:"pending_reason,omitempty"`
	Trigger       string                `json:"trigger"`
	ParentID      int64                 `json:"parent_id,omitempty"`
	CreatedAt     time.Time             `json:"created_at"`
	QueuedAt      time.Time             `json:"queued_at,omitzero"`
	StartedAt     time.Time             `json:"started_at,omitzero"`
	FinishedAt    time.Time             `json:"finished_at,omitzero"`
	Diagnostics   []pipeline.Diagnostic `json:"diagnostics,omitempty"`
	// HeadApproval is set on a run of a fork's pull request, by the
	// endpoints that answer one run.
	HeadApproval *HeadApproval `json:"head_approval,omitempty"`
	Stages       []StageView   `json:"stages,omitempty"`
}

// StageView is a stage of a RunView.
type StageView struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Status        store.Status   `json:"status"`
	Reason        string         `json:"reason,omitempty"`
	PendingReason string         `json:"pending_reason,omitempty"`
	Attempt       int            `json:"attempt"`
	Agent         string         `json:"agent,omitempty"`
	Needs         []string       `json:"needs,omitempty"`
	Environment   string         `json:"environment,omitempty"`
	Concurrency   string         `json:"concurrency,omitempty"`
	Approval      store.Approval `json:"approval,omitempty"`
	ApprovedBy    string         `json:"approved_by,omitempty"`
	QueuedAt      time.Time      `json:"queued_at,omitzero"`
	StartedAt     time.Time      `json:"started_at,omitzero"`
	FinishedAt    time.Time      `json:"finished_at,omitzero"`
	Steps         []StepView     `json:"steps"`
}

// StepView is a step of a StageView.
type StepView struct {
	Name         string       `json:"name"`
	Position     int          `json:"position"`
	Status       store.Status `json:"status"`
	ExitCode     *int         `json:"exit_code,omitempty"`
	Attempts     int          `json:"attempts,omitempty"`
	AllowFailure bool         `json:"allow_failure,omitempty"`
	StartedAt    time.Time    `json:"started_at,omitzero"`
	FinishedAt   time.Time    `json:"finished_at,omitzero"`
	Log          string       `json:"log"`
}

func (s *Server) view(run *store.Run) RunView {
	v := RunView{ID: run.ID, Number: run.Number, Repo: run.Repo, Event: run.Event, Ref: run.Ref, Branch: run.Branch, Tag: run.Tag,
		Commit: run.Commit, SourceURL: gitmirror.Redact(run.SourceURL), Message: run.Message, Author: run.Author, Inputs: run.Inputs, Schedule: run.Schedule, Status: run.Status, Reason: run.Reason,
		PendingReason: run.PendingReason, Trigger: run.Trigger, ParentID: run.ParentID, CreatedAt: run.CreatedAt,
		QueuedAt: run.QueuedAt, StartedAt: run.StartedAt, FinishedAt: run.FinishedAt}
	for _, st := range run.Stages {
		sv := StageView{ID: st.Key, Name: st.Name, Status: st.Status, Reason: st.Reason, PendingReason: st.PendingReason,
			Attempt: st.Attempt, Agent: st.Agent, Needs: st.Needs, Environment: st.Environment, Concurrency: st.Concurrency,
			Approval: st.Approval, ApprovedBy: st.ApprovedBy, QueuedAt: st.QueuedAt, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
			Steps: []StepView{}}
		for _, step := range st.Steps {
			sv.Steps = append(sv.Steps, StepView{Name: step.Name, Position: step.Position, Status: step.Status, ExitCode: step.ExitCode,
				Attempts: step.Attempts, AllowFailure: step.AllowFailure, StartedAt: step.StartedAt, FinishedAt: step.FinishedAt,
				Log: fmt.Sprintf("/api/v1/runs/%d/stages/%s/steps/%d/log", run.ID, pathEscape(st.Key), step.Position)})
		}
		v.Stages = append(v.Stages, sv)
	}
	v.Diagnostics = s.cfg.Runner.Diagnostics(run)
	return v
}

func pathEscape(s string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F", "?", "%3F", "#", "%23", " ", "%20").Replace(s)
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.RunFilter{Branch: q.Get("branch"), Event: q.Get("event")}
	if name := q.Get("repo"); name != "" {
		repo, err := s.cfg.Store.Repo(r.Context(), name)
		if err != nil {
			s.storeError(w, err)
			return
		}
		f.RepoID = repo.ID
	}
	for _, st := range q["status"] {
		for _, one := range strings.Split(st, ",") {
			if !store.Status(one).Valid() {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown status %q", one))
				return
			}
			f.Status = append(f.Status, store.Status(one))
		}
	}
	var ok bool
	if f.Limit, ok = queryLimit(w, q); !ok {
		return
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "before must be a run id")
			return
		}
		f.Before = n
	}
	runs, err := s.cfg.Store.ListRuns(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]RunView, 0, len(runs))
	for _, run := range runs {
		out = append(out, s.view(run))
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (s *Server) loadRun(w http.ResponseWriter, r *http.Request) (*store.Run, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "run id must be a number")
		return nil, false
	}
	run, err := s.cfg.Store.Run(r.Context(), id)
	if err != nil {
		s.storeError(w, err)
		return nil, false
	}
	return run, true
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	run, ok := s.loadRun(w, r)
	if !ok {
		return
	}
	s.writeRun(w, r, http.StatusOK, run)
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	run, ok := s.loadRun(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Runner.Cancel(r.Context(), run.ID); err != nil {
		s.storeError(w, err)
		return
	}
	run, _ = s.cfg.Store.Run(r.Context(), run.ID)
	writeJSON(w, http.StatusOK, s.view(run))
}

func (s *Server) rerun(w http.ResponseWriter, r *http.Request) {
	run, ok := s.loadRun(w, r)
	if !ok {
		return
	}
	nr, err := s.cfg.Runner.Rerun(r.Context(), run.ID)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.view(nr))
}

func (s *Server) approve(ok bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		run, found := s.loadRun(w, r)
		if !found {
			return
		}
		decide := s.cfg.Runner.Reject
		if ok {
			decide = s.cfg.Runner.Approve
		}
		if err := decide(r.Context(), run.ID, r.PathValue("stage"), user(r)); err != nil {
			s.storeError(w, err)
			return
		}
		run, _ = s.cfg.Store.Run(r.Context(), run.ID)
		writeJSON(w, http.StatusOK, s.view(run))
	}
}

// queryLimit reads the optional ?limit= of a list endpoint (1..1000; 0
// means the store's default). ok is false once it has answered 400.
func queryLimit(w http.ResponseWriter, q url.Values) (limit int, ok bool) {
	l := q.Get("limit")
	if l == "" {
		return 0, true
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > 1000 {
		writeError(w, http.StatusBadRequest, "limit must be 1..1000")
		return 0, false
	}
	return n, true
}
