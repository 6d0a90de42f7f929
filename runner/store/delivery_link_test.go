package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/runnel-ci/runnel/pipeline"
)

// TestDeliveryLink: a run created under ContextWithDelivery marks the
// delivery processed in the same transaction, and a second run for the
// same delivery (a retry after a crash, or a racing worker) is refused
// without creating anything.
func TestDeliveryLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		id, _, err := s.InsertDelivery(ctx, "github", "d-link", "push", []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		nr := NewRun{RepoID: repo.ID, Event: pipeline.Event{Kind: pipeline.EventPush, Branch: "main", Commit: "abc"}, Trigger: TriggerWebhook}

		// Concurrent attempts: exactly one run.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var runs []*Run
		var conflicts int
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.CreateRun(ContextWithDelivery(ctx, id), nr)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					runs = append(runs, r)
				case errors.Is(err, ErrConflict):
					conflicts++
				default:
					t.Errorf("CreateRun: %v", err)
				}
			}()
		}
		wg.Wait()
		if len(runs) != 1 || conflicts != 3 {
			t.Fatalf("concurrent CreateRun for one delivery: got %d runs, %d conflicts, want 1, 3", len(runs), conflicts)
		}
		d, err := s.Delivery(ctx, id)
		if err != nil || d.State != DeliveryProcessed || d.RunID != runs[0].ID {
			t.Fatalf("delivery after CreateRun: got %+v %v, want processed with run %d", d, err, runs[0].ID)
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs`).Scan(&n); err != nil || n != 1 {
			t.Errorf("runs stored: got %d %v, want 1 (refused attempts roll back)", n, err)
		}
		// A late failure does not overwrite the link.
		if err := s.SettleDelivery(ctx, id, DeliveryFailed, "late"); !errors.Is(err, ErrConflict) {
			t.Errorf("SettleDelivery of a processed delivery: got %v, want ErrConflict", err)
		}
		if d, _ := s.Delivery(ctx, id); d.State != DeliveryProcessed || d.RunID != runs[0].ID {
			t.Errorf("after late SettleDelivery: got %s run %d, want processed run %d", d.State, d.RunID, runs[0].ID)
		}
		// Settling a pending delivery works once.
		id2, _, _ := s.InsertDelivery(ctx, "github", "d-settle", "push", []byte(`{}`))
		if err := s.SettleDelivery(ctx, id2, DeliveryIgnored, ""); err != nil {
			t.Errorf("SettleDelivery: %v", err)
		}
		if d, _ := s.Delivery(ctx, id2); d.State != DeliveryIgnored {
			t.Errorf("settled: got %s, want %s", d.State, DeliveryIgnored)
		}
	})
}

func TestPendingDeliveriesPaging(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		want := map[int64]bool{}
		for i := range 25 {
			id, _, err := s.InsertDelivery(ctx, "github", fmt.Sprintf("p-%d", i), "push", []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if i%5 == 0 {
				if err := s.SettleDelivery(ctx, id, DeliveryIgnored, ""); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want[id] = true
		}
		got := 0
		var after int64
		for {
			page, err := s.PendingDeliveriesAfter(ctx, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, d := range page {
				if !want[d.ID] || d.ID <= after {
					t.Errorf("page after %d: unexpected delivery %d", after, d.ID)
				}
				after = d.ID
				got++
			}
		}
		if got != len(want) {
			t.Errorf("paged pending deliveries: got %d, want %d", got, len(want))
		}
	})
}
