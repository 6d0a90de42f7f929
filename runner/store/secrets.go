package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Sealer encrypts values at rest (runner/secretbox.Box). aad binds a
// sealed value to its place: opening it under another aad fails.
type Sealer interface {
	Seal(plain []byte, aad string) (string, error)
	Open(sealed, aad string) ([]byte, error)
	// KeyID names the key Seal uses now (see Reseal).
	KeyID() string
}

// WithSealer makes the store seal secrets, webhook secrets and forge
// tokens with s. Without one the store refuses to keep pipeline secrets
// and keeps webhook secrets and status tokens in the clear.
func WithSealer(sl Sealer) Option { return func(s *Store) { s.sealer = sl } }

// ErrNoSealer is returned when a secret is stored or read by a store
// opened without a Sealer.
var ErrNoSealer = errors.New("store: no secret key configured")

// Secret describes a pipeline secret; its value is only ever returned by
// SecretValues, for a job.
type Secret struct {
	RepoID int64 // 0: global
	Name   string
	// Events, Branches and Environments limit where the secret is given
	// out (event kinds, branch globs, environment names); empty means
	// anywhere.
	Events       []string
	Branches     []string
	Environments []string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	UpdatedBy    string
}

func secretAAD(repoID int64, name string) string {
	return "secret:" + strconv.FormatInt(repoID, 10) + ":" + name
}

// PutSecret creates or replaces a secret and reports whether it is new.
func (s *Store) PutSecret(ctx context.Context, sec Secret, value string) (created bool, err error) {
	if s.sealer == nil {
		return false, fmt.Errorf("put secret %s: %w", sec.Name, ErrNoSealer)
	}
	sealed, err := s.sealer.Seal([]byte(value), secretAAD(sec.RepoID, sec.Name))
	if err != nil {
		return false, fmt.Errorf("put secret %s: %w", sec.Name, err)
	}
	events, _ := json.Marshal(nonNil(sec.Events))
	branches, _ := json.Marshal(nonNil(sec.Branches))
	envs, _ := json.Marshal(nonNil(sec.Environments))
	now := s.now().UnixMicro()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.rebind(`UPDATE secrets SET value = ?, events = ?, branches = ?, environments = ?,
			updated_at = ?, updated_by = ? WHERE repo_id = ? AND name = ?`),
			sealed, string(events), string(branches), string(envs), now, sec.UpdatedBy, sec.RepoID, sec.Name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		created = true
		_, err = tx.ExecContext(ctx, s.rebind(`INSERT INTO secrets (repo_id, name, value, events, branches, environments,
			created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			sec.RepoID, sec.Name, sealed, string(events), string(branches), string(envs), now, now, sec.UpdatedBy)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("put secret %s of repo %d: %w", sec.Name, sec.RepoID, err)
	}
	return created, nil
}

// DeleteSecret removes a secret, or answers ErrNotFound.
func (s *Store) DeleteSecret(ctx context.Context, repoID int64, name string) error {
	res, err := s.w.ExecContext(ctx, s.rebind(`DELETE FROM secrets WHERE repo_id = ? AND name = ?`), repoID, name)
	if err != nil {
		return fmt.Errorf("delete secret %s of repo %d: %w", name, repoID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete secret %s of repo %d: %w", name, repoID, ErrNotFound)
	}
	return nil
}

const secretCols = `repo_id, name, events, branches, environments, created_at, updated_at, updated_by`

func scanSecret(row interface{ Scan(...any) error }, extra ...any) (*Secret, error) {
	var sec Secret
	var events, branches, envs string
	var created, updated int64
	dest := append([]any{&sec.RepoID, &sec.Name, &events, &branches, &envs, &created, &updated, &sec.UpdatedBy}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		src string
		dst *[]string
	}{{events, &sec.Events}, {branches, &sec.Branches}, {envs, &sec.Environments}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return nil, fmt.Errorf("secret %s: %w", sec.Name, err)
		}
	}
	sec.CreatedAt, sec.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return &sec, nil
}

// Secrets lists the secrets of a repository (0: the global ones) by name,
// without their values.
func (s *Store) Secrets(ctx context.Context, repoID int64) ([]*Secret, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT `+secretCols+` FROM secrets WHERE repo_id = ? ORDER BY name`), repoID)
	if err != nil {
		return nil, fmt.Errorf("list secrets of repo %d: %w", repoID, err)
	}
	defer rows.Close()
	var out []*Secret
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return out, rows.Err()
}

// SecretValue is a secret with its value, for one job.
type SecretValue struct {
	Secret
	Value string
}

// SecretValues returns the secrets a repository sees: its own and the
// global ones it has none of the same name of, by name, with their
// values.
func (s *Store) SecretValues(ctx context.Context, repoID int64) (map[string]*SecretValue, error) {
	if s.sealer == nil {
		return nil, fmt.Errorf("secrets of repo %d: %w", repoID, ErrNoSealer)
	}
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT `+secretCols+`, value FROM secrets
		WHERE repo_id = ? OR repo_id = 0 ORDER BY repo_id`), repoID)
	if err != nil {
		return nil, fmt.Errorf("secrets of repo %d: %w", repoID, err)
	}
	defer rows.Close()
	out := map[string]*SecretValue{}
	for rows.Next() {
		var sealed string
		sec, err := scanSecret(rows, &sealed)
		if err != nil {
			return nil, err
		}
		plain, err := s.sealer.Open(sealed, secretAAD(sec.RepoID, sec.Name))
		if err != nil {
			return nil, fmt.Errorf("secret %s of repo %d: %w", sec.Name, sec.RepoID, err)
		}
		out[sec.Name] = &SecretValue{Secret: *sec, Value: string(plain)} // the repo's own (ordered last) wins
	}
	return out, rows.Err()
}

// SecretNames returns the names of the secrets a repository sees (its own
// and the global ones), without opening any value.
func (s *Store) SecretNames(ctx context.Context, repoID int64) (map[string]bool, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT name FROM secrets WHERE repo_id = ? OR repo_id = 0`), repoID)
	if err != nil {
		return nil, fmt.Errorf("secret names of repo %d: %w", repoID, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}
