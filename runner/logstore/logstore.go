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
	"sync/atomic"
	"time"

	"github.com/runnel-ci/runnel/agents/logs"
)

// ErrNotFound reports that a step has no log (yet).
var ErrNotFound = errors.New("log not found")

// ErrIncomplete reports that a log was finished while chunks before some
// it held had not arrived: the log is stored without them.
var ErrIncomplete = errors.New("log finished with chunks missing")

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
	// waiting holds, per log not open for writing, a channel closed when
	// it is opened (its first write or its finish) or when its run's logs
	// are finished: followers of a step that has not written yet wake at
	// once instead of polling.
	waiting map[Key]*waiter

	max     int64        // bytes kept of one log (SetStepMax)
	dropped atomic.Int64 // bytes dropped past max, all logs

	grace      time.Duration
	after      func(time.Duration, func()) func() // the clock of grace periods
	incomplete func(Key, error)
}

// waiter is a wake-up shared by the followers of one log not open yet.
type waiter struct {
	ch chan struct{}
	n  int // followers holding it
}

// maxFinished bounds the finished set; it is cleared when full.
const maxFinished = 100000

// entry is the in-memory state of a log being written.
type entry struct {
	f       *os.File
	next    int64            // next expected chunk sequence (-1: the first to come, in a file written before)
	pending map[int64][]byte // chunks that arrived before their predecessors
	done    bool
	notify  chan struct{} // closed and replaced on every write and at finish
	last    int64         // sequence of the EOF mark, -1 until it arrives
	wantEOF bool          // the step ended after writing: wait for its EOF mark
	ending  bool          // the writer ended: close once complete (End, Finish)
	stop    func()        // stops the grace period's timer
	size    int64         // bytes of the log kept, in chunk order
	cut     bool          // size reached the cap: the rest is dropped
}

// New returns a Store keeping logs below dir, creating it if needed.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir %s: %w", dir, err)
	}
	return &Store{dir: dir, open: make(map[Key]*entry), finished: make(map[Key]struct{}), waiting: make(map[Key]*waiter),
		max: logs.DefaultStepMax, grace: DefaultGrace, after: afterFunc}, nil
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
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log %s: %w", k, err)
	}
	e := &entry{f: f, next: 0, last: -1, pending: map[int64][]byte{}, notify: make(chan struct{}),
		size: fi.Size(), cut: fi.Size() > s.max}
	if fi.Size() > 0 {
		e.next = -1 // written by an earlier process: continue where it stopped
	}
	s.open[k] = e
	s.wakeLocked(k)
	return e, nil
}

// Append writes chunk seq of k's log. Sequences start at 0 and count up
// by one (in a log an earlier process wrote to, the first chunk seen
// fixes where they continue); a chunk below the next
// expected sequence is a redelivery and is dropped; one above it is held
// until the gap is filled (or the log is finished). A log whose writer
// ended (End, Finish) closes when the chunk that completes it arrives.
func (s *Store) Append(k Key, seq int64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.writableLocked(k)
	if e == nil {
		return err
	}
	return s.appendLocked(k, e, seq, data)
}

// writableLocked returns k's open log, opening it if needed, or nil when
// it was finished (or cannot be opened: the error says why).
func (s *Store) writableLocked(k Key) (*entry, error) {
	if _, done := s.finished[k]; done {
		return nil, nil
	}
	e, err := s.entryLocked(k)
	if err != nil || e.done {
		return nil, err
	}
	return e, nil
}

func (s *Store) appendLocked(k Key, e *entry, seq int64, data []byte) error {
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
		e.hold(s, seq, data)
		return nil
	}
	if err := s.writeLocked(e, data); err != nil {
		return fmt.Errorf("append log %s: %w", k, err)
	}
	e.next++
	for {
		p, ok := e.pending[e.next]
		if !ok {
			break
		}
		delete(e.pending, e.next)
		if err := s.writeLocked(e, p); err != nil {
			return fmt.Errorf("append log %s: %w", k, err)
		}
		e.next++
	}
	if e.ending && e.complete() {
		return s.closeLocked(k, e)
	}
	close(e.notify)
	e.notify = make(chan struct{})
	return nil
}

// FinishRun finishes every open log of run (a cancelled or lost stage's
// steps never send their end) and wakes the followers of its logs that
// were never written.
func (s *Store) FinishRun(run string) error {
	s.mu.Lock()
	var keys []Key
	for k := range s.open {
		if k.Run == run {
			keys = append(keys, k)
		}
	}
	for k := range s.waiting {
		if k.Run == run {
			s.wakeLocked(k)
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

// wakeLocked wakes the followers waiting for k to be opened.
func (s *Store) wakeLocked(k Key) {
	if w, ok := s.waiting[k]; ok {
		close(w.ch)
		delete(s.waiting, k)
	}
}

// logState is what a follower learns of a log from wait.
type logState int

const (
	stateLive     logState = iota // being written by this process
	stateFinished                 // finished by this process: complete
	stateOther                    // not written here (yet, or any more)
)

// wait returns a channel closed at k's next write or finish, and the
// log's state. For a log that is not live the channel is closed when it
// is opened or its run's logs are finished; the caller must call the
// returned release when it stops waiting.
func (s *Store) wait(k Key) (<-chan struct{}, logState, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.open[k]; ok {
		return e.notify, stateLive, func() {}
	}
	state := stateOther
	if _, ok := s.finished[k]; ok {
		state = stateFinished
	}
	w, ok := s.waiting[k]
	if !ok {
		w = &waiter{ch: make(chan struct{})}
		s.waiting[k] = w
	}
	w.n++
	return w.ch, state, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.n--; w.n == 0 && s.waiting[k] == w {
			delete(s.waiting, k)
		}
	}
}

// orphanPoll is how often a follower of a log that no process here
// writes (its writer went away with a crashed process) asks done whether
// it has ended. Logs written here wake their followers at once.
var orphanPoll = 10 * time.Second

// Follow returns a reader of k's log from byte offset from that replays
// what is written and then follows new chunks until the log is finished,
// done reports true, or ctx ends. A log that does not exist yet is
// waited for. Followers wake on every write, on the log's first write or
// finish, and when its run's logs are finished (FinishRun); done is asked
// then, and every orphanPoll for a log that this process does not write.
// The caller closes the reader.
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
		ch, state, release := r.s.wait(r.k)
		if r.f != nil {
			n, err := r.f.Read(p)
			if n > 0 {
				release()
				return n, nil
			}
			if err != nil && err != io.EOF {
				release()
				return 0, fmt.Errorf("follow log %s: %w", r.k, err)
			}
		}
		if r.f != nil && state == stateFinished || state == stateOther && r.done == nil && r.f != nil ||
			state == stateOther && r.done != nil && r.done() {
			release()
			return 0, io.EOF
		}
		err := r.sleep(ch, state == stateLive)
		release()
		if err != nil {
			return 0, err
		}
	}
}

// sleep waits for ch, or ctx; for a log not live here at most orphanPoll.
func (r *follower) sleep(ch <-chan struct{}, live bool) error {
	var poll <-chan time.Time
	if !live {
		t := time.NewTimer(orphanPoll)
		defer t.Stop()
		poll = t.C
	}
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-ch:
	case <-poll:
	}
	return nil
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
		if e.stop != nil {
			e.stop()
		}
		errs = append(errs, e.f.Close())
		close(e.notify)
		delete(s.open, k)
	}
	for k := range s.waiting {
		s.wakeLocked(k)
	}
	return errors.Join(errs...)
}
