package checkoutbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/internal/gittest"
)

// files is the size of the benchmark repository's tree.
const files = 2000

func gitT(b *testing.B, dir string, args ...string) string {
	b.Helper()
	return gittest.Run(b, dir, args...)
}

// repo is a bare repository of 2,000 small files in 50 directories and a
// clone to commit from.
type repo struct{ bare, work string }

func newRepo(b *testing.B) *repo {
	dir := b.TempDir()
	r := &repo{bare: filepath.Join(dir, "origin.git"), work: filepath.Join(dir, "work")}
	gitT(b, dir, "init", "-q", "--bare", "-b", "main", r.bare)
	gitT(b, dir, "clone", "-q", r.bare, r.work)
	gitT(b, r.work, "checkout", "-q", "-b", "main")
	for i := 0; i < files; i++ {
		p := filepath.Join(r.work, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.go", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("package p\n\n// file %d\nvar X%d = %d\n", i, i, i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	r.commit(b, "initial")
	return r
}

func (r *repo) commit(b *testing.B, msg string) string {
	gitT(b, r.work, "add", ".")
	gitT(b, r.work, "commit", "-q", "-m", msg)
	gitT(b, r.work, "push", "-q", "origin", "main")
	return gitT(b, r.work, "rev-parse", "HEAD")
}

// change commits a change to one file and returns the new SHA.
func (r *repo) change(b *testing.B, i int) string {
	if err := os.WriteFile(filepath.Join(r.work, "d00", "f0000.go"), []byte(fmt.Sprintf("package p\n// %d\n", i)), 0o644); err != nil {
		b.Fatal(err)
	}
	return r.commit(b, "change")
}

type checkoutFunc func(ctx context.Context, b *testing.B, cacheDir string, r *repo, sha, dst string)

// cli is what agents check stage workspaces out with.
func cli(ctx context.Context, b *testing.B, cacheDir string, r *repo, sha, dst string) {
	c, err := gitmirror.NewCache(cacheDir)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Checkout(ctx, gitmirror.Source{URL: r.bare, Commit: sha, Ref: "refs/heads/main"}, dst); err != nil {
		b.Fatal(err)
	}
}

// goGitClone is the baseline: a shallow go-git clone of the branch, no
// cache (go-git has none), then the commit checked out.
func goGitClone(ctx context.Context, b *testing.B, _ string, r *repo, sha, dst string) {
	g, err := git.PlainCloneContext(ctx, dst, false, &git.CloneOptions{
		URL: r.bare, ReferenceName: plumbing.NewBranchReferenceName("main"), SingleBranch: true, Depth: 1, Tags: git.NoTags,
	})
	if err != nil {
		b.Fatal(err)
	}
	head, err := g.Head()
	if err != nil {
		b.Fatal(err)
	}
	if head.Hash().String() != sha {
		b.Fatalf("cloned %s, want %s", head.Hash(), sha)
	}
}

// BenchmarkCheckout checks out a commit of a local bare repository with
// 2,000 files: cold = empty cache (fetch everything, write the tree into
// a new directory); incremental = warm cache and one new commit to fetch,
// then write the tree into a new directory. go-git's PlainClone has no
// cache, so its two cases differ only by the commit.
func BenchmarkCheckout(b *testing.B) {
	for _, impl := range []struct {
		name string
		fn   checkoutFunc
	}{{"cli", cli}, {"go-git-clone", goGitClone}} {
		b.Run("cold/"+impl.name, func(b *testing.B) {
			r := newRepo(b)
			sha := gitT(b, r.work, "rev-parse", "HEAD")
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				cache, dst := b.TempDir(), filepath.Join(b.TempDir(), "ws")
				b.StartTimer()
				impl.fn(ctx, b, cache, r, sha, dst)
			}
		})
		b.Run("incremental/"+impl.name, func(b *testing.B) {
			r := newRepo(b)
			ctx := context.Background()
			cache := b.TempDir()
			impl.fn(ctx, b, cache, r, gitT(b, r.work, "rev-parse", "HEAD"), filepath.Join(b.TempDir(), "ws"))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				sha := r.change(b, i)
				dst := filepath.Join(b.TempDir(), "ws")
				b.StartTimer()
				impl.fn(ctx, b, cache, r, sha, dst)
			}
		})
	}
}
