package logstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotFound reports that a step has no log (yet).
var ErrNotFound = errors.New("log not found")

// Key names one step attempt's log.
type Key struct {
	Run     string
	Stage   string
	Attempt int
	Step    string
}

func (k Key) String() string {
	return fmt.Sprintf("%s/%s/%d/%s", k.Run, k.Stage, k.Attempt, k.Step)
}

// Store is a directory of step logs. It is safe for concurrent use.
type Store struct {
	dir string

	mu   sync.Mutex
	open map[Key]*entry
	// finished remembers logs finished by this process so that a chunk
	// redelivered after the end is dropped instead of appended again.
	finished map[Key]struct{}
}

// maxFinished bounds the finished set; it is cleared when full.
const maxFinished = 100000

// entry is the in-memory state of a log being written.
type entry struct {
	f       *os.File
	next    int64            // next expected chunk sequence
	pending map[int64][]byte // chunks that arrived before their predecessors
	done    bool
	notify  chan struct{} // closed and replaced on every write and at finish
}

// New returns a Store keeping logs below dir, creating it if needed.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir %s: %w", dir, err)
	}
	return &Store{dir: dir, open: make(map[Key]*entry), finished: make(map[Key]struct{})}, nil
}

// component makes an ID safe as one path element: bytes outside
// [A-Za-z0-9_-] and a leading dot are escaped as %XX, so "..", "/" and
// NUL cannot reach the file system and distinct IDs stay distinct.
func component(s string) string {
	if s == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0
		if ok {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Path returns the file of k's log. IDs are sanitised, so the path is
// always below the store's directory.
func (s *Store) Path(k Key) string {
	return filepath.Join(s.dir, component(k.Run), component(k.Stage), strconv.Itoa(k.Attempt), component(k.Step)+".log")
}

func (s *Store) entryLocked(k Key) (*entry, error) {
	if e, ok := s.open[k]; ok {
		return e, nil
	}
	p := s.Path(k)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("create log dir for %s: %w", k, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", k, err)
	}
	e := &entry{f: f, next: -1, pending: map[int64][]byte{}, notify: make(chan struct{})}
	s.open[k] = e
	return e, nil
}

// Append writes chunk seq of k's log. Sequences start anywhere (the first
// chunk seen fixes the start) and count up by one; a chunk below the next
// expected sequence is a redelivery and is dropped; one above it is held
// until the gap is filled (or the log is finished).
func (s *Store) Append(k Key, seq int64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, done := s.finished[k]; done {
		return nil
	}
	e, err := s.entryLocked(k)
	if err != nil {
		return err
	}
	if e.done {
		return nil
	}
	if e.next < 0 {
		e.next = seq
	}
	switch {
	case seq < e.next:
		return nil
	case seq > e.next:
		if len(e.pending) > 4096 {
			return fmt.Errorf("append log %s: too many chunks out of order (want %d, got %d)", k, e.next, seq)
		}
		e.pending[seq] = append([]byte(nil), data...)
		return nil
	}
	if _, err := e.f.Write(data); err != nil {
		return fmt.Errorf("append log %s: %w", k, err)
	}
	e.next++
	for {
		p, ok := e.pending[e.next]
		if !ok {
			break
		}
		delete(e.pending, e.next)
		if _, err := e.f.Write(p); err != nil {
			return fmt.Errorf("append log %s: %w", k, err)
		}
		e.next++
	}
	close(e.notify)
	e.notify = make(chan struct{})
	return nil
}

// Finish marks k's log complete: chunks still waiting for a gap are
// written in order, the file is closed and followers reach EOF.
// Finishing a log that was never written creates an empty one.
func (s *Store) Finish(k Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, done := s.finished[k]; done {
		return nil
	}
	e, err := s.entryLocked(k)
	if err != nil {
		return err
	}
	if e.done {
		return nil
	}
	var errs []error
	for len(e.pending) > 0 {
		low := int64(-1)
		for q := range e.pending {
			if low < 0 || q < low {
				low = q
			}
		}
		if _, err := e.f.Write(e.pending[low]); err != nil {
			errs = append(errs, err)
		}
		delete(e.pending, low)
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

// FinishRun finishes every open log of run (a cancelled or lost stage's
// steps never send their end).
func (s *Store) FinishRun(run string) error {
	s.mu.Lock()
	var keys []Key
	for k := range s.open {
		if k.Run == run {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, k := range keys {
		errs = append(errs, s.Finish(k))
	}
	return errors.Join(errs...)
}

// Open returns k's log as it is now.
func (s *Store) Open(k Key) (*os.File, error) {
	f, err := os.Open(s.Path(k))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open log %s: %w", k, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", k, err)
	}
	return f, nil
}

// Live reports whether k's log is being written by this process.
func (s *Store) Live(k Key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.open[k]
	return ok
}

// waitChan returns a channel closed at k's next write or finish, and
// whether the log is still live.
func (s *Store) waitChan(k Key) (<-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.open[k]
	if !ok {
		return nil, false
	}
	return e.notify, true
}

// Follow returns a reader of k's log from byte offset from that replays
// what is written and then follows new chunks until the log is finished, done reports true (polled
// every second, for logs whose writer went away with a crashed process),
// or ctx ends. A log that does not exist yet is waited for. The caller
// closes the reader.
func (s *Store) Follow(ctx context.Context, k Key, from int64, done func() bool) io.ReadCloser {
	return &follower{s: s, k: k, ctx: ctx, from: from, done: done}
}

type follower struct {
	s    *Store
	k    Key
	ctx  context.Context
	from int64
	done func() bool
	f    *os.File
}

func (r *follower) Read(p []byte) (int, error) {
	for {
		if r.f == nil {
			f, err := os.Open(r.s.Path(r.k))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, fmt.Errorf("follow log %s: %w", r.k, err)
			}
			if err == nil {
				if _, err := f.Seek(r.from, io.SeekStart); err != nil {
					f.Close()
					return 0, fmt.Errorf("follow log %s from %d: %w", r.k, r.from, err)
				}
				r.f = f
			}
		}
		// Take the wait channel before reading so a write between the read
		// and the wait is not missed.
		ch, live := r.s.waitChan(r.k)
		if r.f != nil {
			n, err := r.f.Read(p)
			if n > 0 {
				return n, nil
			}
			if err != nil && err != io.EOF {
				return 0, fmt.Errorf("follow log %s: %w", r.k, err)
			}
		}
		if !live && r.f != nil && (r.done == nil || r.done()) {
			return 0, io.EOF
		}
		if !live && r.done != nil && r.done() {
			return 0, io.EOF
		}
		t := time.NewTimer(time.Second)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return 0, r.ctx.Err()
		case <-ch: // nil when not live: only the timer or ctx wake us
		case <-t.C:
		}
		t.Stop()
	}
}

func (r *follower) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

// Close closes every open log file (at shutdown); followers see EOF once
// their done function says so.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, e := range s.open {
		errs = append(errs, e.f.Close())
		close(e.notify)
		delete(s.open, k)
	}
	return errors.Join(errs...)
}
