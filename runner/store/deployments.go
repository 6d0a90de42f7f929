package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Deployment results (the same strings as runner/metrics uses).
const (
	DeploySuccess    = "success"
	DeployFailure    = "failure"
	DeployRolledBack = "rolled_back"
)

// Deployment is one deploy of a commit to an environment, for DORA
// metrics and the deployments view.
type Deployment struct {
	ID          int64
	RepoID      int64
	Repo        string // the repo's name (filled on reads)
	Environment string
	RunID       int64 // 0 if none
	StageID     int64 // 0 if none
	Commit      string
	CommitTime  time.Time // lead time is measured from it; zero if unknown
	StartedAt   time.Time
	FinishedAt  time.Time // zero while in progress
	Result      string    // Deploy* constant; "" while in progress
	// RollsBack is the deployment this one rolled back (restored from), 0
	// if it is a normal deployment.
	RollsBack int64
	// Release, for a deploy stage's deployment (empty otherwise).
	Release Release
}

// Release is where a deploy stage's release is: reported by its agent
// while it runs (DeployProgress).
type Release struct {
	Provider string
	Version  string
	From     string // the version that served before
	Phase    string
	Traffic  int    // percent on the new version
	Outcome  string // succeeded, failed, rolled_back once it ended
}

// CreateDeployment records a deployment and returns its id: its start
// (Result empty; a zero StartedAt is set to now), or, with Result and
// FinishedAt set, a deployment that has finished already.
func (s *Store) CreateDeployment(ctx context.Context, d Deployment) (int64, error) {
	if d.StartedAt.IsZero() {
		d.StartedAt = s.now()
	}
	if (d.Result == "") != d.FinishedAt.IsZero() {
		return 0, fmt.Errorf("create deployment of repo %d to %s: result and finish time go together", d.RepoID, d.Environment)
	}
	var id int64
	err := s.w.QueryRowContext(ctx, s.rebind(`INSERT INTO deployments (repo_id, environment, run_id, stage_id, commit_sha,
		commit_time, started_at, finished_at, result, rolled_back_deployment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		d.RepoID, d.Environment, nullID(d.RunID), nullID(d.StageID), d.Commit, ts(d.CommitTime), d.StartedAt.UnixMicro(),
		ts(d.FinishedAt), d.Result, nullID(d.RollsBack)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("create deployment of repo %d to %s: %w", d.RepoID, d.Environment, err)
	}
	return id, nil
}

// FinishDeployment records a deployment's result once; ErrConflict if it
// has finished already.
func (s *Store) FinishDeployment(ctx context.Context, id int64, result string) error {
	if result == "" {
		return fmt.Errorf("finish deployment %d: empty result", id)
	}
	res, err := s.w.ExecContext(ctx, s.rebind(`UPDATE deployments SET result = ?, finished_at = ? WHERE id = ? AND result = ''`),
		result, s.now().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("finish deployment %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if err := exists(ctx, s.w, s.rebind(`SELECT 1 FROM deployments WHERE id = ?`), id); err != nil {
		return fmt.Errorf("finish deployment %d: %w", id, err)
	}
	return fmt.Errorf("finish deployment %d: %w", id, ErrConflict)
}

const deploymentCols = `d.id, d.repo_id, p.name, d.environment, d.run_id, d.stage_id, d.commit_sha, d.commit_time,
	d.started_at, d.finished_at, d.result, d.rolled_back_deployment_id,
	d.provider, d.version, d.from_version, d.phase, d.traffic, d.outcome`

const deploymentFrom = ` FROM deployments d JOIN repos p ON p.id = d.repo_id`

func scanDeployment(row interface{ Scan(...any) error }) (*Deployment, error) {
	var d Deployment
	var run, stage, commitTime, started, finished, rb sql.NullInt64
	if err := row.Scan(&d.ID, &d.RepoID, &d.Repo, &d.Environment, &run, &stage, &d.Commit, &commitTime,
		&started, &finished, &d.Result, &rb,
		&d.Release.Provider, &d.Release.Version, &d.Release.From, &d.Release.Phase, &d.Release.Traffic, &d.Release.Outcome); err != nil {
		return nil, err
	}
	d.RunID, d.StageID, d.RollsBack = run.Int64, stage.Int64, rb.Int64
	d.CommitTime, d.StartedAt, d.FinishedAt = fromTS(commitTime), fromTS(started), fromTS(finished)
	return &d, nil
}

// DeployProgress records where the release of d's run and environment
// is (d.Release), making its in-progress deployment on the first report.
// A deployment that has finished is not changed: ErrConflict.
func (s *Store) DeployProgress(ctx context.Context, d Deployment) (int64, error) {
	if d.RunID == 0 || d.Release.Provider == "" {
		return 0, fmt.Errorf("deploy progress of repo %d to %s: no run or provider", d.RepoID, d.Environment)
	}
	if d.StartedAt.IsZero() {
		d.StartedAt = s.now()
	}
	rl := d.Release
	var id int64
	err := s.w.QueryRowContext(ctx, s.rebind(`INSERT INTO deployments (repo_id, environment, run_id, stage_id, commit_sha,
		commit_time, started_at, result, provider, version, from_version, phase, traffic, outcome)
		VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, environment) WHERE provider <> '' DO UPDATE SET provider = excluded.provider, version = excluded.version,
		from_version = CASE WHEN excluded.from_version = '' THEN deployments.from_version ELSE excluded.from_version END,
		phase = excluded.phase, traffic = excluded.traffic, outcome = excluded.outcome, stage_id = excluded.stage_id
		WHERE deployments.result = '' RETURNING id`),
		d.RepoID, d.Environment, d.RunID, nullID(d.StageID), d.Commit, ts(d.CommitTime), d.StartedAt.UnixMicro(),
		rl.Provider, rl.Version, rl.From, rl.Phase, rl.Traffic, rl.Outcome).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("deploy progress of run %d to %s: %w", d.RunID, d.Environment, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("deploy progress of run %d to %s: %w", d.RunID, d.Environment, err)
	}
	return id, nil
}

// UnfinishedDeployments returns the deployments in progress, oldest first.
func (s *Store) UnfinishedDeployments(ctx context.Context) ([]*Deployment, error) {
	ds, err := s.queryDeployments(ctx, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.result = '' ORDER BY d.id`)
	if err != nil {
		return nil, fmt.Errorf("unfinished deployments: %w", err)
	}
	return ds, nil
}

