package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/runnel-ci/runnel/runner/secretbox"
)

// sealRepo returns the column values of r's webhook secret and status
// token: sealed with a Sealer, as given without one.
func (s *Store) sealRepo(r Repo) (secret, token string, err error) {
	if secret, err = s.sealColumn(r.WebhookSecret, "webhook_secret"); err != nil {
		return "", "", err
	}
	token, err = s.sealColumn(r.StatusToken, "status_token")
	return secret, token, err
}

func (s *Store) sealColumn(v, col string) (string, error) {
	if s.sealer == nil || v == "" {
		return v, nil
	}
	return s.sealer.Seal([]byte(v), "repo:"+col)
}

// openColumn returns the plain value of a repo credential column.
func (s *Store) openColumn(v, col string) (string, error) {
	if !secretbox.Sealed(v) {
		return v, nil // written before sealing was on; Reseal seals it
	}
	if s.sealer == nil {
		return "", fmt.Errorf("%s is sealed: %w", col, ErrNoSealer)
	}
	b, err := s.sealer.Open(v, "repo:"+col)
	return string(b), err
}

// Reseal seals, under the Sealer's current key, every stored credential
// that is in the clear (kept before sealing was on) or sealed under
// another key (a rotation), and reports how many it changed. Open runs it,
// so upgrading seals existing values; `runnel secret rotate-key` runs it
// between BeginRotation and EndRotation.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	if s.sealer == nil {
		return 0, ErrNoSealer
	}
	cur := s.sealer.KeyID()
	stale := func(v string) bool {
		return v != "" && (!secretbox.Sealed(v) || secretbox.SealedBy(v) != cur)
	}
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		repos, err := s.resealRepos(ctx, tx, stale)
		if err != nil {
			return err
		}
		secrets, err := s.resealSecrets(ctx, tx, stale)
		n = repos + secrets
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reseal: %w", err)
	}
	return n, nil
}

// resealRepos seals the stale webhook secrets and status tokens of repos
// again, in tx, and reports how many repos it changed.
func (s *Store) resealRepos(ctx context.Context, tx *sql.Tx, stale func(string) bool) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, webhook_secret, status_token FROM repos`)
	if err != nil {
		return 0, err
	}
	type repoRow struct {
		id            int64
		secret, token string
	}
	var repos []repoRow
	for rows.Next() {
		var r repoRow
		if err := rows.Scan(&r.id, &r.secret, &r.token); err != nil {
			rows.Close()
			return 0, err
		}
		if stale(r.secret) || stale(r.token) {
			repos = append(repos, r)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, r := range repos {
		vals := [2]string{}
		for i, c := range []struct{ v, col string }{{r.secret, "webhook_secret"}, {r.token, "status_token"}} {
			plain, err := s.openColumn(c.v, c.col)
			if err != nil {
				return 0, fmt.Errorf("repo %d: %w", r.id, err)
			}
			if vals[i], err = s.sealColumn(plain, c.col); err != nil {
				return 0, err
			}
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE repos SET webhook_secret = ?, status_token = ? WHERE id = ?`),
			vals[0], vals[1], r.id); err != nil {
			return 0, err
		}
	}
	return len(repos), nil
}

// resealSecrets seals the stale pipeline secrets again, in tx, and
// reports how many it changed.
func (s *Store) resealSecrets(ctx context.Context, tx *sql.Tx, stale func(string) bool) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT repo_id, name, value FROM secrets`)
	if err != nil {
		return 0, err
	}
	type secretRow struct {
		repo        int64
		name, value string
	}
	var secrets []secretRow
	for rows.Next() {
		var r secretRow
		if err := rows.Scan(&r.repo, &r.name, &r.value); err != nil {
			rows.Close()
			return 0, err
		}
		if stale(r.value) {
			secrets = append(secrets, r)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, r := range secrets {
		aad := secretAAD(r.repo, r.name)
		plain, err := s.sealer.Open(r.value, aad)
		if err != nil {
			return 0, fmt.Errorf("secret %s of repo %d: %w", r.name, r.repo, err)
		}
		sealed, err := s.sealer.Seal(plain, aad)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE secrets SET value = ? WHERE repo_id = ? AND name = ?`),
			sealed, r.repo, r.name); err != nil {
			return 0, err
		}
	}
	return len(secrets), nil
}
