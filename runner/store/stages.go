package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/runnel-ci/runnel/pipeline/rules"
)

// Stage is one stage of a run (one per plan stage).
type Stage struct {
	ID            int64
	RunID         int64
	Key           string // pipeline.Stage.ID, unique in the run, e.g. "test[go=1.22]"
	Name          string // pipeline.Stage.Name
	Position      int    // index in the plan
	Status        Status
	Reason        string
	PendingReason string
	// Attempt is the fencing token: 0 until first queued, raised by every
	// QueueStage. Agents echo it; updates with another attempt get ErrStale.
	Attempt int
	// Published is the highest attempt whose job the bus accepted
	// (MarkPublished); below Attempt while the current job may not have
	// reached the bus.
	Published int
	// Claim is the token of the agent delivery that claimed the current
	// attempt (ClaimStage), "" while nobody did.
	Claim       string
	Agent       string
	Needs       []string // keys of the stages it needs
	Environment string
	Concurrency string
	Approval    Approval
	ApprovedBy  string
	QueuedAt    time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	Steps       []*Step // in order; nil where only stages were loaded
}

// Step is one step of a stage.
type Step struct {
	ID           int64
	StageID      int64
	Name         string
	Position     int // index in the stage
	Status       Status
	ExitCode     *int // nil until the step exited
	Attempts     int  // runs of the step in the current stage attempt (retries)
	AllowFailure bool
	// LogKey and LogSize point at the step's log, which another component
	// stores; the store keeps only the reference.
	LogKey     string
	LogSize    int64
	StartedAt  time.Time
	FinishedAt time.Time
}

const stageCols = `g.id, g.run_id, g.stage_key, g.name, g.position, g.status, g.reason, g.pending_reason, g.attempt,
	g.published, g.claim, g.agent, g.needs, g.environment, g.concurrency, g.approval, g.approved_by, g.queued_at, g.started_at, g.finished_at`

func scanStage(row interface{ Scan(...any) error }) (*Stage, error) {
	var g Stage
	var needs string
	var queued, started, finished sql.NullInt64
	if err := row.Scan(&g.ID, &g.RunID, &g.Key, &g.Name, &g.Position, &g.Status, &g.Reason, &g.PendingReason, &g.Attempt,
		&g.Published, &g.Claim, &g.Agent, &needs, &g.Environment, &g.Concurrency, &g.Approval, &g.ApprovedBy, &queued, &started, &finished); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(needs), &g.Needs); err != nil {
		return nil, fmt.Errorf("stage %d: needs: %w", g.ID, err)
	}
	g.QueuedAt, g.StartedAt, g.FinishedAt = fromTS(queued), fromTS(started), fromTS(finished)
	return &g, nil
}

const stepCols = `id, stage_id, name, position, status, exit_code, attempts, allow_failure, log_key, log_size, started_at, finished_at`

func scanStep(row interface{ Scan(...any) error }) (*Step, error) {
	var p Step
	var exit, started, finished sql.NullInt64
	if err := row.Scan(&p.ID, &p.StageID, &p.Name, &p.Position, &p.Status, &exit, &p.Attempts, &p.AllowFailure,
		&p.LogKey, &p.LogSize, &started, &finished); err != nil {
		return nil, err
	}
	if exit.Valid {
		c := int(exit.Int64)
		p.ExitCode = &c
	}
	p.StartedAt, p.FinishedAt = fromTS(started), fromTS(finished)
	return &p, nil
}

// loadStagesOnly fills Stages (without steps) of runs.
func (s *Store) loadStagesOnly(ctx context.Context, runs []*Run) error {
	_, err := s.fillStages(ctx, runs)
	return err
}

