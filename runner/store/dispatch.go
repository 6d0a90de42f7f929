package store

import (
	"context"
	"fmt"
)

// MarkPublished records that the bus accepted the job of attempt of a
// stage. It changes nothing when the stage has moved on to another
// attempt (that attempt's job is published by its own dispatch).
func (s *Store) MarkPublished(ctx context.Context, id int64, attempt int) error {
	_, err := s.w.ExecContext(ctx, s.rebind(`UPDATE stages SET published = ? WHERE id = ? AND attempt = ? AND published < ?`),
		attempt, id, attempt, attempt)
	if err != nil {
		return fmt.Errorf("mark job of stage %d attempt %d published: %w", id, attempt, err)
	}
	return nil
}

// ClaimStage grants the current attempt of a queued stage to the claim
// token of agent, once: it succeeds when the stage is queued at attempt
// and nobody claimed it, or when token holds the claim already (a repeated
// request). ErrConflict when another token holds it or the stage is not
// queued or running at attempt (ErrStale: another attempt is current).
func (s *Store) ClaimStage(ctx context.Context, id int64, attempt int, token, agent string) error {
	if token == "" {
		return fmt.Errorf("claim stage %d: empty token: %w", id, ErrConflict)
	}
	res, err := s.w.ExecContext(ctx, s.rebind(`UPDATE stages SET claim = ?, agent = ?
		WHERE id = ? AND attempt = ? AND status = ? AND claim = ''`), token, agent, id, attempt, StatusQueued)
	if err != nil {
		return fmt.Errorf("claim stage %d attempt %d: %w", id, attempt, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var cur int
	var claim string
	var status Status
	err = s.w.QueryRowContext(ctx, s.rebind(`SELECT attempt, claim, status FROM stages WHERE id = ?`), id).Scan(&cur, &claim, &status)
	what := fmt.Sprintf("claim stage %d attempt %d", id, attempt)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, notFound(err))
	case cur != attempt:
		return fmt.Errorf("%s: current attempt %d: %w", what, cur, ErrStale)
	case claim == token && (status == StatusQueued || status == StatusRunning):
		return nil
	}
	return fmt.Errorf("%s: %s: %w", what, status, ErrConflict)
}

// RetryStage queues a running or queued stage again with a new attempt,
// as QueueStage does, but only while attempt is its current one: the
// server's retry of an attempt whose agent went silent. ErrStale when
// another attempt is current, ErrConflict when the stage finished.
func (s *Store) RetryStage(ctx context.Context, id int64, attempt int) (int, error) {
	return s.queueStage(ctx, id, attempt)
}
