package transfer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/pipeline"
)

// archive is a tar of workspace paths in a temporary file.
type archive struct {
	f       *os.File
	size    int64
	sum     string // hex SHA-256
	files   int    // regular files and links
	skipped int    // sockets, devices, FIFOs
	missing []string
}

func (a *archive) close() {
	a.f.Close()
	os.Remove(a.f.Name())
}

// contentError marks an error caused by the pipeline's content
// (stage.ErrContent) while keeping its own message.
type contentError struct{ error }

func (e contentError) Unwrap() []error { return []error{e.error, stage.ErrContent} }

func content(err error) error { return contentError{err} }

// makeArchive writes the workspace entries that match patterns into a
// temporary file below dir, hashing them on the way. Entries whose names
// break artifact.CleanKey, links that lead out of the workspace and hard
// links are refused (content errors); sockets, devices and FIFOs are
// skipped. A matched directory brings everything below it.
func makeArchive(ctx context.Context, files engine.Files, spec *engine.Spec, patterns []string, dir string, max int64) (*archive, error) {
	f, err := os.CreateTemp(dir, "upload-*.tar")
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	a := &archive{f: f}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h), max: max}
	tw := tar.NewWriter(cw)
	sel := newSelector(patterns)
	err = files.CopyOut(ctx, spec, sel.roots(), func(hdr *tar.Header, r io.Reader) error {
		return a.add(tw, sel, hdr, r)
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		a.close()
		if errors.Is(err, errTooLarge) {
			return nil, content(fmt.Errorf("archive is larger than %d bytes", max))
		}
		return nil, err
	}
	a.size, a.sum, a.missing = cw.n, hex.EncodeToString(h.Sum(nil)), sel.unmatched()
	return a, nil
}

func (a *archive) add(tw *tar.Writer, sel *selector, hdr *tar.Header, r io.Reader) error {
	name := strings.TrimSuffix(hdr.Name, "/")
	if !sel.take(name, hdr.Typeflag == tar.TypeDir) {
		return nil
	}
	if _, err := artifact.CleanKey(name); err != nil {
		return content(fmt.Errorf("workspace path: %w", err))
	}
	out := &tar.Header{Name: name, Mode: hdr.Mode & int64(fs.ModePerm), ModTime: hdr.ModTime.Truncate(time.Second)}
	switch hdr.Typeflag {
	case tar.TypeDir:
		out.Typeflag, out.Name = tar.TypeDir, name+"/"
	case tar.TypeReg:
		out.Typeflag, out.Size = tar.TypeReg, hdr.Size
		a.files++
	case tar.TypeSymlink:
		if err := artifact.CheckLink(name, hdr.Linkname); err != nil {
			return content(fmt.Errorf("symbolic link %s -> %s leads out of the workspace", name, hdr.Linkname))
		}
		out.Typeflag, out.Linkname = tar.TypeSymlink, hdr.Linkname
		a.files++
	case tar.TypeLink:
		return content(fmt.Errorf("%s is a hard link (to %s); hard links are not supported", name, hdr.Linkname))
	default:
		a.skipped++
		return nil
	}
	if err := tw.WriteHeader(out); err != nil {
		return err
	}
	if out.Typeflag == tar.TypeReg {
		if _, err := io.CopyN(tw, r, out.Size); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
	return nil
}

// selector decides which workspace entries belong to an archive.
type selector struct {
	patterns []string
	hits     []bool
	dirs     map[string]bool // matched directories: all below belongs
	seen     map[string]bool
}

func newSelector(patterns []string) *selector {
	return &selector{patterns: patterns, hits: make([]bool, len(patterns)), dirs: map[string]bool{}, seen: map[string]bool{}}
}

// roots are the workspace paths to read: each pattern's literal prefix,
// without those below another.
func (s *selector) roots() []string {
	var roots []string
	for _, p := range s.patterns {
		roots = append(roots, literalPrefix(p))
	}
	slices.Sort(roots)
	roots = slices.Compact(roots)
	var out []string
	for _, r := range roots {
		if !slices.ContainsFunc(out, func(o string) bool { return o == "" || strings.HasPrefix(r, o+"/") }) {
			out = append(out, r)
		}
	}
	return out
}

// take reports whether the entry name belongs to the archive (once).
func (s *selector) take(name string, dir bool) bool {
	if s.seen[name] {
		return false
	}
	in := false
	for i, p := range s.patterns {
		if pipeline.Match(p, name) {
			s.hits[i], in = true, true
		}
	}
	for d := path.Dir(name); !in && d != "."; d = path.Dir(d) {
		in = s.dirs[d]
	}
	if !in {
		return false
	}
	s.seen[name] = true
	if dir {
		s.dirs[name] = true
	}
	return true
}

func (s *selector) unmatched() []string {
	var out []string
	for i, hit := range s.hits {
		if !hit {
			out = append(out, s.patterns[i])
		}
	}
	return out
}

var errTooLarge = errors.New("archive too large")

type countWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.max > 0 && c.n+int64(len(p)) > c.max {
		return 0, errTooLarge
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
