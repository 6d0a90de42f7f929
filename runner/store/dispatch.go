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
