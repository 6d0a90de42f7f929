package artifact

import (
	"archive/tar"
	"fmt"
	"path"
)

// EntryChecker applies the rules of ExtractTar to the entries of one tar
// stream without extracting them, for a stream that is forwarded (to a
// container engine, to a store) rather than extracted here. What it can
// check without a filesystem it checks: names (CleanKey), entry types,
// symbolic link targets, no entry of the stream below a symbolic link or
// a file of the stream or replacing one of another type, and the size and
// entry limits. Use one per stream.
type EntryChecker struct {
	Opts ExtractOptions

	n     int
	total int64
	seen  map[string]byte // names of this stream -> tar type flag
}

// Check returns the clean relative name of h's entry, or skip = true for
// an entry that carries no file (a pax global header, the root directory
// "./"). Errors wrap ErrBadKey or ErrArchive.
func (c *EntryChecker) Check(h *tar.Header) (name string, skip bool, err error) {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return "", true, nil
	}
	maxEntries, maxBytes := c.Opts.MaxEntries, c.Opts.MaxBytes
	if maxEntries <= 0 {
		maxEntries = 100_000
	}
	if maxBytes <= 0 {
		maxBytes = 10 << 30
	}
	if c.n++; c.n > maxEntries {
		return "", false, fmt.Errorf("%w: more than %d entries", ErrArchive, maxEntries)
	}
	name, err = archiveName(h.Name)
	if err != nil {
		return "", false, err
	}
	if name == "" {
		if h.Typeflag == tar.TypeDir {
			return "", true, nil
		}
		return "", false, fmt.Errorf("%w: %q is not a directory", ErrArchive, h.Name)
	}
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		switch t, ok := c.seen[p]; {
		case !ok, t == tar.TypeDir:
		case t == tar.TypeSymlink:
			return "", false, fmt.Errorf("%w: %q lies below symlink %q", ErrArchive, name, p)
		default:
			return "", false, fmt.Errorf("%w: %q lies below non-directory %q", ErrArchive, name, p)
		}
	}
	prev, again := c.seen[name]
	switch h.Typeflag {
	case tar.TypeDir:
		if again && prev != tar.TypeDir {
			return "", false, fmt.Errorf("%w: directory %q replaces a non-directory", ErrArchive, name)
		}
	case tar.TypeReg:
		if again && prev != tar.TypeReg {
			return "", false, fmt.Errorf("%w: file %q replaces a non-file", ErrArchive, name)
		}
		if h.Size < 0 || h.Size > maxBytes-c.total {
			return "", false, fmt.Errorf("%w: %q makes the archive larger than %d bytes", ErrArchive, name, maxBytes)
		}
		c.total += h.Size
	case tar.TypeSymlink:
		if again {
			return "", false, fmt.Errorf("%w: symlink %q replaces an existing entry", ErrArchive, name)
		}
		if err := CheckLink(name, h.Linkname); err != nil {
			return "", false, err
		}
	default:
		return "", false, fmt.Errorf("%w: %q has type %q (only directories, regular files and symlinks)", ErrArchive, name, string(h.Typeflag))
	}
	if c.seen == nil {
		c.seen = map[string]byte{}
	}
	c.seen[name] = h.Typeflag
	return name, false, nil
}
