package store

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestTransferObjects(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		clock := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		s := openTest(t, dsn, WithClock(clock.now))
		ctx := ctxT(t)
		day := 24 * time.Hour
		reserve := func(kind, scope, name, key string) {
			t.Helper()
			if err := s.ReserveObject(ctx, TransferObject{Kind: kind, Scope: scope, Name: name, Key: key, Size: 10,
				SHA256: "ab", ExpiresAt: clock.now().Add(day)}); err != nil {
				t.Fatalf("reserve %s: %v", key, err)
			}
		}
		commit := func(key string) {
			t.Helper()
			if _, err := s.CommitObject(ctx, key, clock.now().Add(7*day)); err != nil {
				t.Fatalf("commit %s: %v", key, err)
			}
		}

		reserve("cache", "repo:1", "go-aaa", "cache/1/go-aaa/1")
		if _, err := s.ReadyObject(ctx, "cache", "repo:1", "go-aaa", false); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a pending object is found: %v", err)
		}
		reserve("cache", "repo:1", "go-aaa", "cache/1/go-aaa/1") // a retried upload
		commit("cache/1/go-aaa/1")
		if err := s.ReserveObject(ctx, TransferObject{Kind: "cache", Scope: "repo:1", Name: "go-aaa", Key: "cache/1/go-aaa/1",
			ExpiresAt: clock.now().Add(day)}); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("reserving a ready key: %v, want ErrDuplicate", err)
		}
		if _, err := s.CommitObject(ctx, "cache/1/go-aaa/1", clock.now()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("committing twice: %v, want ErrNotFound", err)
		}
		clock.add(time.Second)
		reserve("cache", "repo:1", "go-bbb", "cache/1/go-bbb/2")
		commit("cache/1/go-bbb/2")
		reserve("cache", "repo:2", "go-ccc", "cache/2/go-ccc/3")
		commit("cache/2/go-ccc/3")

		o, err := s.ReadyObject(ctx, "cache", "repo:1", "go-aaa", false)
		if err != nil || o.Key != "cache/1/go-aaa/1" || o.State != ObjectReady {
			t.Fatalf("exact = %+v, %v", o, err)
		}
		o, err = s.ReadyObject(ctx, "cache", "repo:1", "go-", true)
		if err != nil || o.Name != "go-bbb" {
			t.Fatalf("newest by prefix = %+v, %v; want go-bbb (repo:2's go-ccc is another scope)", o, err)
		}
		if _, err := s.ReadyObject(ctx, "cache", "repo:1", "g_", true); !errors.Is(err, ErrNotFound) {
			t.Fatalf("prefix g_ matched: %v (no LIKE wildcards)", err)
		}

		// A newer commit of the same name supersedes the older row.
		reserve("artifact", "run:5", "build", "runs/5/build/1.tar")
		commit("runs/5/build/1.tar")
		clock.add(time.Second)
		reserve("artifact", "run:5", "build", "runs/5/build/2.tar")
		commit("runs/5/build/2.tar")
		arts, err := s.RunArtifacts(ctx, 0)
		if err != nil || len(arts) != 0 {
			t.Fatalf("artifacts of run 0: %v, %v", arts, err)
		}
		o, err = s.ReadyObject(ctx, "artifact", "run:5", "build", false)
		if err != nil || o.Key != "runs/5/build/2.tar" {
			t.Fatalf("artifact = %+v, %v; want attempt 2's", o, err)
		}

		// Expiry: the superseded artifact at once, unused caches after 7
		// days unless touched.
		exp, err := s.ExpiredObjects(ctx, 10)
		if err != nil || len(exp) != 1 || exp[0].Key != "runs/5/build/1.tar" {
			t.Fatalf("expired = %v, %v; want the superseded artifact", keysOf(exp), err)
		}
		ok, err := s.DeleteExpiredObject(ctx, exp[0].ID)
		if !ok || err != nil {
			t.Fatalf("delete expired: %v, %v", ok, err)
		}
		clock.add(6 * day)
		b, _ := s.ReadyObject(ctx, "cache", "repo:1", "go-bbb", false)
		if err := s.TouchObject(ctx, b.ID, clock.now().Add(7*day)); err != nil {
			t.Fatal(err)
		}
		clock.add(2 * day)
		exp, _ = s.ExpiredObjects(ctx, 10)
		if got := keysOf(exp); len(got) != 3 || got[0] != "cache/1/go-aaa/1" {
			t.Fatalf("expired after 8 days = %v; want go-aaa, go-ccc and the artifact, not the touched go-bbb", got)
		}
		st, err := s.ObjectStats(ctx)
		if err != nil || st["cache"].Count != 3 || st["cache"].Bytes != 30 || st["artifact"].Count != 1 {
			t.Fatalf("stats = %+v, %v", st, err)
		}
		// A use between listing and deleting keeps the object.
		if err := s.TouchObject(ctx, exp[0].ID, clock.now().Add(day)); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.DeleteExpiredObject(ctx, exp[0].ID); ok || err != nil {
			t.Fatalf("deleted an object used meanwhile: %v, %v", ok, err)
		}
	})
}

func keysOf(os []*TransferObject) []string {
	var out []string
	for _, o := range os {
		out = append(out, o.Key)
	}
	return out
}
