package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/cron"
	"github.com/runnel-ci/runnel/runner/store"
)

// ScheduleView is a schedule as the API shows it.
type ScheduleView struct {
	Name      string            `json:"name"`
	Kind      string            `json:"kind"` // cron or once
	Cron      string            `json:"cron,omitempty"`
	Timezone  string            `json:"timezone,omitempty"`
	Branch    string            `json:"branch"`
	Commit    string            `json:"commit,omitempty"`
	Inputs    map[string]string `json:"inputs,omitempty"`
	Missed    string            `json:"missed"`
	NextAt    time.Time         `json:"next_at,omitzero"`
	CreatedBy string            `json:"created_by,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	Last      *TickView         `json:"last,omitempty"`
}

// TickView is a claimed tick of a schedule.
type TickView struct {
	At       time.Time `json:"at"`
	State    string    `json:"state"` // claimed, started, failed
	RunID    int64     `json:"run_id,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	Error    string    `json:"error,omitempty"`
	// ClaimedBy is the install id of the server that claimed it last.
	ClaimedBy string `json:"claimed_by,omitempty"`
}

func tickView(t *store.Tick) *TickView {
	if t == nil {
		return nil
	}
	return &TickView{At: t.At, State: t.State, RunID: t.RunID, Attempts: t.Attempts, Error: t.Error, ClaimedBy: t.ClaimedBy}
}

func scheduleView(sc *store.Schedule) ScheduleView {
	v := ScheduleView{Name: sc.Name, Kind: sc.Kind, Branch: sc.Branch, Commit: sc.Commit, Inputs: sc.Inputs, Missed: sc.Missed,
		NextAt: sc.NextAt, CreatedBy: sc.By, CreatedAt: sc.Created, Last: tickView(sc.Last)}
	if sc.Kind == store.ScheduleCron {
		v.Cron, v.Timezone = sc.Spec, sc.Timezone
	}
	return v
}

// ScheduleRequest is the body of POST /api/v1/repos/{repo}/schedules: a
// cron schedule (cron set; admin) or a one-off run (at set; operator).
type ScheduleRequest struct {
	Name     string            `json:"name"`
	Cron     string            `json:"cron"`
	Timezone string            `json:"timezone"`
	At       time.Time         `json:"at"`
	Branch   string            `json:"branch"`
	Commit   string            `json:"commit"`
	Inputs   map[string]string `json:"inputs"`
	Missed   string            `json:"missed"`
}

var scheduleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// maxInputs bounds the inputs of a trigger or schedule.
const maxInputs = 50

// check validates req and returns the schedule to store (NextAt set).
func (req *ScheduleRequest) check(repo *store.Repo, now time.Time) (store.Schedule, error) {
	sc := store.Schedule{RepoID: repo.ID, Name: req.Name, Branch: req.Branch, Commit: req.Commit, Inputs: req.Inputs}
	if sc.Branch == "" {
		sc.Branch = repo.DefaultBranch
	}
	missed, err := cron.ParseMissed(req.Missed)
	if err != nil {
		return sc, err
	}
	sc.Missed = string(missed)
	if err := checkInputs(req.Inputs); err != nil {
		return sc, err
	}
	switch {
	case req.Cron != "" && !req.At.IsZero():
		return sc, errors.New("give cron or at, not both")
	case req.Cron != "":
		if req.Commit != "" {
			return sc, errors.New("a cron schedule runs the branch's head; commit is for one-off runs")
		}
		spec, err := cron.Parse(req.Cron, req.Timezone)
		if err != nil {
			return sc, err
		}
		sc.Kind, sc.Spec, sc.Timezone, sc.NextAt = store.ScheduleCron, req.Cron, req.Timezone, spec.Next(now)
		if sc.Timezone == "" {
			sc.Timezone = "UTC"
		}
	case !req.At.IsZero():
		if req.Timezone != "" {
			return sc, errors.New("timezone is for cron schedules; give at with its offset")
		}
		if req.At.Before(now.Add(-time.Minute)) {
			return sc, fmt.Errorf("at %s is in the past", req.At.Format(time.RFC3339))
		}
		sc.Kind, sc.NextAt = store.ScheduleOnce, req.At.UTC()
		if sc.Name == "" {
			var b [3]byte
			rand.Read(b[:])
			sc.Name = "at-" + req.At.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
		}
	default:
		return sc, errors.New("give cron (a cron schedule) or at (a one-off run)")
	}
	if !scheduleNameRE.MatchString(sc.Name) {
		return sc, fmt.Errorf("name %q: want letters, digits, '_', '.', '-' (at most 63)", sc.Name)
	}
	return sc, nil
}

