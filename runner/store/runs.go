package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
)

// Run is one pipeline run of a repo.
type Run struct {
	ID     int64
	RepoID int64
	Repo   string // the repo's name
	Number int64  // per-repo sequence, from 1
	// Event is the pipeline event kind (pipeline.EventPush, ...).
	Event  string
	Ref    string
	Branch string
	Tag    string
	Commit string
	// SourceURL is where the run's code was resolved from once, at
	// trigger: a clone URL or the absolute path of a bare repository on
	// the server's host; "" for runs from before it was stored. Dispatch
	// and reruns use it with Commit and Ref.
	SourceURL  string
	Message    string
	Author     string
	CommitTime time.Time
	Inputs     map[string]string
	Schedule   string // the schedule that started the run, if one did
	// SameRepo is true for a pull request whose head repository is the
	// base repository, as the forge's payload said; false for a pull
	// request from a fork (or not known to be from the base repository)
	// and for other events.
	SameRepo bool
	// Plan is the compiled plan; nil when the run has none (yet), and
	// in lists (ListRuns, ActiveRuns): load it with Run.
	Plan *pipeline.Plan
	// Diagnostics say why a run ended error before it started (a
	// pipeline that did not compile, a source that could not be read);
	// loaded by Run only.
	Diagnostics   []pipeline.Diagnostic
	Status        Status
	Reason        string
	PendingReason string
	Trigger       string // Trigger* constant
	ParentID      int64  // the run this one re-runs; 0 if none
	CreatedAt     time.Time
	QueuedAt      time.Time
	StartedAt     time.Time
	FinishedAt    time.Time
	// Stages in plan order, each with its steps; filled by Run, and
	// UnfinishedRuns, nil in lists.
	Stages []*Stage
}

// NewRun is the input of CreateRun.
type NewRun struct {
	RepoID     int64
	Event      pipeline.Event // Kind, Ref, Branch, Tag, Commit, Message, Author, Inputs, Schedule are stored
	CommitTime time.Time
	Trigger    string // Trigger* constant
	ParentID   int64  // for re-runs
	// SourceURL is the resolved source (see Run.SourceURL).
	SourceURL string
	// SameRepo: see Run.SameRepo.
	SameRepo bool
	// DeliveryID, when not 0, is the deliveries row this run is made
	// for: the same transaction marks it DeliveryProcessed (see CreateRun).
	DeliveryID int64
	// TickID, when not 0, is the schedule tick this run is made for: the
	// same transaction marks it started, or fails with ErrConflict
	// (creating nothing) when the tick has its run already.
	TickID int64
	// Plan may be nil: the run is finished at once (e.g. Status error
	// with rules.ReasonPipelineInvalid, saying why in Diagnostics).
	Plan        *pipeline.Plan
	Diagnostics []pipeline.Diagnostic
	// Status is the initial status, StatusPending when empty. A terminal
	// status also sets FinishedAt.
	Status Status
	Reason string
}

// Statements of CreateRun, prepared once (see txQueries).
const (
	qNextRunNumber = `UPDATE repos SET last_run_number = last_run_number + 1 WHERE id = ? RETURNING last_run_number`
	qInsertRun     = `INSERT INTO runs (repo_id, number, event, ref, branch, tag, commit_sha,
			commit_message, commit_time, author, inputs, plan, status, reason, trigger_kind, parent_id, created_at, finished_at, source_url,
			schedule, diagnostics, same_repo) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	qInsertStage = `INSERT INTO stages (run_id, stage_key, name, position, status, needs,
			environment, concurrency, approval) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	qInsertStep = `INSERT INTO steps (stage_id, name, position, status, allow_failure)
				VALUES (?, ?, ?, ?, ?)`
)

