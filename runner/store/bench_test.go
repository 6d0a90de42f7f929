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
		return s
	}
	b.Run("sequential", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, dup, err := s.InsertDelivery(ctx, "github", fmt.Sprintf("d-%d", i), "push", payload); err != nil || dup {
				b.Fatalf("insert: dup=%v err=%v", dup, err)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		if _, _, err := s.InsertDelivery(ctx, "github", "d", "push", payload); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, dup, err := s.InsertDelivery(ctx, "github", "d", "push", payload); err != nil || !dup {
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
				if _, dup, err := s.InsertDelivery(ctx, "github", fmt.Sprintf("d-%d", n.Add(1)), "push", payload); err != nil || dup {
					b.Errorf("insert: dup=%v err=%v", dup, err)
					return
				}
			}
		})
	})
}
