package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Schedule kinds.
const (
	ScheduleCron = "cron" // a cron expression in a time zone
	ScheduleOnce = "once" // one run at a time
)

// Tick states.
const (
	TickClaimed = "claimed" // a server claimed it; its run does not exist yet
	TickStarted = "started" // its run exists (RunID, unless deleted since)
	TickFailed  = "failed"  // it made no run, for good (Error says why)
)

// Schedule is a cron schedule or a one-off run of a repository's branch.
type Schedule struct {
	ID       int64
	RepoID   int64
	Repo     string // the repository's name
	Name     string // unique per repository
	Kind     string // ScheduleCron or ScheduleOnce
	Spec     string // cron expression (ScheduleCron)
	Timezone string
	Branch   string
	Commit   string // ScheduleOnce: the commit to run; "" means the branch head then
	Inputs   map[string]string
	Missed   string    // "run" or "skip"
	NextAt   time.Time // zero once a one-off run has fired
	By       string    // who created it
	Created  time.Time
	// Last is the latest tick claimed, nil if none.
	Last *Tick
}

// Tick is one claimed tick of a schedule.
type Tick struct {
	ID         int64
	ScheduleID int64
	At         time.Time // the scheduled time
	State      string
	ClaimedBy  string
	Attempts   int
	Error      string
	RunID      int64
}

const scheduleCols = `s.id, s.repo_id, p.name, s.name, s.kind, s.spec, s.timezone, s.branch, s.commit_sha, s.inputs,
	s.missed, s.next_at, s.created_by, s.created_at,
	t.id, t.tick_at, t.state, t.claimed_by, t.attempts, t.error, t.run_id`

// scheduleFrom joins each schedule's latest tick.
const scheduleFrom = ` FROM schedules s JOIN repos p ON p.id = s.repo_id
	LEFT JOIN schedule_ticks t ON t.id = (SELECT MAX(id) FROM schedule_ticks WHERE schedule_id = s.id)`

func scanSchedule(row interface{ Scan(...any) error }) (*Schedule, error) {
	var sc Schedule
	var inputs string
	var next, created sql.NullInt64
	var tid, tat, tattempts, trun sql.NullInt64
	var tstate, tby, terr sql.NullString
	if err := row.Scan(&sc.ID, &sc.RepoID, &sc.Repo, &sc.Name, &sc.Kind, &sc.Spec, &sc.Timezone, &sc.Branch, &sc.Commit,
		&inputs, &sc.Missed, &next, &sc.By, &created, &tid, &tat, &tstate, &tby, &tattempts, &terr, &trun); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(inputs), &sc.Inputs); err != nil {
		return nil, fmt.Errorf("schedule %d: inputs: %w", sc.ID, err)
	}
	sc.NextAt, sc.Created = fromTS(next), fromTS(created)
	if tid.Valid {
		sc.Last = &Tick{ID: tid.Int64, ScheduleID: sc.ID, At: fromTS(tat), State: tstate.String, ClaimedBy: tby.String,
			Attempts: int(tattempts.Int64), Error: terr.String, RunID: trun.Int64}
	}
	return &sc, nil
}

func (s *Store) querySchedules(ctx context.Context, q string, args ...any) ([]*Schedule, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT `+scheduleCols+scheduleFrom+q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Schedule
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// CreateSchedule stores a schedule (ErrDuplicate when the repository has
// one of that name) and returns it.
func (s *Store) CreateSchedule(ctx context.Context, sc Schedule) (*Schedule, error) {
	inputs, err := json.Marshal(nonNilMap(sc.Inputs))
	if err != nil {
		return nil, fmt.Errorf("create schedule %q: inputs: %w", sc.Name, err)
	}
	var id int64
	err = s.w.QueryRowContext(ctx, s.rebind(`INSERT INTO schedules (repo_id, name, kind, spec, timezone, branch, commit_sha,
		inputs, missed, next_at, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		sc.RepoID, sc.Name, sc.Kind, sc.Spec, sc.Timezone, sc.Branch, sc.Commit, string(inputs), sc.Missed, ts(sc.NextAt),
		sc.By, s.now().UnixMicro()).Scan(&id)
	if err != nil {
		if isUnique(err) {
			return nil, fmt.Errorf("create schedule %q: %w", sc.Name, ErrDuplicate)
		}
		return nil, fmt.Errorf("create schedule %q: %w", sc.Name, err)
	}
	return s.ScheduleByID(ctx, id)
}

