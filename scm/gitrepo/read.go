package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/runnel-ci/runnel/scm"
)

// Limits.
const (
	MaxFileSize     = 1 << 20 // ReadFile refuses larger files with ErrTooLarge
	MaxChangedPaths = 1000    // ChangedPaths returns nil (unknown) beyond this
)

var (
	// ErrNotFound means the commit or the file does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoFile means the commit exists but has no such file; it matches
	// ErrNotFound too.
	ErrNoFile = fmt.Errorf("file %w", ErrNotFound)
	// ErrTooLarge means the file exceeds MaxFileSize.
	ErrTooLarge = errors.New("file too large")
)

// Commit describes one commit.
type Commit struct {
	SHA         string
	Message     string
	Time        time.Time // committer time
	Author      string    // author name
	AuthorEmail string
}

func open(repoPath string) (*git.Repository, error) {
	r, err := git.PlainOpen(repoPath)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", repoPath, err)
	}
	return r, nil
}

// openCommit opens the repository at repoPath and finds commit sha in it.
func openCommit(repoPath, sha string) (*object.Commit, error) {
	r, err := open(repoPath)
	if err != nil {
		return nil, err
	}
	return commit(r, repoPath, sha)
}

func commit(r *git.Repository, repoPath, sha string) (*object.Commit, error) {
	if !scm.ValidSHA(sha) {
		return nil, fmt.Errorf("commit %q in %s: not a full hex SHA: %w", sha, repoPath, ErrNotFound)
	}
	c, err := r.CommitObject(plumbing.NewHash(sha))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("commit %s in %s: %w", sha, repoPath, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("commit %s in %s: %w", sha, repoPath, err)
	}
	return c, nil
}

// ReadFile returns the contents of path at commit sha of the repository at
// repoPath (bare or not), read from its objects without a checkout. It
// returns ErrNotFound when the commit is absent, ErrNoFile (which is also
// ErrNotFound) when the file is absent or not a regular file, and
// ErrTooLarge beyond MaxFileSize.
func ReadFile(ctx context.Context, repoPath, sha, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := openCommit(repoPath, sha)
	if err != nil {
		return nil, err
	}
	f, err := c.File(path)
	if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("read %s at %s: %w", path, sha, ErrNoFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", path, sha, err)
	}
	if !f.Mode.IsFile() {
		return nil, fmt.Errorf("read %s at %s: not a regular file: %w", path, sha, ErrNoFile)
	}
	if f.Size > MaxFileSize {
		return nil, fmt.Errorf("read %s at %s: %d bytes, limit %d: %w", path, sha, f.Size, MaxFileSize, ErrTooLarge)
	}
	rd, err := f.Reader()
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", path, sha, err)
	}
	defer rd.Close()
	b, err := io.ReadAll(io.LimitReader(rd, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", path, sha, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("read %s at %s: %w", path, sha, ErrTooLarge)
	}
	return b, nil
}

// CommitInfo returns message, time and author of commit sha.
func CommitInfo(repoPath, sha string) (*Commit, error) {
	c, err := openCommit(repoPath, sha)
	if err != nil {
		return nil, err
	}
	return &Commit{
		SHA:         c.Hash.String(),
		Message:     c.Message,
		Time:        c.Committer.When,
		Author:      c.Author.Name,
		AuthorEmail: c.Author.Email,
	}, nil
}

// ChangedPaths returns the paths that differ between the trees of commits
// before and after, sorted. It returns nil, meaning unknown, when before is
// empty or all zeros (a new branch) or more than MaxChangedPaths changed.
func ChangedPaths(repoPath, before, after string) ([]string, error) {
	if scm.IsZeroSHA(before) {
		return nil, nil
	}
	r, err := open(repoPath)
	if err != nil {
		return nil, err
	}
	b, err := commit(r, repoPath, before)
	if err != nil {
		return nil, err
	}
	a, err := commit(r, repoPath, after)
	if err != nil {
		return nil, err
	}
	bt, err := b.Tree()
	if err != nil {
		return nil, fmt.Errorf("tree of %s: %w", before, err)
	}
	at, err := a.Tree()
	if err != nil {
		return nil, fmt.Errorf("tree of %s: %w", after, err)
	}
	changes, err := object.DiffTree(bt, at)
	if err != nil {
		return nil, fmt.Errorf("diff %s..%s: %w", before, after, err)
	}
	seen := map[string]bool{}
	out := []string{}
	for _, ch := range changes {
		for _, p := range []string{ch.From.Name, ch.To.Name} {
			if p != "" && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
		if len(out) > MaxChangedPaths {
			return nil, nil
		}
	}
	slices.Sort(out)
	return out, nil
}
