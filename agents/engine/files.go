package engine

import (
	"archive/tar"
	"context"
	"io"
)

// Files is an optional capability of an Engine (found by type assertion):
// moving files into and out of a stage's workspace between Setup and
// Teardown, as tar streams. A stage's artifacts, fetches and caches need
// it (see agents/transfer). Calls for one Spec are never concurrent with
// each other or with Run.
type Files interface {
	// CopyIn extracts the tar stream r at the root of s's workspace. Entry
	// names are relative to the workspace; the caller has checked them
	// (artifact.EntryChecker). Existing files are replaced.
	CopyIn(ctx context.Context, s *Spec, r io.Reader) error
	// CopyOut calls fn for every entry at or below each workspace path in
	// paths, in tar order (a directory before what it holds), with
	// h.Name relative to the workspace ("out/bin.txt"). Paths are
	// slash-separated, relative and clean; "" is the whole workspace. A
	// path that does not exist is skipped. A path is never read through a
	// symbolic link: one among its parent directories is an error (the
	// path itself, when a link, is an entry like any other). r holds a
	// regular file's content and must be read (or not) before fn returns.
	CopyOut(ctx context.Context, s *Spec, paths []string, fn func(h *tar.Header, r io.Reader) error) error
}
