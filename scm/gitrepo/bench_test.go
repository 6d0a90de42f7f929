package gitrepo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchFiles is the size of the benchmark repository's tree.
const benchFiles = 2000

func benchRepo(b *testing.B) *fixture {
	f := newFixture(b)
	for i := 0; i < benchFiles; i++ {
		p := filepath.Join(f.work, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.go", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("package p\n\n// file %d\nvar X%d = %d\n", i, i, i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	runGitT(b, f.work, "add", ".")
	f.commit(b, "initial", map[string]string{"README": "r"})
	return f
}

// BenchmarkCheckout compares the git CLI and go-git for a cold checkout
// (empty cache: fetch everything, then materialise 2,000 files) and an
// incremental one (one new commit to fetch, then materialise).
func BenchmarkCheckout(b *testing.B) {
	for _, impl := range []struct {
		name string
		fn   checkoutFunc
	}{{"cli", checkoutCLI}, {"go-git", checkoutGoGit}} {
		b.Run("cold/"+impl.name, func(b *testing.B) {
			f := benchRepo(b)
			sha := runGitT(b, f.work, "rev-parse", "HEAD")
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				cache, dst := b.TempDir(), filepath.Join(b.TempDir(), "ws")
				b.StartTimer()
				if err := impl.fn(ctx, cache, f.bare, sha, "refs/heads/main", dst, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("incremental/"+impl.name, func(b *testing.B) {
			f := benchRepo(b)
			ctx := context.Background()
			cache := b.TempDir()
			sha := runGitT(b, f.work, "rev-parse", "HEAD")
			if err := impl.fn(ctx, cache, f.bare, sha, "refs/heads/main", filepath.Join(b.TempDir(), "ws"), nil); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				sha := f.commit(b, "change", map[string]string{"d00/f0000.go": fmt.Sprintf("package p\n// %d\n", i)})
				dst := filepath.Join(b.TempDir(), "ws")
				b.StartTimer()
				if err := impl.fn(ctx, cache, f.bare, sha, "refs/heads/main", dst, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
