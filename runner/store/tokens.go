package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"fmt"
	"time"

	"github.com/runnel-ci/runnel/runner/access"
)

// Token is an API token (the plaintext is never stored).
type Token struct {
	ID        int64
	Name      string
	Role      access.Role
	CreatedAt time.Time
}

// CreateToken makes a new API token with a role and returns its
// plaintext (shown to the user once; only its SHA-256 hash is stored) and
// its record.
func (s *Store) CreateToken(ctx context.Context, name string, role access.Role) (string, *Token, error) {
	if _, err := access.Parse(string(role)); err != nil {
		return "", nil, fmt.Errorf("create token %q: %w", name, err)
	}
	plain, err := newSecret("rnl_")
	if err != nil {
		return "", nil, err
	}
	t := &Token{Name: name, Role: role, CreatedAt: time.UnixMicro(s.now().UnixMicro()).UTC()}
	err = s.w.QueryRowContext(ctx, s.rebind(`INSERT INTO tokens (name, hash, admin, role, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`),
		name, hashToken(plain), role == access.Admin, string(role), t.CreatedAt.UnixMicro()).Scan(&t.ID)
	if err != nil {
		return "", nil, fmt.Errorf("create token %q: %w", name, err)
	}
	return plain, t, nil
}

// CheckToken returns the token whose plaintext this is, or ErrNotFound.
func (s *Store) CheckToken(ctx context.Context, plaintext string) (*Token, error) {
	h := hashToken(plaintext)
	var t Token
	var stored string
	var created sql.NullInt64
	err := s.r.QueryRowContext(ctx, s.rebind(`SELECT id, name, role, created_at, hash FROM tokens WHERE hash = ?`), h).
		Scan(&t.ID, &t.Name, &t.Role, &created, &stored)
	if err != nil {
		return nil, fmt.Errorf("check token: %w", notFound(err))
	}
	// The index lookup already matched; the constant-time compare keeps
	// the check honest should the lookup ever become a prefix or range scan.
	if subtle.ConstantTimeCompare([]byte(stored), []byte(h)) != 1 {
		return nil, fmt.Errorf("check token: %w", ErrNotFound)
	}
	t.CreatedAt = fromTS(created)
	return &t, nil
}

// Tokens lists API tokens ordered by id.
func (s *Store) Tokens(ctx context.Context) ([]*Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, role, created_at FROM tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []*Token
	for rows.Next() {
		var t Token
		var created sql.NullInt64
		if err := rows.Scan(&t.ID, &t.Name, &t.Role, &created); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.CreatedAt = fromTS(created)
		out = append(out, &t)
	}
	return out, rows.Err()
}

// DeleteToken revokes a token.
func (s *Store) DeleteToken(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, s.rebind(`DELETE FROM tokens WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("delete token %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete token %d: %w", id, ErrNotFound)
	}
	return nil
}
