package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Delivery states.
const (
	DeliveryReceived  = "received"  // stored, not yet handled
	DeliveryProcessed = "processed" // handled; RunID set if it started a run
	DeliveryIgnored   = "ignored"   // handled; nothing to do (e.g. no pipeline, filtered event)
	DeliveryFailed    = "failed"    // handling failed; Error says why
)

// Delivery is one received webhook or git hook call, kept for
// deduplication (forges redeliver, sometimes days later), for retries and
// for audit. It belongs for ever to the repository whose secret or token
// verified it (RepoID): a replay never looks at the repository its
// payload names.
type Delivery struct {
	ID         int64
	RepoID     int64  // the repository that verified it; 0 only for rows from before migration 0003
	Source     string // the hook that received it: "github", "gitea", "gitlab", "generic"
	DeliveryID string // the forge's delivery id (e.g. X-GitHub-Delivery)
	Event      string // the forge's event name
	Payload    []byte // the verified event (JSON)
	State      string // Delivery* constant
	Error      string
	RunID      int64 // 0 if none
	// Attempts counts triggers that failed for a transient cause; the
	// delivery is due again at NextAttemptAt.
	Attempts      int
	NextAttemptAt time.Time
	ReceivedAt    time.Time
	ProcessedAt   time.Time
}

// NewDelivery is the input of InsertDelivery.
type NewDelivery struct {
	RepoID     int64 // required: the repository that verified the delivery
	Source     string
	DeliveryID string
	Event      string
	Payload    []byte
}

// InsertDelivery records a delivery unless one with the same (repo,
// source, delivery id) exists. It returns the row id and duplicate=true
// when the delivery had been seen before (then id is the earlier row's).
// Atomic: of concurrent inserts of the same delivery exactly one gets
// duplicate=false. Deduplication is per repository, so a delivery id
// chosen by one repository's hook never hides another's.
func (s *Store) InsertDelivery(ctx context.Context, d NewDelivery) (id int64, duplicate bool, err error) {
	if d.RepoID <= 0 || d.Source == "" || d.DeliveryID == "" {
		return 0, false, fmt.Errorf("insert delivery: repo, source and delivery id are required")
	}
	err = s.queryRow(ctx, s.w, `INSERT INTO deliveries (repo_id, source, delivery_id, event, payload, state, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo_id, source, delivery_id) DO NOTHING RETURNING id`,
		d.RepoID, d.Source, d.DeliveryID, d.Event, string(d.Payload), DeliveryReceived, s.now().UnixMicro()).Scan(&id)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("insert delivery %s/%s: %w", d.Source, d.DeliveryID, err)
	}
	// Conflict: the row exists (it is never deleted by a concurrent
	// writer, so reading it after the conflict is safe).
	err = s.w.QueryRowContext(ctx, s.rebind(`SELECT id FROM deliveries WHERE repo_id = ? AND source = ? AND delivery_id = ?`),
		d.RepoID, d.Source, d.DeliveryID).Scan(&id)
	if err != nil {
		return 0, false, fmt.Errorf("insert delivery %s/%s: read existing: %w", d.Source, d.DeliveryID, err)
	}
	return id, true, nil
}

// FinishDelivery records how a delivery was handled: state is
// DeliveryProcessed, DeliveryIgnored or DeliveryFailed; runID (0 for none)
// the run it started; errMsg why it failed.
func (s *Store) FinishDelivery(ctx context.Context, id int64, state string, runID int64, errMsg string) error {
	res, err := s.exec(ctx, s.w, `UPDATE deliveries SET state = ?, run_id = ?, error = ?, processed_at = ? WHERE id = ?`,
		state, nullID(runID), errMsg, s.now().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("finish delivery %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish delivery %d: %w", id, ErrNotFound)
	}
	return nil
}

const deliveryCols = `id, repo_id, source, delivery_id, event, payload, state, error, run_id, attempts, next_attempt_at,
	received_at, processed_at`

func scanDelivery(row interface{ Scan(...any) error }) (*Delivery, error) {
	var d Delivery
	var payload string
	var repoID, runID, recv, proc sql.NullInt64
	var next int64
	if err := row.Scan(&d.ID, &repoID, &d.Source, &d.DeliveryID, &d.Event, &payload, &d.State, &d.Error, &runID,
		&d.Attempts, &next, &recv, &proc); err != nil {
		return nil, err
	}
	d.Payload = []byte(payload)
	d.RepoID, d.RunID = repoID.Int64, runID.Int64
	if next > 0 {
		d.NextAttemptAt = time.UnixMicro(next).UTC()
	}
	d.ReceivedAt, d.ProcessedAt = fromTS(recv), fromTS(proc)
	return &d, nil
}

