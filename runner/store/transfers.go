package store

import (
	"context"
	"database/sql"

	"fmt"
	"time"
)

// Transfer object states.
const (
	ObjectPending = "pending" // granted for upload, not committed
	ObjectReady   = "ready"   // uploaded and verified
)

// TransferObject is an artifact archive, a cache entry or a fetched file
// kept in the artifact store (runner/transfers). Several rows may share
// (Kind, Scope, Name); the newest ready one counts, the others expire.
type TransferObject struct {
	ID        int64
	Kind      string // artifact, cache, fetch
	Scope     string // "run:<id>", "repo:<id>" or "" (fetched files)
	Name      string // stage ID, cache key or SHA-256
	Key       string // the store key, unique
	Size      int64
	SHA256    string
	State     string // ObjectPending or ObjectReady
	RunID     int64  // artifacts only
	Attempt   int    // artifacts only
	CreatedAt time.Time
	UsedAt    time.Time
	ExpiresAt time.Time
}

const objectCols = `id, kind, scope, name, store_key, size, sha256, state, run_id, attempt, created_at, used_at, expires_at`

func scanObject(row interface{ Scan(...any) error }) (*TransferObject, error) {
	var o TransferObject
	var run sql.NullInt64
	var created, used, expires int64
	if err := row.Scan(&o.ID, &o.Kind, &o.Scope, &o.Name, &o.Key, &o.Size, &o.SHA256, &o.State, &run, &o.Attempt,
		&created, &used, &expires); err != nil {
		return nil, err
	}
	o.RunID = run.Int64
	o.CreatedAt, o.UsedAt, o.ExpiresAt = time.UnixMicro(created).UTC(), time.UnixMicro(used).UTC(), time.UnixMicro(expires).UTC()
	return &o, nil
}