// DeploymentOfRun returns the deployment of a run to env; ErrNotFound
// when there is none.
func (s *Store) DeploymentOfRun(ctx context.Context, runID int64, env string) (*Deployment, error) {
	ds, err := s.queryDeployments(ctx, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.run_id = ? AND d.environment = ?
		ORDER BY d.id DESC`, runID, env)
	if err != nil {
		return nil, fmt.Errorf("deployment of run %d to %s: %w", runID, env, err)
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("deployment of run %d to %s: %w", runID, env, ErrNotFound)
	}
	return ds[0], nil
}

// EndDeployment records the result of an in-progress deployment with its
// finish time and, for a rollback, the deployment whose version serves
// again (0: none); ErrConflict if it has finished already.
func (s *Store) EndDeployment(ctx context.Context, id int64, result string, finished time.Time, rollsBack int64) error {
	if result == "" || finished.IsZero() {
		return fmt.Errorf("end deployment %d: empty result or finish time", id)
	}
	res, err := s.w.ExecContext(ctx, s.rebind(`UPDATE deployments SET result = ?, finished_at = ?, rolled_back_deployment_id = ?
		WHERE id = ? AND result = ''`), result, finished.UnixMicro(), nullID(rollsBack), id)
	if err != nil {
		return fmt.Errorf("end deployment %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("end deployment %d: %w", id, ErrConflict)
	}
	return nil
}

// DeploymentFilter selects deployments for ListDeployments. Zero fields do
// not filter.
type DeploymentFilter struct {
	RepoID      int64
	Environment string
	Before      int64 // cursor: only IDs below this
	Limit       int   // 0 means 50, at most 1000
}

// ListDeployments returns deployments matching f, newest first.
func (s *Store) ListDeployments(ctx context.Context, f DeploymentFilter) ([]*Deployment, error) {
	q := `SELECT ` + deploymentCols + deploymentFrom + ` WHERE 1 = 1`
	var args []any
	if f.RepoID != 0 {
		q += ` AND d.repo_id = ?`
		args = append(args, f.RepoID)
	}
	if f.Environment != "" {
		q += ` AND d.environment = ?`
		args = append(args, f.Environment)
	}
	q, args = page(q, args, "d.id", f.Before, f.Limit)
	return s.queryDeployments(ctx, q, args...)
}

func (s *Store) queryDeployments(ctx context.Context, q string, args ...any) ([]*Deployment, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	defer rows.Close()
	var out []*Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("list deployments: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// LastDeployments returns, for each environment of a repo, its newest
// successfully finished deployment (what runs there now), keyed by
// environment.
func (s *Store) LastDeployments(ctx context.Context, repoID int64) (map[string]*Deployment, error) {
	ds, err := s.queryDeployments(ctx, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.id IN
		(SELECT MAX(id) FROM deployments WHERE repo_id = ? AND result = ? GROUP BY environment)`, repoID, DeploySuccess)
	if err != nil {
		return nil, fmt.Errorf("last deployments of repo %d: %w", repoID, err)
	}
	out := make(map[string]*Deployment, len(ds))
	for _, d := range ds {
		out[d.Environment] = d
	}
	return out, nil
}

// EachFinishedDeployment calls fn for every finished deployment in
// ascending order of FinishedAt (then ID); it stops at fn's first error
// and returns it. For rebuilding DORA metrics at start-up.
func (s *Store) EachFinishedDeployment(ctx context.Context, fn func(*Deployment) error) error {
	var afterTime, afterID int64 = -1 << 62, 0
	for {
		ds, err := s.queryDeployments(ctx, `SELECT `+deploymentCols+deploymentFrom+` WHERE d.result <> ''
			AND (d.finished_at > ? OR (d.finished_at = ? AND d.id > ?)) ORDER BY d.finished_at, d.id LIMIT 500`,
			afterTime, afterTime, afterID)
		if err != nil {
			return fmt.Errorf("finished deployments: %w", err)
		}
		if len(ds) == 0 {
			return nil
		}
		for _, d := range ds {
			if err := fn(d); err != nil {
				return err
			}
		}
		last := ds[len(ds)-1]
		afterTime, afterID = last.FinishedAt.UnixMicro(), last.ID
	}
}
