package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/runnel-ci/runnel/pipeline"
)

// CacheKey returns the key of c for the source tree at dir ("" for an
// empty workspace) and how many files went into it: c.Key itself, or,
// when c.Files is set, c.Key + "-" + the first 16 hex digits of a SHA-256
// over every file matching one of the globs, in path order: its path, NUL,
// the hex SHA-256 of its content and a newline. Symbolic links are hashed
// by their target text, never followed; .git directories are skipped.
func CacheKey(dir string, c pipeline.Cache) (string, int, error) {
	if len(c.Files) == 0 {
		return c.Key, 0, nil
	}
	files := map[string]string{} // path -> digest line
	if dir != "" {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return "", 0, fmt.Errorf("cache key %s: %w", c.Key, err)
		}
		defer root.Close()
		for _, pattern := range c.Files {
			if err := hashMatches(root, pattern, files); err != nil {
				return "", 0, fmt.Errorf("cache key %s: files %s: %w", c.Key, pattern, err)
			}
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		io.WriteString(h, n+"\x00"+files[n]+"\n")
	}
	return c.Key + "-" + hex.EncodeToString(h.Sum(nil))[:16], len(names), nil
}

// hashMatches adds the files below root that match pattern to files.
func hashMatches(root *os.Root, pattern string, files map[string]string) error {
	prefix := literalPrefix(pattern)
	if prefix == pattern {
		fi, err := root.Lstat(filepath.FromSlash(pattern))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return hashEntry(root, pattern, fi, files)
	}
	start := "."
	if prefix != "" {
		start = filepath.FromSlash(prefix)
	}
	return fs.WalkDir(root.FS(), filepath.ToSlash(start), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		if !pipeline.Match(pattern, p) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return hashEntry(root, p, fi, files)
	})
}

func hashEntry(root *os.Root, p string, fi fs.FileInfo, files map[string]string) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := root.Readlink(filepath.FromSlash(p))
		if err != nil {
			return err
		}
		files[p] = "link:" + target
	case fi.Mode().IsRegular():
		f, err := root.Open(filepath.FromSlash(p))
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		files[p] = hex.EncodeToString(h.Sum(nil))
	}
	return nil // directories and special files add nothing
}

// literalPrefix returns the leading segments of pattern that hold no
// glob metacharacters ("" when the first does); a literal pattern is its
// own prefix.
func literalPrefix(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.ContainsAny(s, `*?[\`) {
			return path.Join(segs[:i]...)
		}
	}
	return pattern
}
