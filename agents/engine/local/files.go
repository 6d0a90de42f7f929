package local

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/artifact"
)

var _ engine.Files = (*Engine)(nil)

// CopyIn implements engine.Files: it extracts r into the workspace with
// artifact.ExtractTar, whose writes go through an os.Root.
func (e *Engine) CopyIn(ctx context.Context, s *engine.Spec, r io.Reader) error {
	if err := artifact.ExtractTar(ctx, r, e.Workspace(s), artifact.ExtractOptions{MaxBytes: 1 << 40, MaxEntries: 10_000_000}); err != nil {
		return fmt.Errorf("copy into the workspace of %s: %w", s.Stage.ID, err)
	}
	return nil
}

// CopyOut implements engine.Files. Everything is read through an os.Root
// on the workspace, so no symbolic link is followed out of it.
func (e *Engine) CopyOut(ctx context.Context, s *engine.Spec, paths []string, fn func(h *tar.Header, r io.Reader) error) error {
	root, err := os.OpenRoot(e.Workspace(s))
	if err != nil {
		return fmt.Errorf("copy out of the workspace of %s: %w", s.Stage.ID, err)
	}
	defer root.Close()
	for _, p := range paths {
		if err := copyOutPath(ctx, root, p, fn); err != nil {
			return fmt.Errorf("copy %q out of the workspace of %s: %w", p, s.Stage.ID, err)
		}
	}
	return nil
}

func copyOutPath(ctx context.Context, root *os.Root, p string, fn func(h *tar.Header, r io.Reader) error) error {
	if p == "" {
		return walkDir(ctx, root, "", fn)
	}
	// No parent may be a symbolic link: the path is read where it is.
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		fi, err := root.Lstat(filepath.FromSlash(dir))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%q is a symbolic link; paths are not read through links", dir)
		}
	}
	fi, err := root.Lstat(filepath.FromSlash(p))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return nil
	}
	if err != nil {
		return err
	}
	return visit(ctx, root, p, fi, fn)
}

// visit reports the entry p (described by fi) and, for a directory,
// everything below it.
func visit(ctx context.Context, root *os.Root, p string, fi fs.FileInfo, fn func(h *tar.Header, r io.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	native := filepath.FromSlash(p)
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = root.Readlink(native); err != nil {
			return err
		}
	}
	mode := fi.Mode()
	if !mode.IsRegular() && !mode.IsDir() && link == "" {
		// Sockets, devices, FIFOs: reported with their type, for the
		// caller to refuse or skip.
		return fn(&tar.Header{Name: p, Typeflag: tar.TypeFifo, Mode: int64(mode.Perm())}, strings.NewReader(""))
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	h.Name = p
	h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
	switch {
	case mode.IsRegular():
		f, err := root.Open(native)
		if err != nil {
			return err
		}
		defer f.Close()
		// Exactly the size in the header, even if the file changes.
		return fn(h, io.LimitReader(f, h.Size))
	case mode.IsDir():
		h.Name += "/"
		if err := fn(h, strings.NewReader("")); err != nil {
			return err
		}
		return walkDir(ctx, root, p, fn)
	}
	return fn(h, strings.NewReader(""))
}

func walkDir(ctx context.Context, root *os.Root, dir string, fn func(h *tar.Header, r io.Reader) error) error {
	name := "."
	if dir != "" {
		name = filepath.FromSlash(dir)
	}
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, de := range entries {
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := visit(ctx, root, path.Join(dir, de.Name()), fi, fn); err != nil {
			return err
		}
	}
	return nil
}
