package store

import (
	"context"
	"fmt"
)

// RunCount is the number of runs of a repo in one status.
type RunCount struct {
	Repo   string
	Status Status
	N      int64
}

// CountRuns counts runs by repo and status.
func (s *Store) CountRuns(ctx context.Context) ([]RunCount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.name, r.status, COUNT(*) FROM runs r JOIN repos p ON p.id = r.repo_id
		GROUP BY p.name, r.status ORDER BY p.name, r.status`)
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	defer rows.Close()
	var out []RunCount
	for rows.Next() {
		var c RunCount
		if err := rows.Scan(&c.Repo, &c.Status, &c.N); err != nil {
			return nil, fmt.Errorf("count runs: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// StageCount is the number of stages in one status.
type StageCount struct {
	Status Status
	N      int64
}

// CountStages counts stages by status (e.g. queued and running gauges).
func (s *Store) CountStages(ctx context.Context) ([]StageCount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM stages GROUP BY status ORDER BY status`)
	if err != nil {
		return nil, fmt.Errorf("count stages: %w", err)
	}
	defer rows.Close()
	var out []StageCount
	for rows.Next() {
		var c StageCount
		if err := rows.Scan(&c.Status, &c.N); err != nil {
			return nil, fmt.Errorf("count stages: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeploymentCount is the number of finished deployments of a repo to an
// environment with one result.
type DeploymentCount struct {
	Repo        string
	Environment string
	Result      string
	N           int64
}

// CountDeployments counts finished deployments by repo, environment and
// result.
func (s *Store) CountDeployments(ctx context.Context) ([]DeploymentCount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT p.name, d.environment, d.result, COUNT(*) FROM deployments d
		JOIN repos p ON p.id = d.repo_id WHERE d.result <> ''
		GROUP BY p.name, d.environment, d.result ORDER BY p.name, d.environment, d.result`)
	if err != nil {
		return nil, fmt.Errorf("count deployments: %w", err)
	}
	defer rows.Close()
	var out []DeploymentCount
	for rows.Next() {
		var c DeploymentCount
		if err := rows.Scan(&c.Repo, &c.Environment, &c.Result, &c.N); err != nil {
			return nil, fmt.Errorf("count deployments: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