// CreateRun creates a run, allocating the repo's next run number, and the
// stages and steps of its plan, in one transaction. It returns the run
// with its stages and steps.
//
// When nr.DeliveryID is set, the same transaction
// marks that delivery DeliveryProcessed with this run, and fails with
// ErrConflict (creating nothing) if the delivery is no longer
// DeliveryReceived: a delivery starts at most one run, even when it is
// triggered again after a crash or by two workers at once.
func (s *Store) CreateRun(ctx context.Context, nr NewRun) (*Run, error) {
	if nr.Status == "" {
		nr.Status = StatusPending
	}
	if !nr.Status.Valid() {
		return nil, fmt.Errorf("create run: invalid status %q", nr.Status)
	}
	if nr.Event.Kind == "" {
		return nil, fmt.Errorf("create run: event kind is required")
	}
	inputs, err := json.Marshal(nonNilMap(nr.Event.Inputs))
	if err != nil {
		return nil, fmt.Errorf("create run: inputs: %w", err)
	}
	plan, err := encodePlan(nr.Plan)
	if err != nil {
		return nil, err
	}
	var diags []byte
	if nr.Diagnostics != nil {
		if diags, err = json.Marshal(nr.Diagnostics); err != nil {
			return nil, fmt.Errorf("create run: diagnostics: %w", err)
		}
	}
	now := s.now().UnixMicro()
	var finished any
	if nr.Status.Terminal() {
		finished = now
	}
	var id int64
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var number int64
		next, err := s.txStmt(ctx, tx, qNextRunNumber)
		if err == nil {
			err = next.QueryRowContext(ctx, nr.RepoID).Scan(&number)
		}
		if err != nil {
			return fmt.Errorf("create run: next number of repo %d: %w", nr.RepoID, notFound(err))
		}
		ev := nr.Event
		ins, err := s.txStmt(ctx, tx, qInsertRun)
		if err != nil {
			return fmt.Errorf("create run %d of repo %d: %w", number, nr.RepoID, err)
		}
		err = ins.QueryRowContext(ctx,
			nr.RepoID, number, ev.Kind, ev.Ref, ev.Branch, ev.Tag, ev.Commit, ev.Message, ts(nr.CommitTime), ev.Author,
			string(inputs), plan, nr.Status, nr.Reason, nr.Trigger, nullID(nr.ParentID), now, finished, nr.SourceURL,
			ev.Schedule, string(diags), nr.SameRepo).Scan(&id)
		if err != nil {
			return fmt.Errorf("create run %d of repo %d: %w", number, nr.RepoID, err)
		}
		if err := s.linkDelivery(ctx, tx, nr.DeliveryID, id, now); err != nil {
			return err
		}
		if err := s.linkTick(ctx, tx, nr.TickID, id); err != nil {
			return err
		}
		return s.insertStages(ctx, tx, id, nr.Plan)
	})
	if err != nil {
		return nil, err
	}
	return s.Run(ctx, id)
}

func encodePlan(p *pipeline.Plan) (string, error) {
	if p == nil {
		return "", nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode plan: %w", err)
	}
	return string(b), nil
}

func (s *Store) insertStages(ctx context.Context, tx *sql.Tx, runID int64, p *pipeline.Plan) error {
	if p == nil {
		return nil
	}
	for i, st := range p.Stages {
		needs, err := json.Marshal(nonNilSlice(st.Needs))
		if err != nil {
			return fmt.Errorf("stage %s: needs: %w", st.ID, err)
		}
		approval := ApprovalNone
		if st.Approval {
			approval = ApprovalWaiting
		}
		var stageID int64
		ins, err := s.txStmt(ctx, tx, qInsertStage)
		if err != nil {
			return fmt.Errorf("create stage %s of run %d: %w", st.ID, runID, err)
		}
		err = ins.QueryRowContext(ctx,
			runID, st.ID, st.Name, i, StatusPending, string(needs), st.Environment, st.Concurrency, approval).Scan(&stageID)
		if err != nil {
			if isUnique(err) {
				err = fmt.Errorf("%w: stage id used twice", ErrDuplicate)
			}
			return fmt.Errorf("create stage %s of run %d: %w", st.ID, runID, err)
		}
		for j, step := range st.Steps {
			ins, err := s.txStmt(ctx, tx, qInsertStep)
			if err == nil {
				_, err = ins.ExecContext(ctx, stageID, step.Name, j, StatusPending, step.AllowFailure)
			}
			if err != nil {
				return fmt.Errorf("create step %s of stage %s: %w", step.Name, st.ID, err)
			}
		}
	}
	return nil
}

