package store

import (
	"context"
	"fmt"
	"time"
)

// PRApproval is a maintainer's approval of the head commit of a fork's
// pull request (runner/trust).
type PRApproval struct {
	RepoID  int64
	HeadSHA string
	By      string // who approved
	At      time.Time
	RunID   int64 // the run it was given on
}

// ApprovePR records a; an approval of the same head commit recorded
// before stays (the first approver is the one on record) and approved is
// false.
func (s *Store) ApprovePR(ctx context.Context, a PRApproval) (approved bool, err error) {
	res, err := s.w.ExecContext(ctx, s.rebind(`INSERT INTO pr_approvals (repo_id, head_sha, approved_by, approved_at, run_id)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (repo_id, head_sha) DO NOTHING`),
		a.RepoID, a.HeadSHA, a.By, s.now().UnixMicro(), a.RunID)
	if err != nil {
		return false, fmt.Errorf("approve %s of repo %d: %w", a.HeadSHA, a.RepoID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// PRApproval returns the approval of head commit sha of repoID, or
// ErrNotFound.
func (s *Store) PRApproval(ctx context.Context, repoID int64, sha string) (*PRApproval, error) {
	a := PRApproval{RepoID: repoID, HeadSHA: sha}
	var at int64
	err := s.r.QueryRowContext(ctx, s.rebind(`SELECT approved_by, approved_at, run_id FROM pr_approvals WHERE repo_id = ? AND head_sha = ?`),
		repoID, sha).Scan(&a.By, &at, &a.RunID)
	if err != nil {
		return nil, fmt.Errorf("approval of %s of repo %d: %w", sha, repoID, notFound(err))
	}
	a.At = time.UnixMicro(at).UTC()
	return &a, nil
}
