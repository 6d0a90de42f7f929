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
// deduplication (forges redeliver, sometimes days later) and audit.
type Delivery struct {
	ID          int64
	Source      string // e.g. "github", "gitea", "githook:acme/web"
	DeliveryID  string // the forge's delivery id (e.g. X-GitHub-Delivery)
	Event       string // the forge's event name
	Payload     []byte // the raw body (JSON)
	State       string // Delivery* constant
	Error       string
	RunID       int64 // 0 if none
	ReceivedAt  time.Time
	ProcessedAt time.Time
}

// InsertDelivery records a delivery unless one with the same (source,
// deliveryID) exists. It returns the row id and duplicate=true when the
// delivery had been seen before (then id is the earlier row's). Atomic:
// of concurrent inserts of the same delivery exactly one gets
// duplicate=false.
func (s *Store) InsertDelivery(ctx context.Context, source, deliveryID, event string, payload []byte) (id int64, duplicate bool, err error) {
	if source == "" || deliveryID == "" {
		return 0, false, fmt.Errorf("insert delivery: source and delivery id are required")
	}
	err = s.queryRow(ctx, s.w, `INSERT INTO deliveries (source, delivery_id, event, payload, state, received_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id`,
		source, deliveryID, event, string(payload), DeliveryReceived, s.now().UnixMicro()).Scan(&id)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("insert delivery %s/%s: %w", source, deliveryID, err)
	}
	// Conflict: the row exists (it is never deleted by a concurrent
	// writer, so reading it after the conflict is safe).
	err = s.w.QueryRowContext(ctx, s.rebind(`SELECT id FROM deliveries WHERE source = ? AND delivery_id = ?`),
		source, deliveryID).Scan(&id)
	if err != nil {
		return 0, false, fmt.Errorf("insert delivery %s/%s: read existing: %w", source, deliveryID, err)
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

const deliveryCols = `id, source, delivery_id, event, payload, state, error, run_id, received_at, processed_at`

func scanDelivery(row interface{ Scan(...any) error }) (*Delivery, error) {
	var d Delivery
	var payload string
	var runID, recv, proc sql.NullInt64
	if err := row.Scan(&d.ID, &d.Source, &d.DeliveryID, &d.Event, &payload, &d.State, &d.Error, &runID, &recv, &proc); err != nil {
		return nil, err
	}
	d.Payload = []byte(payload)
	d.RunID = runID.Int64
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

type deliveryKey struct{}

// ContextWithDelivery returns a context under which CreateRun links the
// new run to the delivery with row id id, atomically (see CreateRun).
func ContextWithDelivery(ctx context.Context, id int64) context.Context {
	return context.WithValue(ctx, deliveryKey{}, id)
}

const qLinkDelivery = `UPDATE deliveries SET state = ?, run_id = ?, error = '', processed_at = ? WHERE id = ? AND state = ?`

// linkDelivery marks the delivery of ctx (if any) processed with run
// runID inside tx; ErrConflict if it was handled already.
func (s *Store) linkDelivery(ctx context.Context, tx *sql.Tx, runID, now int64) error {
	id, _ := ctx.Value(deliveryKey{}).(int64)
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

// PendingDeliveries lists deliveries still in state DeliveryReceived,
// oldest first (at most limit; 0 means 100): after a crash the server
// handles them again.
func (s *Store) PendingDeliveries(ctx context.Context, limit int) ([]*Delivery, error) {
	return s.PendingDeliveriesAfter(ctx, 0, limit)
}

// PendingDeliveriesAfter lists deliveries in state DeliveryReceived
// whose row id is greater than after, by id (at most limit; 0 means
// 100). Page through all of them by passing the last id seen.
func (s *Store) PendingDeliveriesAfter(ctx context.Context, after int64, limit int) ([]*Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT `+deliveryCols+` FROM deliveries WHERE state = ? AND id > ? ORDER BY id LIMIT ?`),
		DeliveryReceived, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list pending deliveries: %w", err)
	}
	defer rows.Close()
	var out []*Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list pending deliveries: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
