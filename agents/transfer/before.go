package transfer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/artifact"
)

// part is one thing placed in the workspace before the first step.
type part struct {
	label string // for messages: "artifacts of build", "cache go-…"
	open  func(ctx context.Context) (io.ReadCloser, error)
	tar   bool   // the content is a tar stream (else a file at dest)
	dest  string // for a file
	size  int64  // for a file
	done  string // logged once it is in the workspace
	temp  string // a downloaded temporary file to remove afterwards
}

// Before implements stage.Transfer: the caches (restored first, so that
// artifacts and fetches win), the artifacts of the stages in
// Stage.Receive, then the fetches, in one tar stream into the workspace.
func (t *Transfer) Before(ctx context.Context, s *engine.Spec, out io.Writer) error {
	st := s.Stage
	if len(st.Receive) == 0 && len(st.Fetch) == 0 && len(st.Cache) == 0 {
		return nil
	}
	if t.Files == nil {
		return errors.New("this engine cannot move files into a workspace")
	}
	caches, r := t.caches(ctx, s, out)
	defer func() {
		for _, p := range caches {
			os.Remove(p.temp) // whether or not it was used
		}
	}()
	arts, err := t.artifacts(ctx, s, out)
	if err != nil {
		return err
	}
	fetches, err := t.fetches(ctx, s, out)
	if err != nil {
		return err
	}
	parts := append(append(caches, arts...), fetches...)
	if len(parts) > 0 {
		if err := t.copyIn(ctx, s, parts); err != nil {
			return err
		}
	}
	// After runs only when Before succeeded: only then is there state.
	t.keep(s, r)
	for _, p := range parts {
		logf(out, "%s", p.done)
	}
	return nil
}

func (t *Transfer) artifacts(ctx context.Context, s *engine.Spec, out io.Writer) ([]part, error) {
	var parts []part
	for _, id := range s.Stage.Receive {
		if t.Remote == nil {
			logf(out, "artifacts of %s: not received: no artifact store", id)
			continue
		}
		o, found, err := t.Remote.Artifact(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("artifacts of %s: %w", id, err)
		}
		if !found {
			logf(out, "artifacts of %s: none (the stage uploaded no artifacts)", id)
			continue
		}
		parts = append(parts, part{label: "artifacts of " + id, tar: true,
			open: func(ctx context.Context) (io.ReadCloser, error) { return t.Remote.Open(ctx, o) },
			done: fmt.Sprintf("artifacts of %s: received %s (sha256 %s)", id, size(o.Size), short(o.SHA256))})
	}
	return parts, nil
}

// copyIn streams the parts as one tar into the workspace. Archives are
// read entry by entry through an artifact.EntryChecker; a checksum that
// does not match at the end of one fails the whole copy.
func (t *Transfer) copyIn(ctx context.Context, s *engine.Spec, parts []part) error {
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		tw := tar.NewWriter(pw)
		err := writeParts(gctx, tw, parts)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
		return err
	})
	g.Go(func() error {
		err := t.Files.CopyIn(gctx, s, pr)
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		return err
	})
	return g.Wait()
}

func writeParts(ctx context.Context, tw *tar.Writer, parts []part) error {
	for _, p := range parts {
		if err := writePart(ctx, tw, p); err != nil {
			var ce contentError
			if errors.As(err, &ce) {
				return err
			}
			if errors.Is(err, artifact.ErrChecksum) || errors.Is(err, artifact.ErrBadKey) || errors.Is(err, artifact.ErrArchive) {
				return content(fmt.Errorf("%s: %w", p.label, err))
			}
			return fmt.Errorf("%s: %w", p.label, err)
		}
	}
	return nil
}

func writePart(ctx context.Context, tw *tar.Writer, p part) error {
	rc, err := p.open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	if !p.tar {
		if err := tw.WriteHeader(&tar.Header{Name: p.dest, Typeflag: tar.TypeReg, Mode: 0o644, Size: p.size}); err != nil {
			return err
		}
		_, err := io.CopyN(tw, rc, p.size)
		return err
	}
	var c artifact.EntryChecker
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, tar.ErrHeader) {
			// A corrupt object garbles headers too: report the
			// checksum when that is what it is.
			if _, derr := io.Copy(io.Discard, rc); derr != nil {
				return derr
			}
			return fmt.Errorf("%w: %v", artifact.ErrArchive, err)
		}
		if err != nil {
			return err
		}
		name, skip, err := c.Check(h)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		out := &tar.Header{Name: name, Typeflag: h.Typeflag, Mode: h.Mode & int64(fs.ModePerm), ModTime: h.ModTime.Truncate(time.Second), Linkname: h.Linkname, Size: h.Size}
		if h.Typeflag == tar.TypeDir {
			out.Name += "/"
		}
		if err := tw.WriteHeader(out); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.CopyN(tw, tr, h.Size); err != nil {
				return err
			}
		}
	}
	// Drain to the end so the reader verifies the checksum: a tar's
	// trailer may be followed by padding the tar reader never reads.
	_, err = io.Copy(io.Discard, rc)
	return err
}

// openFile opens a local file as a part's content.
func openFile(path string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return os.Open(path) }
}