func nonNilSlice(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func exists(ctx context.Context, q querier, query string, args ...any) error {
	var one int
	return notFound(q.QueryRowContext(ctx, query, args...).Scan(&one))
}

const runCols = `r.id, r.repo_id, p.name, r.number, r.event, r.ref, r.branch, r.tag, r.commit_sha, r.commit_message,
	r.commit_time, r.author, r.inputs, r.status, r.reason, r.pending_reason, r.trigger_kind, r.parent_id,
	r.created_at, r.queued_at, r.started_at, r.finished_at, r.source_url, r.schedule, r.same_repo`

const runFrom = ` FROM runs r JOIN repos p ON p.id = r.repo_id`

func scanRun(row interface{ Scan(...any) error }, extra ...any) (*Run, error) {
	var r Run
	var inputs string
	var parent, commitTime, created, queued, started, finished sql.NullInt64
	dest := []any{&r.ID, &r.RepoID, &r.Repo, &r.Number, &r.Event, &r.Ref, &r.Branch, &r.Tag, &r.Commit, &r.Message,
		&commitTime, &r.Author, &inputs, &r.Status, &r.Reason, &r.PendingReason, &r.Trigger, &parent,
		&created, &queued, &started, &finished, &r.SourceURL, &r.Schedule, &r.SameRepo}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(inputs), &r.Inputs); err != nil {
		return nil, fmt.Errorf("run %d: inputs: %w", r.ID, err)
	}
	r.ParentID = parent.Int64
	r.CommitTime = fromTS(commitTime)
	r.CreatedAt, r.QueuedAt, r.StartedAt, r.FinishedAt = fromTS(created), fromTS(queued), fromTS(started), fromTS(finished)
	return &r, nil
}

// Run returns a run with its plan, stages and steps, or ErrNotFound.
func (s *Store) Run(ctx context.Context, id int64) (*Run, error) {
	var plan, diags string
	r, err := scanRun(s.queryRow(ctx, s.r, `SELECT `+runCols+`, r.plan, r.diagnostics`+runFrom+` WHERE r.id = ?`, id), &plan, &diags)
	if err != nil {
		return nil, fmt.Errorf("get run %d: %w", id, notFound(err))
	}
	if diags != "" {
		if err := json.Unmarshal([]byte(diags), &r.Diagnostics); err != nil {
			return nil, fmt.Errorf("get run %d: diagnostics: %w", id, err)
		}
	}
	if plan != "" {
		r.Plan = new(pipeline.Plan)
		if err := json.Unmarshal([]byte(plan), r.Plan); err != nil {
			return nil, fmt.Errorf("get run %d: plan: %w", id, err)
		}
	}
	if err := s.loadStages(ctx, []*Run{r}); err != nil {
		return nil, err
	}
	return r, nil
}

// RunByNumber returns a repo's run by its number, like Run.
func (s *Store) RunByNumber(ctx context.Context, repoID, number int64) (*Run, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, s.rebind(`SELECT id FROM runs WHERE repo_id = ? AND number = ?`), repoID, number).Scan(&id)
	if err != nil {
		return nil, fmt.Errorf("get run %d of repo %d: %w", number, repoID, notFound(err))
	}
	return s.Run(ctx, id)
}

// RunFilter selects runs for ListRuns. Zero fields do not filter.
type RunFilter struct {
	RepoID int64
	Branch string
	Event  string
	Status []Status // any of these
	// Before is the cursor: only runs with ID < Before. Pass the last ID
	// of the previous page.
	Before int64
	// Limit caps the result; 0 means 50, at most 1000.
	Limit int
}

