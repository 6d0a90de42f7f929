package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkInsertDelivery measures webhook ingestion on SQLite: one
// deduplicating insert of a ~2 KiB payload per op, sequential and from
// parallel goroutines (the single writer connection serializes them).
func BenchmarkInsertDelivery(b *testing.B) {
	payload := []byte(`{"ref":"refs/heads/main","after":"` + fmt.Sprintf("%01990d", 0) + `"}`)
	open := func(b *testing.B) *Store {
		s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"),
			WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		if _, err := s.CreateRepo(context.Background(), Repo{Name: "acme/web", Forge: ForgeGitHub}); err != nil {
			b.Fatal(err)
		}
		return s
	}
	d := func(id string) NewDelivery {
		return NewDelivery{RepoID: 1, Source: "github", DeliveryID: id, Event: "push", Payload: payload}
	}
	b.Run("sequential", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, dup, err := s.InsertDelivery(ctx, d(fmt.Sprintf("d-%d", i))); err != nil || dup {
				b.Fatalf("insert: dup=%v err=%v", dup, err)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		if _, _, err := s.InsertDelivery(ctx, d("d")); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, dup, err := s.InsertDelivery(ctx, d("d")); err != nil || !dup {
				b.Fatalf("insert: dup=%v err=%v", dup, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		var n atomic.Int64
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, dup, err := s.InsertDelivery(ctx, d(fmt.Sprintf("d-%d", n.Add(1)))); err != nil || dup {
					b.Errorf("insert: dup=%v err=%v", dup, err)
					return
				}
			}
		})
	})
}