// loadStages fills Stages and their Steps of runs.
func (s *Store) loadStages(ctx context.Context, runs []*Run) error {
	byID, err := s.fillStages(ctx, runs)
	if err != nil || len(byID) == 0 {
		return err
	}
	ids := make([]any, 0, len(runs))
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	rows, err := s.queryIn(ctx, s.r, `SELECT `+stepCols+` FROM steps WHERE stage_id IN
		(SELECT id FROM stages WHERE run_id IN (`+placeholders(len(ids))+`)) ORDER BY stage_id, position`, ids...)
	if err != nil {
		return fmt.Errorf("load steps: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanStep(rows)
		if err != nil {
			return fmt.Errorf("load steps: %w", err)
		}
		if g := byID[p.StageID]; g != nil {
			g.Steps = append(g.Steps, p)
		}
	}
	return rows.Err()
}

func (s *Store) fillStages(ctx context.Context, runs []*Run) (map[int64]*Stage, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	byRun := make(map[int64]*Run, len(runs))
	ids := make([]any, 0, len(runs))
	for _, r := range runs {
		byRun[r.ID] = r
		ids = append(ids, r.ID)
	}
	rows, err := s.queryIn(ctx, s.r, `SELECT `+stageCols+` FROM stages g WHERE g.run_id IN (`+
		placeholders(len(ids))+`) ORDER BY g.run_id, g.position`, ids...)
	if err != nil {
		return nil, fmt.Errorf("load stages: %w", err)
	}
	defer rows.Close()
	byID := map[int64]*Stage{}
	for rows.Next() {
		g, err := scanStage(rows)
		if err != nil {
			return nil, fmt.Errorf("load stages: %w", err)
		}
		byID[g.ID] = g
		r := byRun[g.RunID]
		r.Stages = append(r.Stages, g)
	}
	return byID, rows.Err()
}

// Stage returns a stage with its steps, or ErrNotFound.
func (s *Store) Stage(ctx context.Context, id int64) (*Stage, error) {
	g, err := scanStage(s.r.QueryRowContext(ctx, s.rebind(`SELECT `+stageCols+` FROM stages g WHERE g.id = ?`), id))
	if err != nil {
		return nil, fmt.Errorf("get stage %d: %w", id, notFound(err))
	}
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT `+stepCols+` FROM steps WHERE stage_id = ? ORDER BY position`), id)
	if err != nil {
		return nil, fmt.Errorf("get steps of stage %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanStep(rows)
		if err != nil {
			return nil, fmt.Errorf("get steps of stage %d: %w", id, err)
		}
		g.Steps = append(g.Steps, p)
	}
	return g, rows.Err()
}

// QueueStage puts a stage on the queue with a new attempt and returns the
// attempt number to send with the job. Allowed from pending (first
// dispatch) and, as the one backward move, from queued or running (the
// job is redelivered after its agent was lost): the raised attempt fences
// off the old agent, and the stage's steps are reset to pending. A stage
// still waiting for approval (Approval == ApprovalWaiting) is refused.
// ErrConflict when not allowed.
func (s *Store) QueueStage(ctx context.Context, id int64) (attempt int, err error) {
	return s.queueStage(ctx, id, AnyAttempt)
}

// queueStage is QueueStage, conditional on the current attempt unless it
// is AnyAttempt.
func (s *Store) queueStage(ctx context.Context, id int64, cur int) (attempt int, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		q := `UPDATE stages SET status = ?, attempt = attempt + 1, agent = '', claim = '',
			queued_at = ?, started_at = NULL, pending_reason = ''
			WHERE id = ? AND status IN (?, ?, ?) AND approval <> ?`
		args := []any{StatusQueued, s.now().UnixMicro(), id, StatusPending, StatusQueued, StatusRunning, ApprovalWaiting}
		if cur != AnyAttempt {
			q += ` AND attempt = ?`
			args = append(args, cur)
		}
		err := tx.QueryRowContext(ctx, s.rebind(q+` RETURNING attempt`), args...).Scan(&attempt)
		if errors.Is(err, sql.ErrNoRows) {
			var now int
			if err := tx.QueryRowContext(ctx, s.rebind(`SELECT attempt FROM stages WHERE id = ?`), id).Scan(&now); err != nil {
				return notFound(err)
			}
			if cur != AnyAttempt && now != cur {
				return ErrStale
			}
			return ErrConflict
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.rebind(`UPDATE steps SET status = ?, exit_code = NULL, attempts = 0,
			started_at = NULL, finished_at = NULL WHERE stage_id = ?`), StatusPending, id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue stage %d: %w", id, err)
	}
	return attempt, nil
}

// AnyAttempt as the attempt of UpdateStage skips the fencing check: for
// the server's own decisions (cancel, skip, time out), not for agents.
const AnyAttempt = -1

// StageUpdate is the change UpdateStage makes.
type StageUpdate struct {
	Status Status // the new status; must be allowed from the current one
	Reason string // kept when empty
	Agent  string // recorded when moving to running
}

// UpdateStage moves a stage to u.Status if the state machine allows it and
// attempt is the stage's current attempt (or AnyAttempt). It stamps
// StartedAt (running) and FinishedAt (terminal), and clears PendingReason.
// Errors: ErrStale (another attempt owns the stage), ErrConflict (the move
// is not allowed from the current status, e.g. the stage already
// finished), ErrNotFound. Use QueueStage, not this, to queue; running is
// reached only from queued.
func (s *Store) UpdateStage(ctx context.Context, id int64, attempt int, u StageUpdate) error {
	from := predecessors(u.Status)
	if u.Status == StatusQueued || len(from) == 0 {
		return fmt.Errorf("update stage %d to %q: %w", id, u.Status, ErrConflict)
	}
	if u.Status == StatusRunning {
		from = []Status{StatusQueued} // a stage runs only after QueueStage gave it an attempt
	}
	now := s.now().UnixMicro()
	q := `UPDATE stages SET status = ?, reason = CASE WHEN ? = '' THEN reason ELSE ? END`
	args := []any{u.Status, u.Reason, u.Reason}
	if u.Status == StatusRunning {
		q += `, agent = ?`
		args = append(args, u.Agent)
	}
	q += stampCols(u.Status) + ` WHERE id = ? AND status IN (` + placeholders(len(from)) + `)`
	args = append(args, stampArgs(u.Status, now)...)
	args = append(args, id)
	for _, st := range from {
		args = append(args, st)
	}
	if attempt != AnyAttempt {
		q += ` AND attempt = ?`
		args = append(args, attempt)
	}
	res, err := s.w.ExecContext(ctx, s.rebind(q), args...)
	if err != nil {
		return fmt.Errorf("update stage %d to %s: %w", id, u.Status, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	return s.classifyStage(ctx, id, attempt, fmt.Sprintf("update stage %d to %s", id, u.Status))
}

// classifyStage explains why a conditional stage write matched no row.
func (s *Store) classifyStage(ctx context.Context, id int64, attempt int, what string) error {
	var cur int
	err := s.w.QueryRowContext(ctx, s.rebind(`SELECT attempt FROM stages WHERE id = ?`), id).Scan(&cur)
	if err != nil {
		return fmt.Errorf("%s: %w", what, notFound(err))
	}
	if attempt != AnyAttempt && attempt != cur {
		return fmt.Errorf("%s: attempt %d, current %d: %w", what, attempt, cur, ErrStale)
	}
	return fmt.Errorf("%s: %w", what, ErrConflict)
}

// SetStagePendingReason records why an unfinished stage is waiting (e.g.
// "waiting for concurrency group deploy-prod"); ErrConflict if terminal.
func (s *Store) SetStagePendingReason(ctx context.Context, id int64, reason string) error {
	return s.setPendingReason(ctx, "stages", id, reason)
}

// SetQueuedStagePendingReason records why attempt of a queued stage still
// waits for an agent. It changes nothing once that attempt has started or
// ended (a reason computed a moment before must not stick to a running
// stage) and reports whether it changed the stage.
func (s *Store) SetQueuedStagePendingReason(ctx context.Context, id int64, attempt int, reason string) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.rebind(`UPDATE stages SET pending_reason = ? WHERE id = ? AND attempt = ? AND status = ?`),
		reason, id, attempt, StatusQueued)
	if err != nil {
		return false, fmt.Errorf("set pending reason of queued stage %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DecideApproval approves or rejects a stage whose approval is
// ApprovalWaiting, recording who decided. Approving moves a stage in
// StatusWaiting back to pending (ready to queue); rejecting cancels a
// pending or waiting stage with rules.ReasonApprovalRejected. ErrConflict if the
// stage needs no approval, was decided already or has finished.
func (s *Store) DecideApproval(ctx context.Context, id int64, approve bool, by string) error {
	what := fmt.Sprintf("decide approval of stage %d", id)
	var q string
	var args []any
	if approve {
		q = `UPDATE stages SET approval = ?, approved_by = ?, status = CASE WHEN status = ? THEN ? ELSE status END`
		args = []any{ApprovalApproved, by, StatusWaiting, StatusPending}
	} else {
		q = `UPDATE stages SET approval = ?, approved_by = ?, status = ?, reason = ?, finished_at = ?, pending_reason = ''`
		args = []any{ApprovalRejected, by, StatusCanceled, rules.ReasonApprovalRejected, s.now().UnixMicro()}
	}
	q += ` WHERE id = ? AND approval = ? AND status IN (?, ?)`
	args = append(args, id, ApprovalWaiting, StatusPending, StatusWaiting)
	res, err := s.w.ExecContext(ctx, s.rebind(q), args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if err := exists(ctx, s.w, s.rebind(`SELECT 1 FROM stages WHERE id = ?`), id); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, ErrConflict)
}

// StepUpdate is the change UpdateStep makes.
type StepUpdate struct {
	Status   Status // the new status; must be allowed from the current one
	ExitCode *int   // recorded when set
	Attempts int    // recorded when > 0
	LogKey   string // recorded when set
	LogSize  int64  // recorded when LogKey is set
}

// UpdateStep changes the step at position of a stage, fenced by the
// stage's attempt like UpdateStage (AnyAttempt skips the check) and by the
// state machine. A step's status may also be rewritten to itself (e.g.
// running -> running to record a retry's Attempts or a log reference).
// Errors: ErrStale, ErrConflict, ErrNotFound.
func (s *Store) UpdateStep(ctx context.Context, stageID int64, attempt int, position int, u StepUpdate) error {
	from := predecessors(u.Status)
	if !u.Status.Terminal() {
		from = append(from, u.Status)
	}
	if len(from) == 0 {
		return fmt.Errorf("update step %d of stage %d to %q: %w", position, stageID, u.Status, ErrConflict)
	}
	now := s.now().UnixMicro()
	q := `UPDATE steps SET status = ?`
	args := []any{u.Status}
	if u.ExitCode != nil {
		q += `, exit_code = ?`
		args = append(args, *u.ExitCode)
	}
	if u.Attempts > 0 {
		q += `, attempts = ?`
		args = append(args, u.Attempts)
	}
	if u.LogKey != "" {
		q += `, log_key = ?, log_size = ?`
		args = append(args, u.LogKey, u.LogSize)
	}
	switch {
	case u.Status == StatusRunning:
		q += `, started_at = COALESCE(started_at, ?)`
		args = append(args, now)
	case u.Status.Terminal():
		q += `, finished_at = COALESCE(finished_at, ?)`
		args = append(args, now)
	}
	q += ` WHERE stage_id = ? AND position = ? AND status IN (` + placeholders(len(from)) + `)`
	args = append(args, stageID, position)
	for _, st := range from {
		args = append(args, st)
	}
	if attempt != AnyAttempt {
		q += ` AND EXISTS (SELECT 1 FROM stages WHERE stages.id = steps.stage_id AND stages.attempt = ?)`
		args = append(args, attempt)
	}
	what := fmt.Sprintf("update step %d of stage %d to %s", position, stageID, u.Status)
	res, err := s.w.ExecContext(ctx, s.rebind(q), args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if err := exists(ctx, s.w, s.rebind(`SELECT 1 FROM steps WHERE stage_id = ? AND position = ?`), stageID, position); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return s.classifyStage(ctx, stageID, attempt, what)
}