// ListRuns returns runs matching f, newest (highest ID) first, without
// plans and stages.
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]*Run, error) {
	q := `SELECT ` + runCols + runFrom + ` WHERE 1 = 1`
	var args []any
	if f.RepoID != 0 {
		q += ` AND r.repo_id = ?`
		args = append(args, f.RepoID)
	}
	if f.Branch != "" {
		q += ` AND r.branch = ?`
		args = append(args, f.Branch)
	}
	if f.Event != "" {
		q += ` AND r.event = ?`
		args = append(args, f.Event)
	}
	if len(f.Status) > 0 {
		q += ` AND r.status IN (` + placeholders(len(f.Status)) + `)`
		for _, st := range f.Status {
			args = append(args, st)
		}
	}
	q, args = page(q, args, "r.id", f.Before, f.Limit)
	return s.queryRuns(ctx, q, args...)
}

func (s *Store) queryRuns(ctx context.Context, q string, args ...any) ([]*Run, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// UnfinishedRuns returns every run that is not terminal, oldest first, with
// stages and steps (but without plans): after a restart the server
// reconciles them (stages queued or running on an agent that is gone).
func (s *Store) UnfinishedRuns(ctx context.Context) ([]*Run, error) {
	args := make([]any, len(unfinished))
	for i, st := range unfinished {
		args[i] = st
	}
	runs, err := s.queryRuns(ctx, `SELECT `+runCols+runFrom+` WHERE r.status IN (`+placeholders(len(args))+`) ORDER BY r.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("unfinished runs: %w", err)
	}
	if err := s.loadStages(ctx, runs); err != nil {
		return nil, err
	}
	return runs, nil
}

// ActiveRuns returns the unfinished runs of a repo's branch, oldest first
// (for cancel-previous).
func (s *Store) ActiveRuns(ctx context.Context, repoID int64, branch string) ([]*Run, error) {
	args := []any{repoID, branch}
	for _, st := range unfinished {
		args = append(args, st)
	}
	return s.queryRuns(ctx, `SELECT `+runCols+runFrom+` WHERE r.repo_id = ? AND r.branch = ? AND r.status IN (`+
		placeholders(len(unfinished))+`) ORDER BY r.id`, args...)
}

// LatestFinishedRun returns the newest terminal run of a repo's branch
// (for badges), or ErrNotFound. Skipped runs are ignored.
func (s *Store) LatestFinishedRun(ctx context.Context, repoID int64, branch string) (*Run, error) {
	runs, err := s.queryRuns(ctx, `SELECT `+runCols+runFrom+` WHERE r.repo_id = ? AND r.branch = ? AND r.status IN (?, ?, ?, ?)
		ORDER BY r.id DESC LIMIT 1`, repoID, branch, StatusSuccess, StatusFailure, StatusCanceled, StatusError)
	if err != nil {
		return nil, fmt.Errorf("latest run of repo %d branch %q: %w", repoID, branch, err)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("latest run of repo %d branch %q: %w", repoID, branch, ErrNotFound)
	}
	return runs[0], nil
}

// LatestFinishedStage returns, for a stage badge, the newest terminal,
// non-skipped stage named name (the stage key, Stage.Name) in a run of the
// repo's branch, or ErrNotFound.
func (s *Store) LatestFinishedStage(ctx context.Context, repoID int64, branch, name string) (*Stage, error) {
	row := s.r.QueryRowContext(ctx, s.rebind(`SELECT `+stageCols+` FROM stages g JOIN runs r ON r.id = g.run_id
		WHERE r.repo_id = ? AND r.branch = ? AND g.name = ? AND g.status IN (?, ?, ?, ?)
		ORDER BY g.finished_at DESC, g.id DESC LIMIT 1`),
		repoID, branch, name, StatusSuccess, StatusFailure, StatusCanceled, StatusError)
	g, err := scanStage(row)
	if err != nil {
		return nil, fmt.Errorf("latest stage %q of repo %d branch %q: %w", name, repoID, branch, notFound(err))
	}
	return g, nil
}

// UpdateRun moves a run to status to, if the state machine allows it from
// its current status (see Status), and records reason (kept when empty).
// It stamps QueuedAt/StartedAt/FinishedAt on the first move to queued,
// running or a terminal status, and clears PendingReason when leaving
// pending. ErrConflict when not allowed (e.g. already terminal),
// ErrNotFound when there is no such run.
func (s *Store) UpdateRun(ctx context.Context, id int64, to Status, reason string) error {
	from := predecessors(to)
	if len(from) == 0 {
		return fmt.Errorf("update run %d to %q: %w", id, to, ErrConflict)
	}
	now := s.now().UnixMicro()
	q := `UPDATE runs SET status = ?, reason = CASE WHEN ? = '' THEN reason ELSE ? END` + stampCols(to) +
		` WHERE id = ? AND status IN (` + placeholders(len(from)) + `)`
	args := []any{to, reason, reason}
	args = append(args, stampArgs(to, now)...)
	args = append(args, id)
	for _, st := range from {
		args = append(args, st)
	}
	res, err := s.w.ExecContext(ctx, s.rebind(q), args...)
	if err != nil {
		return fmt.Errorf("update run %d to %s: %w", id, to, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if err := exists(ctx, s.w, s.rebind(`SELECT 1 FROM runs WHERE id = ?`), id); err != nil {
		return fmt.Errorf("update run %d to %s: %w", id, to, err)
	}
	return fmt.Errorf("update run %d to %s: %w", id, to, ErrConflict)
}

// stampCols are the time columns set by a move to status to (first time
// only), plus clearing the pending reason.
func stampCols(to Status) string {
	var c string
	switch {
	case to == StatusQueued:
		c = `, queued_at = COALESCE(queued_at, ?)`
	case to == StatusRunning:
		c = `, started_at = COALESCE(started_at, ?)`
	case to.Terminal():
		c = `, finished_at = COALESCE(finished_at, ?)`
	}
	if to != StatusPending && to != StatusWaiting {
		c += `, pending_reason = ''`
	}
	return c
}

func stampArgs(to Status, now int64) []any {
	if to == StatusQueued || to == StatusRunning || to.Terminal() {
		return []any{now}
	}
	return nil
}

// SetRunPendingReason records why an unfinished run is waiting (shown in
// the UI); ErrConflict if the run is terminal.
func (s *Store) SetRunPendingReason(ctx context.Context, id int64, reason string) error {
	return s.setPendingReason(ctx, "runs", id, reason)
}

func (s *Store) setPendingReason(ctx context.Context, table string, id int64, reason string) error {
	args := []any{reason, id}
	for _, st := range unfinished {
		args = append(args, st)
	}
	res, err := s.w.ExecContext(ctx, s.rebind(`UPDATE `+table+` SET pending_reason = ? WHERE id = ? AND status IN (`+
		placeholders(len(unfinished))+`)`), args...)
	if err != nil {
		return fmt.Errorf("set pending reason of %s %d: %w", table, id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if err := exists(ctx, s.w, s.rebind(`SELECT 1 FROM `+table+` WHERE id = ?`), id); err != nil {
		return fmt.Errorf("set pending reason of %s %d: %w", table, id, err)
	}
	return fmt.Errorf("set pending reason of %s %d: %w", table, id, ErrConflict)
}

// EachFinishedRun calls fn for every terminal run, with stages (without
// steps and plans), in ID order; it stops at fn's first error and returns
// it. For rebuilding metrics at start-up.
func (s *Store) EachFinishedRun(ctx context.Context, fn func(*Run) error) error {
	var after int64
	for {
		runs, err := s.queryRuns(ctx, `SELECT `+runCols+runFrom+` WHERE r.id > ? AND r.status IN (?, ?, ?, ?, ?)
			ORDER BY r.id LIMIT 500`, after, StatusSuccess, StatusFailure, StatusCanceled, StatusError, StatusSkipped)
		if err != nil {
			return fmt.Errorf("finished runs: %w", err)
		}
		if len(runs) == 0 {
			return nil
		}
		if err := s.loadStagesOnly(ctx, runs); err != nil {
			return err
		}
		for _, r := range runs {
			if err := fn(r); err != nil {
				return err
			}
		}
		after = runs[len(runs)-1].ID
	}
}
