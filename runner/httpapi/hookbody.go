package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/runnel-ci/runnel/scm"
)

// Webhook bodies arrive before anything about them is verified, so the
// bytes they occupy are bounded for all requests together: every byte
// of buffer is reserved from one budget before it is allocated, and a
// request that finds the budget spent is answered 503 at once (it does
// not wait, so slow senders cannot queue up). Together with the read
// deadline of the hook handler, this bounds what unauthenticated clients
// can make the server hold, in bytes and in time.

// errBusy means the body budget is spent. HTTP: 503 with Retry-After.
var errBusy = errors.New("webhook bodies being read use the whole budget")

// firstChunk is the first reservation of a body of unknown length.
const firstChunk = 64 << 10

// Buffers of pooledSize, what the start of a body longer than memBody
// is read into before it is spooled (or refused), are reused: a flood of
// long bodies then makes little garbage, and the heap stays near what is
// held. Doubling from firstChunk reaches it exactly.
const pooledSize = memBody

var pooled = sync.Pool{New: func() any { b := make([]byte, 0, pooledSize); return &b }}

// hookBody is one request's body being read under the budget.
type hookBody struct {
	budget   *semaphore.Weighted
	r        io.Reader
	length   int64 // Content-Length, -1 when unknown
	buf      []byte
	reserved int64
	eof      bool
	err      error // the read error that ended reading, if not EOF
}

func newHookBody(budget *semaphore.Weighted, r io.Reader, length int64) *hookBody {
	return &hookBody{budget: budget, r: r, length: length}
}

// bytes returns what was read so far.
func (b *hookBody) bytes() []byte { return b.buf }

// release returns the reservation; the bytes must not be used after it.
func (b *hookBody) release() {
	b.drop()
	b.reserved, b.buf = 0, nil
}

// all reads the whole body, at most limit bytes: an error wrapping
// scm.ErrTooLarge when it is longer, errBusy, or the read error (a
// deadline, a closed connection).
func (b *hookBody) all(limit int64) error {
	if err := b.announced(limit); err != nil {
		return err
	}
	if err := b.fill(limit + 1); err != nil {
		return err
	}
	if int64(len(b.buf)) > limit {
		return fmt.Errorf("read webhook body: more than %d bytes: %w", limit, scm.ErrTooLarge)
	}
	if !b.eof {
		return fmt.Errorf("read webhook body: %w", b.err)
	}
	return nil
}

// announced refuses a body whose Content-Length is over limit.
func (b *hookBody) announced(limit int64) error {
	if b.length > limit {
		return fmt.Errorf("read webhook body: %d bytes, limit %d: %w", b.length, limit, scm.ErrTooLarge)
	}
	return nil
}

// load replaces what b holds by the n bytes of r, a body read and
// verified elsewhere, reserving them from the budget and waiting for it
// as long as ctx allows (errBusy then).
func (b *hookBody) load(ctx context.Context, r io.ReaderAt, n int64) error {
	b.release()
	if b.budget.Acquire(ctx, n) != nil {
		return errBusy
	}
	b.buf, b.reserved, b.eof = make([]byte, n), n, true
	if _, err := r.ReadAt(b.buf, 0); err != nil {
		return fmt.Errorf("read spooled webhook body: %w", err)
	}
	return nil
}

// prefix reads until the body ends or n bytes were read.
func (b *hookBody) prefix(n int64) error { return b.fill(n) }

// fill reads until the body ends, a read fails or n bytes are held. A
// read error other than EOF is returned once reading stopped short of n
// bytes; the bytes read stay available.
func (b *hookBody) fill(n int64) error {
	for !b.eof && b.err == nil && int64(len(b.buf)) < n {
		if len(b.buf) == cap(b.buf) {
			if err := b.grow(n); err != nil {
				return err
			}
		}
		m, err := b.r.Read(b.buf[len(b.buf):min(int64(cap(b.buf)), n)])
		b.buf = b.buf[:len(b.buf)+m]
		switch {
		case errors.Is(err, io.EOF):
			b.eof = true
		case err != nil:
			b.err = err
		}
	}
	if b.err != nil && !b.eof && int64(len(b.buf)) < n {
		return fmt.Errorf("read webhook body: %w", b.err)
	}
	return nil
}

// grow enlarges the buffer towards n bytes, reserving the new size
// first: exactly the announced length when known, else doubling from
// firstChunk.
func (b *hookBody) grow(n int64) error {
	size := max(2*int64(cap(b.buf)), firstChunk)
	if b.length >= 0 && b.length+1 > int64(cap(b.buf)) {
		size = b.length + 1 // +1 to see the end without another grow
	}
	size = min(size, n) // > len(b.buf): fill grows only below n
	if !b.budget.TryAcquire(size) {
		return errBusy
	}
	var buf []byte
	if size == pooledSize {
		buf = (*pooled.Get().(*[]byte))[:len(b.buf)]
	} else {
		buf = make([]byte, len(b.buf), size)
	}
	copy(buf, b.buf)
	b.drop()
	b.buf, b.reserved = buf, size
	return nil
}

// drop returns the buffer's reservation, and the buffer to the pool
// when it came from there.
func (b *hookBody) drop() {
	if cap(b.buf) == pooledSize {
		buf := b.buf[:0]
		pooled.Put(&buf)
	}
	b.budget.Release(b.reserved)
}