// checkInputs bounds the inputs of a request (names and sizes); their
// types are the pipeline's to check.
func checkInputs(in map[string]string) error {
	if len(in) > maxInputs {
		return fmt.Errorf("more than %d inputs", maxInputs)
	}
	for k, v := range in {
		if k == "" || len(k) > 100 || len(v) > 16<<10 {
			return fmt.Errorf("input %.40q: names are 1..100 bytes, values at most 16 KiB", k)
		}
	}
	return nil
}

// listSchedules handles GET /api/v1/repos/{repo...}/schedules.
func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request, name string) {
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	list, err := s.cfg.Store.Schedules(r.Context(), repo.ID)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]ScheduleView, 0, len(list))
	for _, sc := range list {
		out = append(out, scheduleView(sc))
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": out})
}

// listTicks handles GET /api/v1/repos/{repo...}/schedules/{name}/ticks.
func (s *Server) listTicks(w http.ResponseWriter, r *http.Request, name, sched string) {
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	sc, err := s.cfg.Store.ScheduleByName(r.Context(), repo.ID, sched)
	if err != nil {
		s.storeError(w, err)
		return
	}
	limit, ok := queryLimit(w, r.URL.Query())
	if !ok {
		return
	}
	ticks, err := s.cfg.Store.Ticks(r.Context(), sc.ID, limit)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]*TickView, 0, len(ticks))
	for _, t := range ticks {
		out = append(out, tickView(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticks": out})
}

// createSchedule handles POST /api/v1/repos/{repo...}/schedules.
func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request, name string) {
	var req ScheduleRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	s.addSchedule(w, r, name, req)
}

// addSchedule checks and stores a schedule: a cron one needs admin, a
// one-off run operator (which the route checked).
func (s *Server) addSchedule(w http.ResponseWriter, r *http.Request, name string, req ScheduleRequest) {
	if req.Cron != "" && !s.permitted(w, r, access.Administer) {
		return
	}
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	sc, err := req.check(repo, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sc.By = user(r)
	if sc.Kind == store.ScheduleOnce {
		// The inputs are checked against the pipeline now, as for a run
		// started at once, and again when the run starts.
		if _, err := s.cfg.Runner.CheckManual(r.Context(), runner.ManualRequest{Repo: repo, Branch: sc.Branch,
			Commit: sc.Commit, Inputs: sc.Inputs, User: sc.By}); err != nil {
			s.manualError(w, err)
			return
		}
	}
	created, err := s.cfg.Store.CreateSchedule(r.Context(), sc)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if s.cfg.ScheduleAdded != nil {
		s.cfg.ScheduleAdded()
	}
	s.log.Info("schedule added", "repo", repo.Name, "schedule", created.Name, "kind", created.Kind, "next", created.NextAt, "by", sc.By)
	code := http.StatusCreated
	if created.Kind == store.ScheduleOnce {
		code = http.StatusAccepted
	}
	writeJSON(w, code, scheduleView(created))
}

// deleteSchedule handles DELETE /api/v1/repos/{repo...}/schedules/{name}:
// admin for a cron schedule, operator for a one-off run.
func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request, name, sched string) {
	repo, err := s.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	sc, err := s.cfg.Store.ScheduleByName(r.Context(), repo.ID, sched)
	if err != nil {
		s.storeError(w, err)
		return
	}
	need := access.Operate
	if sc.Kind == store.ScheduleCron {
		need = access.Administer
	}
	if !s.permitted(w, r, need) {
		return
	}
	if err := s.cfg.Store.DeleteSchedule(r.Context(), repo.ID, sched); err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("schedule removed", "repo", repo.Name, "schedule", sched, "by", user(r))
	w.WriteHeader(http.StatusNoContent)
}

// scheduleParts splits "{repo...}/schedules/{name}[/ticks]".
func scheduleParts(rest string) (repo, name string, ticks, ok bool) {
	i := strings.LastIndex(rest, "/schedules/")
	if i <= 0 {
		return "", "", false, false
	}
	repo, name = rest[:i], rest[i+len("/schedules/"):]
	name, ticks = strings.CutSuffix(name, "/ticks")
	return repo, name, ticks, name != "" && !strings.Contains(name, "/")
}
