package workspace

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCheckout(t *testing.T) {
	root := t.TempDir()
	bare := filepath.Join(root, "r.git")
	run(t, root, "init", "-q", "--bare", bare)
	work := filepath.Join(root, "w")
	run(t, root, "clone", "-q", bare, work)
	os.WriteFile(filepath.Join(work, "a.txt"), []byte("one"), 0o644)
	run(t, work, "add", ".")
	run(t, work, "commit", "-qm", "first")
	first := run(t, work, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(work, "a.txt"), []byte("two"), 0o644)
	run(t, work, "commit", "-qam", "second")
	second := run(t, work, "rev-parse", "HEAD")
	run(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")

	c, err := NewCache(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url, sha, want string
	}{
		{"path, tip", bare, second, "two"},
		{"path, older commit", bare, first, "one"},
		{"file URL", "file://" + bare, first, "one"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(root, "ws", string(rune('a'+i)))
			if err := c.Checkout(context.Background(), Source{URL: tt.url, Commit: tt.sha, Ref: "refs/heads/main"}, dest); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dest, "a.txt"))
			if err != nil || string(b) != tt.want {
				t.Errorf("a.txt = %q, %v; want %q", b, err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dest, ".git")); err == nil {
				t.Errorf("workspace has a .git entry linking to the cache")
			}
		})
	}
}

func TestValidateRefusesUnsafe(t *testing.T) {
	sha := strings.Repeat("a", 40)
	tests := []struct {
		name string
		src  Source
	}{
		{"option URL", Source{URL: "--upload-pack=touch /tmp/x", Commit: sha}},
		{"ext transport", Source{URL: "ext::sh -c touch% /tmp/x", Commit: sha}},
		{"fd transport", Source{URL: "fd::3", Commit: sha}},
		{"short sha", Source{URL: "/r.git", Commit: "abc"}},
		{"option sha", Source{URL: "/r.git", Commit: "--all"}},
		{"option ref", Source{URL: "/r.git", Commit: sha, Ref: "--foo"}},
		{"empty", Source{Commit: sha}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.src.Validate()
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("Validate(%+v) = %v, want ErrUnsafe", tt.src, err)
			}
		})
	}
	if err := (Source{URL: "https://example.com/a/b.git", Commit: sha, Ref: "refs/heads/main"}).Validate(); err != nil {
		t.Errorf("Validate(https source) = %v, want nil", err)
	}
}

func TestReadFile(t *testing.T) {
	root := t.TempDir()
	bare := filepath.Join(root, "r.git")
	run(t, root, "init", "-q", "--bare", bare)
	work := filepath.Join(root, "w")
	run(t, root, "clone", "-q", bare, work)
	os.WriteFile(filepath.Join(work, ".pipeline.yml"), []byte("version: 1\n"), 0o644)
	run(t, work, "add", ".")
	run(t, work, "commit", "-qm", "first")
	sha := run(t, work, "rev-parse", "HEAD")
	run(t, work, "push", "-q", "origin", "HEAD:refs/heads/main")

	b, err := ReadFile(context.Background(), bare, sha, ".pipeline.yml")
	if err != nil || string(b) != "version: 1\n" {
		t.Errorf("ReadFile(bare) = %q, %v; want the file", b, err)
	}
	if _, err := ReadFile(context.Background(), bare, sha, "missing.yml"); !errors.Is(err, ErrNoFile) {
		t.Errorf("ReadFile(missing) error = %v, want ErrNoFile", err)
	}
	c, _ := NewCache(filepath.Join(root, "cache"))
	b, err = c.ReadFile(context.Background(), Source{URL: bare, Commit: sha}, ".pipeline.yml")
	if err != nil || string(b) != "version: 1\n" {
		t.Errorf("Cache.ReadFile = %q, %v; want the file", b, err)
	}
}