// ScheduleByID returns a schedule, or ErrNotFound.
func (s *Store) ScheduleByID(ctx context.Context, id int64) (*Schedule, error) {
	list, err := s.querySchedules(ctx, ` WHERE s.id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("get schedule %d: %w", id, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("get schedule %d: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// Schedules lists a repository's schedules by name.
func (s *Store) Schedules(ctx context.Context, repoID int64) ([]*Schedule, error) {
	out, err := s.querySchedules(ctx, ` WHERE s.repo_id = ? ORDER BY s.name`, repoID)
	if err != nil {
		return nil, fmt.Errorf("list schedules of repo %d: %w", repoID, err)
	}
	return out, nil
}

// DueSchedules lists the schedules whose next tick is at or before now.
func (s *Store) DueSchedules(ctx context.Context, now time.Time) ([]*Schedule, error) {
	out, err := s.querySchedules(ctx, ` WHERE s.next_at IS NOT NULL AND s.next_at <= ? ORDER BY s.next_at`, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("due schedules: %w", err)
	}
	return out, nil
}

// DeleteSchedule removes a repository's schedule by name, with its ticks
// (runs stay).
func (s *Store) DeleteSchedule(ctx context.Context, repoID int64, name string) error {
	res, err := s.w.ExecContext(ctx, s.rebind(`DELETE FROM schedules WHERE repo_id = ? AND name = ?`), repoID, name)
	if err != nil {
		return fmt.Errorf("delete schedule %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete schedule %q: %w", name, ErrNotFound)
	}
	return nil
}

// ClaimTick moves the schedule's next tick from next to after (zero:
// none) only if it is still next, and, when fire is not zero, records the
// claimed tick fire in the same transaction, to be fired by by before
// lease (after which any server may fire it). It returns the tick's id (0
// when fire is zero), or ErrConflict when another server moved the
// schedule first (or the tick was claimed already): then nothing changed.
func (s *Store) ClaimTick(ctx context.Context, scheduleID int64, next, after, fire time.Time, by string, lease time.Duration) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.rebind(`UPDATE schedules SET next_at = ? WHERE id = ? AND next_at = ?`),
			ts(after), scheduleID, next.UnixMicro())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrConflict
		}
		if fire.IsZero() {
			return nil
		}
		now := s.now()
		err = tx.QueryRowContext(ctx, s.rebind(`INSERT INTO schedule_ticks (schedule_id, tick_at, state, claimed_by, claimed_at,
			next_attempt_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`),
			scheduleID, fire.UnixMicro(), TickClaimed, by, now.UnixMicro(), now.Add(lease).UnixMicro()).Scan(&id)
		if isUnique(err) {
			return ErrConflict
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("claim tick %s of schedule %d: %w", fire.Format(time.RFC3339), scheduleID, err)
	}
	return id, nil
}

// StaleTicks lists claimed ticks (with their schedules) whose run does
// not exist yet: those whose lease has passed, and those claimed by own
// (this install's earlier processes), at once.
func (s *Store) StaleTicks(ctx context.Context, own string, now time.Time) ([]*Tick, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT id, schedule_id, tick_at, state, claimed_by, attempts, error
		FROM schedule_ticks WHERE state = ? AND (next_attempt_at <= ? OR claimed_by = ?) ORDER BY id`),
		TickClaimed, now.UnixMicro(), own)
	if err != nil {
		return nil, fmt.Errorf("stale ticks: %w", err)
	}
	defer rows.Close()
	var out []*Tick
	for rows.Next() {
		var t Tick
		var at int64
		if err := rows.Scan(&t.ID, &t.ScheduleID, &at, &t.State, &t.ClaimedBy, &t.Attempts, &t.Error); err != nil {
			return nil, fmt.Errorf("stale ticks: %w", err)
		}
		t.At = time.UnixMicro(at).UTC()
		out = append(out, &t)
	}
	return out, rows.Err()
}

