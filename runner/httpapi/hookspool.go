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
// wait for the body budget.
func (sp *hookSpool) verify(ctx context.Context, body *hookBody, chk scm.BodyCheck, limit int64) error {
	if err := body.announced(limit); err != nil {
		return err
	}
	f, err := os.CreateTemp(sp.dir, "webhook-body-*")
	if err != nil {
		return fmt.Errorf("spool webhook body: %w", err)
	}
	defer f.Close()
	// Unlinked at once: nothing is left behind, even by a crash.
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("spool webhook body: %w", err)
	}
	var reserved int64
	defer func() { sp.budget.Release(reserved) }()
	n, err := sp.copy(ctx, f, chk, body, limit, &reserved)
	if err != nil {
		return err
	}
	if err := chk.Check(); err != nil {
		return fmt.Errorf("webhook body: %w", err)
	}
	return body.load(ctx, f, n)
}

// copy writes what body holds, then the rest of it as it arrives, to f
// and chk, reserving the file's bytes ahead; it releases body's bytes
// once written and returns the body's length.
func (sp *hookSpool) copy(ctx context.Context, f *os.File, chk scm.BodyCheck, body *hookBody, limit int64, reserved *int64) (int64, error) {
	var n int64
	write := func(p []byte) error {
		if n+int64(len(p)) > limit {
			return fmt.Errorf("read webhook body: more than %d bytes: %w", limit, scm.ErrTooLarge)
		}
		for *reserved < n+int64(len(p)) {
			if err := sp.reserve(ctx); err != nil {
				return err
			}
			*reserved += spoolChunk
		}
		if _, err := f.Write(p); err != nil {
			return fmt.Errorf("spool webhook body: %w", err)
		}
		chk.Write(p)
		n += int64(len(p))
		return nil
	}
	if err := write(body.bytes()); err != nil {
		return 0, err
	}
	body.release()
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	for !body.eof {
		m, err := body.r.Read(*bp)
		if werr := write((*bp)[:m]); werr != nil {
			return 0, werr
		}
		switch {
		case errors.Is(err, io.EOF):
			body.eof = true
		case err != nil:
			return 0, fmt.Errorf("read webhook body: %w", err)
		}
	}
	return n, nil
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
