package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/runnel-ci/runnel/scm"
)

// A forge hook's body longer than memBody (or of exactly that length:
// reading stops there) is not held in memory before it is verified: it streams through the hook's scm.BodyCheck into an
// unlinked temporary file, and only a body that passed is read back into
// memory (from the body budget, waiting for it until the hook's
// deadline). The file's bytes come from a budget of their own, reserved
// spoolChunk at a time; a request that finds it spent for spoolWait is
// answered 503. So what an unauthenticated client makes the server hold
// in memory is at most memBody and a copy buffer.
const (
	memBody    = 256 << 10
	spoolChunk = 1 << 20
	spoolWait  = time.Second
	copyBuffer = 32 << 10
)

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

// hookSpool is where long webhook bodies are written while verified.
type hookSpool struct {
	dir    string
	budget *semaphore.Weighted // bytes of all spooled bodies
}

// verify reads the rest of body, at most limit bytes in all, through chk
// into a file, and when chk passes, loads the file into body: an error
// wrapping scm.ErrSignature when it does not, scm.ErrTooLarge, errBusy,
// or the read error (a deadline, a closed connection). ctx bounds the
// waits for either budget.
func (sp *hookSpool) verify(ctx context.Context, body *hookBody, chk scm.BodyCheck, limit int64) error {
	if err := body.announced(limit); err != nil {
		return err
	}
	f, err := sp.create(chk, limit)
	if err != nil {
		return err
	}
	defer f.close()
	if err := f.write(ctx, body.bytes()); err != nil {
		return err
	}
	body.release()
	if err := f.copy(ctx, body); err != nil {
		return err
	}
	if err := chk.Check(); err != nil {
		return fmt.Errorf("webhook body: %w", err)
	}
	return body.load(ctx, f.f, f.n)
}

// spoolFile is one body being spooled: an unlinked file whose bytes are
// reserved from the spool budget ahead of writing, and the check every
// byte also goes through.
type spoolFile struct {
	sp          *hookSpool
	f           *os.File
	chk         scm.BodyCheck
	n, reserved int64
	limit       int64
}

func (sp *hookSpool) create(chk scm.BodyCheck, limit int64) (*spoolFile, error) {
	f, err := os.CreateTemp(sp.dir, "webhook-body-*")
	if err != nil {
		return nil, fmt.Errorf("spool webhook body: %w", err)
	}
	// Unlinked at once: nothing is left behind, even by a crash.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool webhook body: %w", err)
	}
	return &spoolFile{sp: sp, f: f, chk: chk, limit: limit}, nil
}

// close closes the file, which frees its bytes, and returns them to the
// budget.
func (s *spoolFile) close() {
	_ = s.f.Close() // unlinked and read (or refused): nothing to keep
	s.sp.budget.Release(s.reserved)
}

func (s *spoolFile) write(ctx context.Context, p []byte) error {
	if s.n+int64(len(p)) > s.limit {
		return fmt.Errorf("read webhook body: more than %d bytes: %w", s.limit, scm.ErrTooLarge)
	}
	for s.reserved < s.n+int64(len(p)) {
		if err := s.sp.reserve(ctx); err != nil {
			return err
		}
		s.reserved += spoolChunk
	}
	if _, err := s.f.Write(p); err != nil {
		return fmt.Errorf("spool webhook body: %w", err)
	}
	s.chk.Write(p)
	s.n += int64(len(p))
	return nil
}

// copy writes the rest of body as it arrives.
func (s *spoolFile) copy(ctx context.Context, body *hookBody) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	for !body.eof {
		m, err := body.r.Read(*bp)
		if werr := s.write(ctx, (*bp)[:m]); werr != nil {
			return werr
		}
		switch {
		case errors.Is(err, io.EOF):
			body.eof = true
		case err != nil:
			return fmt.Errorf("read webhook body: %w", err)
		}
	}
	return nil
}

// reserve takes spoolChunk bytes of the spool budget, waiting at most
// spoolWait: errBusy then.
func (sp *hookSpool) reserve(ctx context.Context) error {
	if sp.budget.TryAcquire(spoolChunk) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, spoolWait)
	defer cancel()
	if sp.budget.Acquire(ctx, spoolChunk) != nil {
		return errBusy
	}
	return nil
}
