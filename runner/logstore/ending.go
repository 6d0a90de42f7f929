package logstore

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// DefaultGrace is how long a log whose writer ended with chunks missing
// stays open for them. A chunk the server failed to store is delivered
// again by the bus 1 s later (a nak), one it never handled after the
// events consumer's AckWait (30 s); twice that covers both.
const DefaultGrace = 60 * time.Second

// OnIncomplete sets what is called, without the store's lock, when a log
// is closed with chunks still missing after the grace period; err wraps
// ErrIncomplete and says what is missing.
func (s *Store) OnIncomplete(fn func(k Key, err error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.incomplete = fn
}

// End appends the final chunk seq of k's log (the writer's EOF mark, data
// possibly empty): the log is closed once every chunk up to seq is
// written, or, with some still missing, after the grace period.
func (s *Store) End(k Key, seq int64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.writableLocked(k)
	if e == nil {
		return err
	}
	if err := s.appendLocked(k, e, seq, data); err != nil || e.done {
		return err
	}
	e.last = seq
	return s.endLocked(k, e)
}

// EndStep says that k's step ended after sending its log in chunks
// chunks (0: not said): like Finish, but it also waits for chunks up to
// chunks-1, and a log that was written and whose EOF mark has not
// arrived waits for it too (the mark is sent before the step's end; it is
// missing only when storing it failed and it comes again).
func (s *Store) EndStep(k Key, chunks int64) error {
	return s.end(k, func(e *entry) {
		// A log an earlier process wrote to (next < 0, no chunk came here)
		// cannot tell which chunks it holds.
		if chunks > 0 && e.last < 0 && e.next >= 0 {
			e.last = chunks - 1
		}
		e.wantEOF = e.next > 0
	})
}

// Finish says k's log has no more writer (its step ended, was cancelled
// or its agent was lost). A log that is complete as far as the store
// knows is closed at once and followers reach EOF; one waiting for chunks
// after a gap (or up to its EOF mark) stays open for them for the grace
// period and then is closed without them, marked where they are missing.
// Finishing a log that was never written creates an empty one.
func (s *Store) Finish(k Key) error {
	return s.end(k, func(*entry) {})
}

func (s *Store) end(k Key, mark func(*entry)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.writableLocked(k)
	if e == nil {
		return err
	}
	mark(e)
	return s.endLocked(k, e)
}

// endLocked closes e, k's log, if it is complete, or else starts its
// grace period.
func (s *Store) endLocked(k Key, e *entry) error {
	e.ending = true
	if e.complete() {
		return s.closeLocked(k, e)
	}
	if e.stop == nil {
		e.stop = s.after(s.grace, func() { s.expire(k, e) })
	}
	return nil
}

// complete reports whether nothing is known to be missing.
func (e *entry) complete() bool {
	if len(e.pending) > 0 {
		return false
	}
	if e.last >= 0 {
		return e.next > e.last
	}
	return !e.wantEOF
}

// expire closes e, k's log, after the grace period with what it holds.
func (s *Store) expire(k Key, e *entry) {
	s.mu.Lock()
	if s.open[k] != e || e.done {
		s.mu.Unlock()
		return
	}
	err := s.closeLocked(k, e)
	fn := s.incomplete
	s.mu.Unlock()
	if fn != nil && err != nil {
		fn(k, err)
	}
}

// closeLocked writes the chunks held after gaps in order, each gap and a
// missing end marked in the log, closes the file and wakes followers.
func (s *Store) closeLocked(k Key, e *entry) error {
	if e.stop != nil {
		e.stop()
	}
	var errs []error
	// Notes of missing chunks say nothing past the cap, where everything
	// is dropped.
	note := func(b []byte) {
		if e.cut {
			return
		}
		if _, err := e.f.Write(b); err != nil {
			errs = append(errs, err)
		}
	}
	held := make([]int64, 0, len(e.pending))
	for q := range e.pending {
		held = append(held, q)
	}
	sort.Slice(held, func(i, j int) bool { return held[i] < held[j] })
	missing := int64(0)
	for _, q := range held {
		missing += q - e.next
		note(fmt.Appendf(nil, "\n[runnel: log chunks %d-%d were not received; output is missing here]\n", e.next, q-1))
		if err := s.writeLocked(e, e.pending[q]); err != nil {
			errs = append(errs, err)
		}
		delete(e.pending, q)
		e.next = q + 1
	}
	switch {
	case e.last >= 0 && e.next <= e.last:
		missing += e.last - e.next + 1
		note(fmt.Appendf(nil, "\n[runnel: log chunks %d-%d were not received; the end of the output is missing]\n", e.next, e.last))
	case e.last < 0 && e.wantEOF:
		missing++
		note([]byte("\n[runnel: the end of this log was not received; output may be missing]\n"))
	}
	if missing > 0 {
		errs = append(errs, fmt.Errorf("%w: %d chunks not received within %s", ErrIncomplete, missing, s.grace))
	}
	errs = append(errs, e.f.Close())
	e.done = true
	close(e.notify)
	delete(s.open, k)
	if len(s.finished) >= maxFinished {
		clear(s.finished)
	}
	s.finished[k] = struct{}{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("finish log %s: %w", k, err)
	}
	return nil
}

// afterFunc runs f after d; the returned func stops it.
func afterFunc(d time.Duration, f func()) func() {
	t := time.AfterFunc(d, f)
	return func() { t.Stop() }
}