// ReserveObject records a pending upload of o.Key (State is set to
// pending). A pending row of the same key (a retried upload) is replaced;
// a ready one is ErrDuplicate.
func (s *Store) ReserveObject(ctx context.Context, o TransferObject) error {
	now := s.now().UnixMicro()
	res, err := s.w.ExecContext(ctx, s.rebind(`INSERT INTO transfer_objects (kind, scope, name, store_key, size, sha256, state,
		run_id, attempt, created_at, used_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)
		ON CONFLICT (store_key) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
		created_at = excluded.created_at, used_at = excluded.used_at, expires_at = excluded.expires_at
		WHERE transfer_objects.state = 'pending'`),
		o.Kind, o.Scope, o.Name, o.Key, o.Size, o.SHA256, nullID(o.RunID), o.Attempt, now, now, o.ExpiresAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("reserve %s: %w", o.Key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("reserve %s: %w", o.Key, ErrDuplicate)
	}
	return nil
}

// CommitObject makes the pending row of key ready until expires, and
// expires the other ready rows of its kind, scope and name, which it
// supersedes. A key that has no pending row (never reserved, expired and
// swept, committed before) is ErrNotFound.
func (s *Store) CommitObject(ctx context.Context, key string, expires time.Time) (*TransferObject, error) {
	var o *TransferObject
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now().UnixMicro()
		row := tx.QueryRowContext(ctx, s.rebind(`UPDATE transfer_objects SET state = 'ready', used_at = ?, expires_at = ?
			WHERE store_key = ? AND state = 'pending' RETURNING `+objectCols), now, expires.UnixMicro(), key)
		var err error
		if o, err = scanObject(row); err != nil {
			return notFound(err)
		}
		_, err = tx.ExecContext(ctx, s.rebind(`UPDATE transfer_objects SET expires_at = ? WHERE kind = ? AND scope = ?
			AND name = ? AND state = 'ready' AND id <> ?`), now, o.Kind, o.Scope, o.Name, o.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", key, err)
	}
	return o, nil
}

// ReadyObject returns the newest ready, unexpired object of kind, scope
// and name; with prefix set, of the names that start with name.
func (s *Store) ReadyObject(ctx context.Context, kind, scope, name string, prefix bool) (*TransferObject, error) {
	q := `SELECT ` + objectCols + ` FROM transfer_objects WHERE kind = ? AND scope = ? AND state = 'ready' AND expires_at > ?`
	args := []any{kind, scope, s.now().UnixMicro()}
	if prefix {
		q += ` AND substr(name, 1, ?) = ?`
		args = append(args, len(name), name)
	} else {
		q += ` AND name = ?`
		args = append(args, name)
	}
	o, err := scanObject(s.r.QueryRowContext(ctx, s.rebind(q+` ORDER BY created_at DESC, id DESC LIMIT 1`), args...))
	if err != nil {
		return nil, fmt.Errorf("find %s %s: %w", kind, name, notFound(err))
	}
	return o, nil
}

// TouchObject records a use of a ready object and moves its expiry to
// expires (never earlier than it was).
func (s *Store) TouchObject(ctx context.Context, id int64, expires time.Time) error {
	_, err := s.w.ExecContext(ctx, s.rebind(`UPDATE transfer_objects SET used_at = ?, expires_at = ?
		WHERE id = ? AND state = 'ready' AND expires_at < ?`), s.now().UnixMicro(), expires.UnixMicro(), id, expires.UnixMicro())
	if err != nil {
		return fmt.Errorf("touch object %d: %w", id, err)
	}
	return nil
}

// RunArtifacts returns the ready, unexpired artifacts of a run, one per
// stage (the newest), by stage ID.
func (s *Store) RunArtifacts(ctx context.Context, runID int64) ([]*TransferObject, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT `+objectCols+` FROM transfer_objects
		WHERE kind = 'artifact' AND run_id = ? AND state = 'ready' AND expires_at > ? ORDER BY name, created_at DESC, id DESC`),
		runID, s.now().UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("artifacts of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []*TransferObject
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, fmt.Errorf("artifacts of run %d: %w", runID, err)
		}
		if len(out) == 0 || out[len(out)-1].Name != o.Name {
			out = append(out, o)
		}
	}
	return out, rows.Err()
}

// ExpiredObjects returns at most limit objects whose expiry has passed,
// oldest first.
func (s *Store) ExpiredObjects(ctx context.Context, limit int) ([]*TransferObject, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT `+objectCols+` FROM transfer_objects WHERE expires_at <= ?
		ORDER BY expires_at LIMIT ?`), s.now().UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("expired objects: %w", err)
	}
	defer rows.Close()
	var out []*TransferObject
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, fmt.Errorf("expired objects: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeleteExpiredObject deletes the row id if it is still expired (a use may
// have extended it since it was listed). It reports whether it did.
func (s *Store) DeleteExpiredObject(ctx context.Context, id int64) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.rebind(`DELETE FROM transfer_objects WHERE id = ? AND expires_at <= ?`), id, s.now().UnixMicro())
	if err != nil {
		return false, fmt.Errorf("delete object %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ObjectKindStats is the count and total size of the ready objects of a
// kind.
type ObjectKindStats struct {
	Count int64
	Bytes int64
}

// ObjectStats returns the ready objects' count and size per kind.
func (s *Store) ObjectStats(ctx context.Context) (map[string]ObjectKindStats, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind, COUNT(*), COALESCE(SUM(size), 0) FROM transfer_objects WHERE state = 'ready' GROUP BY kind`)
	if err != nil {
		return nil, fmt.Errorf("object stats: %w", err)
	}
	defer rows.Close()
	out := map[string]ObjectKindStats{}
	for rows.Next() {
		var kind string
		var st ObjectKindStats
		if err := rows.Scan(&kind, &st.Count, &st.Bytes); err != nil {
			return nil, fmt.Errorf("object stats: %w", err)
		}
		out[kind] = st
	}
	return out, rows.Err()
}
