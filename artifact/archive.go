package artifact

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
)

// archiveName turns a path found in an archive into a key-like relative
// path: one leading "./" and one trailing "/" (directory entries) are
// tolerated, everything else must pass CleanKey. "." alone yields "".
func archiveName(name string) (string, error) {
	if name == "." || name == "./" {
		return "", nil
	}
	n := strings.TrimPrefix(name, "./")
	n = strings.TrimSuffix(n, "/")
	if err := checkKey(n); err != nil {
		return "", fmt.Errorf("%w: archive path %q: %s", ErrBadKey, truncate(name), err)
	}
	return n, nil
}

// SafeJoin joins an untrusted slash-separated archive path to dir and
// returns a path that is lexically inside dir (dir itself for "." or "./").
// It refuses absolute names, ".." segments, backslashes and everything else
// CleanKey refuses, with errors wrapping ErrBadKey. SafeJoin does not look
// at the filesystem: symbolic links already inside dir can still lead out,
// which is why ExtractTar writes through an os.Root.
func SafeJoin(dir, name string) (string, error) {
	n, err := archiveName(name)
	if err != nil {
		return "", err
	}
	if n == "" {
		return filepath.Clean(dir), nil
	}
	return filepath.Join(dir, filepath.FromSlash(n)), nil
}

// ExtractOptions bounds what ExtractTar accepts from an untrusted archive.
// Zero values mean the defaults.
type ExtractOptions struct {
	MaxBytes   int64 // total size of regular files; default 10 GiB
	MaxEntries int   // number of entries; default 100,000
}

// ErrArchive marks an archive ExtractTar refuses (besides bad names, which
// wrap ErrBadKey).
var ErrArchive = errors.New("refused archive entry")

// ExtractTar extracts a tar stream into dir, which must exist. It accepts
// directories, regular files and symbolic links whose target is relative
// and stays inside dir; it refuses absolute names, ".." segments, links that
// lead out of dir, hard links, device files, FIFOs and anything else, and it
// stops at the first refused entry (entries already written stay). All
// writes go through an os.Root on dir, so a symbolic link can never be used
// to write outside it, and an entry never replaces an existing symbolic link
// or follows one. Modes keep only the permission bits (no setuid, setgid or
// sticky); ownership and times are not restored.
func ExtractTar(ctx context.Context, r io.Reader, dir string, opts ExtractOptions) error {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 10 << 30
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100_000
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract into %s: %w", dir, err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	var total int64
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("extract into %s: %w", dir, err)
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract into %s: read tar: %w", dir, err)
		}
		if n >= opts.MaxEntries {
			return fmt.Errorf("extract into %s: %w: more than %d entries", dir, ErrArchive, opts.MaxEntries)
		}
		if err := extractEntry(root, tr, h, &total, opts.MaxBytes); err != nil {
			return fmt.Errorf("extract into %s: %w", dir, err)
		}
	}
}

func extractEntry(root *os.Root, tr *tar.Reader, h *tar.Header, total *int64, max int64) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil // pax global header (git archive writes one): no file
	}
	name, err := archiveName(h.Name)
	if err != nil {
		return err
	}
	perm := fs.FileMode(h.Mode) & fs.ModePerm
	if name == "" {
		if h.Typeflag == tar.TypeDir {
			return nil
		}
		return fmt.Errorf("%w: %q is not a directory", ErrArchive, h.Name)
	}
	if err := checkParents(root, name); err != nil {
		return err
	}
	native := filepath.FromSlash(name)
	switch h.Typeflag {
	case tar.TypeDir:
		fi, err := root.Lstat(native)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%w: directory %q replaces a non-directory", ErrArchive, name)
			}
			return nil
		}
		if err := root.MkdirAll(native, perm|0o700); err != nil {
			return fmt.Errorf("mkdir %q: %w", name, err)
		}
		return nil
	case tar.TypeReg:
		if h.Size < 0 || h.Size > max-*total {
			return fmt.Errorf("%w: %q makes the archive larger than %d bytes", ErrArchive, name, max)
		}
		*total += h.Size
		if err := refuseLink(root, native, name); err != nil {
			return err
		}
		// Replace rather than truncate an existing file: it may be a
		// hard link to a file elsewhere.
		if err := root.Remove(native); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replace %q: %w", name, err)
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("mkdir for %q: %w", name, err)
		}
		f, err := root.OpenFile(native, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o600)
		if err != nil {
			return fmt.Errorf("create %q: %w", name, err)
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %q: %w", name, err)
		}
		return nil
	case tar.TypeSymlink:
		t := h.Linkname
		if err := CheckLink(name, t); err != nil {
			return err
		}
		if _, err := root.Lstat(native); err == nil {
			return fmt.Errorf("%w: symlink %q replaces an existing entry", ErrArchive, name)
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("mkdir for %q: %w", name, err)
		}
		if err := root.Symlink(t, native); err != nil {
			return fmt.Errorf("symlink %q: %w", name, err)
		}
		return nil
	default:
		return fmt.Errorf("%w: %q has type %q (only directories, regular files and symlinks)", ErrArchive, name, string(h.Typeflag))
	}
}

// CheckLink checks a symbolic link at the relative path name (clean, as
// CleanKey accepts) whose target is target: the target must be relative,
// free of backslashes and NUL, and resolve, from the link's directory, to
// a path inside the tree. Errors wrap ErrArchive.
func CheckLink(name, target string) error {
	if target == "" || strings.HasPrefix(target, "/") || strings.ContainsAny(target, "\\\x00") {
		return fmt.Errorf("%w: symlink %q -> %q", ErrArchive, name, truncate(target))
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("%w: symlink %q -> %q leads out of the directory", ErrArchive, name, truncate(target))
	}
	return nil
}

// checkParents refuses an entry whose parent directories include a symbolic
// link: a link's target was checked lexically when it was created, but
// writing through it would resolve ".." from wherever it points.
func checkParents(root *os.Root, name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	p := ""
	for seg := range strings.SplitSeq(dir, "/") {
		p = path.Join(p, seg)
		fi, err := root.Lstat(filepath.FromSlash(p))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stat %q: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %q lies below symlink %q", ErrArchive, name, p)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: %q lies below non-directory %q", ErrArchive, name, p)
		}
	}
	return nil
}

func refuseLink(root *os.Root, native, name string) error {
	fi, err := root.Lstat(native)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: file %q replaces a %s", ErrArchive, name, fi.Mode().Type())
	}
	return nil
}
