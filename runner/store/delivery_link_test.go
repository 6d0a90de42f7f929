package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
)

// TestDeliveryLink: a run created with NewRun.DeliveryID marks the
// delivery processed in the same transaction, and a second run for the
// same delivery (a retry after a crash, or a racing worker) is refused
// without creating anything.
func TestDeliveryLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		repo := mustRepo(t, s, "acme/web")
		id, _, err := s.InsertDelivery(ctx, NewDelivery{RepoID: repo.ID, Source: "github", DeliveryID: "d-link", Payload: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		nr := NewRun{RepoID: repo.ID, Event: pipeline.Event{Kind: pipeline.EventPush, Branch: "main", Commit: "abc"},
			Trigger: TriggerWebhook, DeliveryID: id}

		// Concurrent attempts: exactly one run.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var runs []*Run
		var conflicts int
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.CreateRun(ctx, nr)
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
		id2, _, _ := s.InsertDelivery(ctx, NewDelivery{RepoID: repo.ID, Source: "github", DeliveryID: "d-settle", Payload: []byte(`{}`)})
		if err := s.SettleDelivery(ctx, id2, DeliveryIgnored, ""); err != nil {
			t.Errorf("SettleDelivery: %v", err)
		}
		if d, _ := s.Delivery(ctx, id2); d.State != DeliveryIgnored {
			t.Errorf("settled: got %s, want %s", d.State, DeliveryIgnored)
		}
	})
}

// TestDueDeliveries: a delivery retried later is not due before its
// time; due deliveries are listed per repository, in order, page by page.
func TestDueDeliveries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := ctxT(t)
		a, b := mustRepo(t, s, "acme/a"), mustRepo(t, s, "acme/b")
		var ids []int64
		for i := range 12 {
			repo := a
			if i%3 == 2 {
				repo = b
			}
			id, _, err := s.InsertDelivery(ctx, NewDelivery{RepoID: repo.ID, Source: "github", DeliveryID: fmt.Sprintf("p-%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		now := time.Now()
		// ids[0] failed twice and is due in a minute; ids[1] was ignored.
		if err := s.RetryDelivery(ctx, ids[0], 2, now.Add(time.Minute), "connection refused"); err != nil {
			t.Fatal(err)
		}
		if err := s.SettleDelivery(ctx, ids[1], DeliveryIgnored, ""); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Delivery(ctx, ids[0]); d.Attempts != 2 || d.Error != "connection refused" || d.State != DeliveryReceived ||
			!d.NextAttemptAt.Equal(time.UnixMicro(now.Add(time.Minute).UnixMicro()).UTC()) {
			t.Errorf("retried delivery: got %+v", d)
		}
		if err := s.RetryDelivery(ctx, ids[1], 1, now, "late"); !errors.Is(err, ErrConflict) {
			t.Errorf("RetryDelivery of a settled delivery: got %v, want ErrConflict", err)
		}
		repos, err := s.DueDeliveryRepos(ctx, now)
		if err != nil || len(repos) != 2 || repos[0] != a.ID || repos[1] != b.ID {
			t.Fatalf("DueDeliveryRepos: got %v %v, want [%d %d]", repos, err, a.ID, b.ID)
		}
		var got []int64
		var after int64
		for {
			page, err := s.DueDeliveries(ctx, a.ID, now, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, d := range page {
				if d.RepoID != a.ID {
					t.Errorf("delivery %d of repo %d listed for repo %d", d.ID, d.RepoID, a.ID)
				}
				got = append(got, d.ID)
				after = d.ID
			}
		}
		// Repo a has i = 0, 1, 3, 4, 6, 7, 9, 10; 0 is not due, 1 settled.
		want := []int64{ids[3], ids[4], ids[6], ids[7], ids[9], ids[10]}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("due deliveries of repo a: got %v, want %v", got, want)
		}
		later, err := s.DueDeliveries(ctx, a.ID, now.Add(2*time.Minute), 0, 1)
		if err != nil || len(later) != 1 || later[0].ID != ids[0] {
			t.Errorf("due a minute later: got %v %v, want delivery %d first", later, err, ids[0])
		}
	})
}

// TestMigrationUnboundDeliveries: a delivery still received when
// migration 0003 binds deliveries to repositories names its repository
// only in its unverified payload; it ends failed, saying why, and is
// never replayed. Handled deliveries keep their state and run.
func TestMigrationUnboundDeliveries(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := ctxT(t)
		// A database at version 1, as an older server left it.
		driver, dialect, conn := "sqlite", SQLite, strings.TrimPrefix(dsn, "sqlite://")
		if strings.HasPrefix(dsn, "postgres") {
			driver, dialect, conn = "pgx", Postgres, dsn
		}
		ms, err := migrations(dialect)
		if err != nil || ms[0].version != 1 {
			t.Fatalf("migrations: %v", err)
		}
		db, err := sql.Open(driver, conn)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{ms[0].sql,
			`CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
			`INSERT INTO schema_migrations VALUES (1, 'init', 1)`,
			`INSERT INTO deliveries (source, delivery_id, payload, state, received_at) VALUES ('github', 'old-1', '{"repo":"acme/b"}', 'received', 1)`,
			`INSERT INTO deliveries (source, delivery_id, payload, state, error, received_at) VALUES ('github', 'old-2', '{}', 'ignored', 'ping', 1)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%.60s: %v", q, err)
			}
		}
		db.Close()

		s := openTest(t, dsn) // applies 0002, 0003 and later
		if p, err := s.PendingDeliveries(ctx, 0); err != nil || len(p) != 0 {
			t.Errorf("pending after migration: got %d %v, want none", len(p), err)
		}
		var state, msg string
		if err := s.r.QueryRowContext(ctx, `SELECT state, error FROM deliveries WHERE delivery_id = 'old-1'`).Scan(&state, &msg); err != nil {
			t.Fatal(err)
		}
		if state != DeliveryFailed || !strings.Contains(msg, "not replayed") {
			t.Errorf("unbound received delivery: got %s %q, want failed, not replayed", state, msg)
		}
		if err := s.r.QueryRowContext(ctx, `SELECT state, error FROM deliveries WHERE delivery_id = 'old-2'`).Scan(&state, &msg); err != nil {
			t.Fatal(err)
		}
		if state != DeliveryIgnored || msg != "ping" {
			t.Errorf("handled delivery: got %s %q, want ignored ping", state, msg)
		}
		// New deliveries get ids after the old ones.
		repo := mustRepo(t, s, "acme/web")
		id, _, err := s.InsertDelivery(ctx, NewDelivery{RepoID: repo.ID, Source: "github", DeliveryID: "new"})
		if err != nil || id <= 2 {
			t.Errorf("new delivery after migration: got id %d %v, want > 2", id, err)
		}
	})
}
