package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// MaxEnvironments is the most environments one repository may declare: it
// bounds the environment label of the DORA metrics.
const MaxEnvironments = 20

// ErrTooMany is returned when a repository already has MaxEnvironments.
var ErrTooMany = fmt.Errorf("too many environments (at most %d per repository)", MaxEnvironments)

// Environment is a deployment environment declared for a repository: the
// stages that name it are deployments, on the branches and tags it
// accepts (globs, as pipeline.Environment).
type Environment struct {
	RepoID    int64
	Repo      string // the repo's name (filled on reads)
	Name      string
	Branches  []string
	Tags      []string
	CreatedAt time.Time
}

// PutEnvironment declares an environment or replaces its branches and
// tags. It reports whether the environment is new; ErrTooMany when the
// repository has MaxEnvironments already.
func (s *Store) PutEnvironment(ctx context.Context, e Environment) (created bool, err error) {
	branches, _ := json.Marshal(nonNil(e.Branches))
	tags, _ := json.Marshal(nonNil(e.Tags))
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.rebind(`UPDATE environments SET branches = ?, tags = ? WHERE repo_id = ? AND name = ?`),
			string(branches), string(tags), e.RepoID, e.Name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		var count int
		if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM environments WHERE repo_id = ?`), e.RepoID).Scan(&count); err != nil {
			return err
		}
		if count >= MaxEnvironments {
			return ErrTooMany
		}
		created = true
		_, err = tx.ExecContext(ctx, s.rebind(`INSERT INTO environments (repo_id, name, branches, tags, created_at) VALUES (?, ?, ?, ?, ?)`),
			e.RepoID, e.Name, string(branches), string(tags), s.now().UnixMicro())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("declare environment %s of repo %d: %w", e.Name, e.RepoID, err)
	}
	return created, nil
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// Environments returns the environments of a repository (repoID != 0) or
// of all repositories, ordered by repository and name.
func (s *Store) Environments(ctx context.Context, repoID int64) ([]*Environment, error) {
	q := `SELECT e.repo_id, p.name, e.name, e.branches, e.tags, e.created_at FROM environments e
		JOIN repos p ON p.id = e.repo_id`
	var args []any
	if repoID != 0 {
		q += ` WHERE e.repo_id = ?`
		args = append(args, repoID)
	}
	rows, err := s.r.QueryContext(ctx, s.rebind(q+` ORDER BY p.name, e.name`), args...)
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	defer rows.Close()
	var out []*Environment
	for rows.Next() {
		var e Environment
		var branches, tags string
		var created int64
		if err := rows.Scan(&e.RepoID, &e.Repo, &e.Name, &branches, &tags, &created); err != nil {
			return nil, fmt.Errorf("list environments: %w", err)
		}
		if err := json.Unmarshal([]byte(branches), &e.Branches); err != nil {
			return nil, fmt.Errorf("environment %s of %s: branches: %w", e.Name, e.Repo, err)
		}
		if err := json.Unmarshal([]byte(tags), &e.Tags); err != nil {
			return nil, fmt.Errorf("environment %s of %s: tags: %w", e.Name, e.Repo, err)
		}
		e.CreatedAt = time.UnixMicro(created)
		out = append(out, &e)
	}
	return out, rows.Err()
}