// Delivery returns the delivery with that id, or ErrNotFound.
func (s *Store) Delivery(ctx context.Context, id int64) (*Delivery, error) {
	d, err := scanDelivery(s.r.QueryRowContext(ctx, s.rebind(`SELECT `+deliveryCols+` FROM deliveries WHERE id = ?`), id))
	if err != nil {
		return nil, fmt.Errorf("get delivery %d: %w", id, notFound(err))
	}
	return d, nil
}

const qLinkDelivery = `UPDATE deliveries SET state = ?, run_id = ?, error = '', processed_at = ? WHERE id = ? AND state = ?`

// linkDelivery marks delivery id (if not 0) processed with run runID
// inside tx; ErrConflict if it was handled already.
func (s *Store) linkDelivery(ctx context.Context, tx *sql.Tx, id, runID, now int64) error {
	if id == 0 {
		return nil
	}
	st, err := s.txStmt(ctx, tx, qLinkDelivery)
	if err != nil {
		return fmt.Errorf("link run to delivery %d: %w", id, err)
	}
	res, err := st.ExecContext(ctx, DeliveryProcessed, runID, now, id, DeliveryReceived)
	if err != nil {
		return fmt.Errorf("link run to delivery %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("link run to delivery %d: not in state %s: %w", id, DeliveryReceived, ErrConflict)
	}
	return nil
}

// SettleDelivery records the outcome of a delivery that started no run
// (state DeliveryIgnored or DeliveryFailed, errMsg why), unless it is no
// longer DeliveryReceived: then it returns ErrConflict and changes
// nothing, so a late failure never overwrites the run another attempt
// linked.
func (s *Store) SettleDelivery(ctx context.Context, id int64, state, errMsg string) error {
	res, err := s.exec(ctx, s.w, `UPDATE deliveries SET state = ?, error = ?, processed_at = ? WHERE id = ? AND state = ?`,
		state, errMsg, s.now().UnixMicro(), id, DeliveryReceived)
	if err != nil {
		return fmt.Errorf("settle delivery %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("settle delivery %d: not in state %s: %w", id, DeliveryReceived, ErrConflict)
	}
	return nil
}

// RetryDelivery records a failed attempt of a delivery that stays
// DeliveryReceived: attempts is the number of failed attempts so far,
// next when it is due again, errMsg the last failure. ErrConflict when
// the delivery is no longer received.
func (s *Store) RetryDelivery(ctx context.Context, id int64, attempts int, next time.Time, errMsg string) error {
	res, err := s.exec(ctx, s.w, `UPDATE deliveries SET attempts = ?, next_attempt_at = ?, error = ? WHERE id = ? AND state = ?`,
		attempts, next.UnixMicro(), errMsg, id, DeliveryReceived)
	if err != nil {
		return fmt.Errorf("retry delivery %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("retry delivery %d: not in state %s: %w", id, DeliveryReceived, ErrConflict)
	}
	return nil
}

// PendingDeliveries lists deliveries still in state DeliveryReceived,
// due or not, oldest first (at most limit; 0 means 100).
func (s *Store) PendingDeliveries(ctx context.Context, limit int) ([]*Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.listDeliveries(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE state = ? ORDER BY id LIMIT ?`,
		DeliveryReceived, limit)
}

// DueDeliveryRepos lists the repositories that have deliveries in state
// DeliveryReceived due at now, by id.
func (s *Store) DueDeliveryRepos(ctx context.Context, now time.Time) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT DISTINCT repo_id FROM deliveries
		WHERE state = ? AND repo_id IS NOT NULL AND next_attempt_at <= ? ORDER BY repo_id`),
		DeliveryReceived, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list repos with due deliveries: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list repos with due deliveries: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// DueDeliveries lists the deliveries of repoID in state DeliveryReceived
// that are due at now and whose row id is greater than after, by id (at
// most limit; 0 means 100). Page through them by passing the last id seen.
func (s *Store) DueDeliveries(ctx context.Context, repoID int64, now time.Time, after int64, limit int) ([]*Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.listDeliveries(ctx, `SELECT `+deliveryCols+` FROM deliveries
		WHERE state = ? AND repo_id = ? AND next_attempt_at <= ? AND id > ? ORDER BY id LIMIT ?`,
		DeliveryReceived, repoID, now.UnixMicro(), after, limit)
}

func (s *Store) listDeliveries(ctx context.Context, q string, args ...any) ([]*Delivery, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []*Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