// RetakeTick makes by the owner of a claimed tick for another lease, if
// it still has attempts attempts (compare and set): ErrConflict when
// another server retook it or its run exists.
func (s *Store) RetakeTick(ctx context.Context, id int64, attempts int, by string, lease time.Duration) error {
	now := s.now()
	res, err := s.w.ExecContext(ctx, s.rebind(`UPDATE schedule_ticks SET claimed_by = ?, claimed_at = ?, next_attempt_at = ?,
		attempts = attempts + 1 WHERE id = ? AND state = ? AND attempts = ?`),
		by, now.UnixMicro(), now.Add(lease).UnixMicro(), id, TickClaimed, attempts)
	if err != nil {
		return fmt.Errorf("retake tick %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("retake tick %d: %w", id, ErrConflict)
	}
	return nil
}

// FailTick records why a claimed tick made no run: for good (state
// failed) when final, else it is tried again after retry.
func (s *Store) FailTick(ctx context.Context, id int64, msg string, final bool, retry time.Duration) error {
	state := TickClaimed
	if final {
		state = TickFailed
	}
	_, err := s.w.ExecContext(ctx, s.rebind(`UPDATE schedule_ticks SET state = ?, error = ?, next_attempt_at = ?
		WHERE id = ? AND state = ?`), state, msg, s.now().Add(retry).UnixMicro(), id, TickClaimed)
	if err != nil {
		return fmt.Errorf("fail tick %d: %w", id, err)
	}
	return nil
}

// linkTick marks tick id started with the run runID inside CreateRun's
// transaction; ErrConflict when the tick already has its run (or failed).
func (s *Store) linkTick(ctx context.Context, tx *sql.Tx, id, runID int64) error {
	if id == 0 {
		return nil
	}
	res, err := tx.ExecContext(ctx, s.rebind(`UPDATE schedule_ticks SET state = ?, run_id = ?, error = '' WHERE id = ? AND state = ?`),
		TickStarted, runID, id, TickClaimed)
	if err != nil {
		return fmt.Errorf("link run to tick %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("link run to tick %d: not claimed: %w", id, ErrConflict)
	}
	return nil
}

// Ticks lists a schedule's claimed ticks, newest first (at most limit).
func (s *Store) Ticks(ctx context.Context, scheduleID int64, limit int) ([]*Tick, error) {
	q, args := page(`SELECT id, schedule_id, tick_at, state, claimed_by, attempts, error, run_id FROM schedule_ticks
		WHERE schedule_id = ?`, []any{scheduleID}, "id", 0, limit)
	rows, err := s.r.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("ticks of schedule %d: %w", scheduleID, err)
	}
	defer rows.Close()
	var out []*Tick
	for rows.Next() {
		var t Tick
		var at int64
		var run sql.NullInt64
		if err := rows.Scan(&t.ID, &t.ScheduleID, &at, &t.State, &t.ClaimedBy, &t.Attempts, &t.Error, &run); err != nil {
			return nil, fmt.Errorf("ticks of schedule %d: %w", scheduleID, err)
		}
		t.At, t.RunID = time.UnixMicro(at).UTC(), run.Int64
		out = append(out, &t)
	}
	return out, rows.Err()
}

// ScheduleByName returns a repository's schedule, or ErrNotFound.
func (s *Store) ScheduleByName(ctx context.Context, repoID int64, name string) (*Schedule, error) {
	list, err := s.querySchedules(ctx, ` WHERE s.repo_id = ? AND s.name = ?`, repoID, name)
	if err != nil {
		return nil, fmt.Errorf("get schedule %q: %w", name, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("get schedule %q: %w", name, ErrNotFound)
	}
	return list[0], nil
}
