package statusq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeReporter records attempts and fails according to failFor.
type fakeReporter struct {
	mu       sync.Mutex
	attempts []scm.Status
	okay     []scm.Status
	inFlight map[key]bool
	overlap  []string
	// failFor returns the error for the n-th attempt (1-based) at s.
	failFor func(s scm.Status, n int) error
	tries   map[scm.Status]int
	delay   time.Duration
}

func newFake(failFor func(scm.Status, int) error) *fakeReporter {
	return &fakeReporter{failFor: failFor, inFlight: map[key]bool{}, tries: map[scm.Status]int{}}
}

func (f *fakeReporter) Report(ctx context.Context, s scm.Status) error {
	k := keyOf(s)
	f.mu.Lock()
	if f.inFlight[k] {
		f.overlap = append(f.overlap, s.Context)
	}
	f.inFlight[k] = true
	f.tries[s]++
	n := f.tries[s]
	f.attempts = append(f.attempts, s)
	f.mu.Unlock()

	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
		}
	}
	var err error
	if f.failFor != nil {
		err = f.failFor(s, n)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.inFlight, k)
	if err == nil {
		f.okay = append(f.okay, s)
	}
	return err
}

func st(ctx string, state scm.State, seq int) scm.Status {
	return scm.Status{Repo: "acme/web", Commit: "0123456789abcdef0123456789abcdef01234567", Context: ctx, State: state, Description: strconv.Itoa(seq)}
}

func closeWithin(t *testing.T, q *Queue, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestRetryThenDeliver(t *testing.T) {
	rep := newFake(func(s scm.Status, n int) error {
		if n <= 2 {
			return errors.New("forge answered 500")
		}
		return nil
	})
	var failures int
	q := New(rep, Options{BaseDelay: time.Millisecond, MaxAttempts: 5, Logger: quiet(),
		OnFailure: func(scm.Status, error) { failures++ }})
	want := st("runnel", scm.StateSuccess, 1)
	if err := q.Enqueue(want); err != nil {
		t.Fatal(err)
	}
	closeWithin(t, q, 5*time.Second)

	if len(rep.okay) != 1 || rep.okay[0] != want {
		t.Fatalf("delivered: got %+v, want exactly %+v", rep.okay, want)
	}
	if len(rep.attempts) != 3 {
		t.Errorf("attempts: got %d, want 3", len(rep.attempts))
	}
	if failures != 0 {
		t.Errorf("OnFailure calls: got %d, want 0", failures)
	}
}

func TestGiveUp(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantAttempts int
	}{
		{"retryable error exhausts attempts", errors.New("503"), 4},
		{"permanent error stops at once", Permanent(errors.New("422 validation failed")), 1},
		{"forge rejection stops at once", fmt.Errorf("github status: %w: 404", scm.ErrRejected), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := newFake(func(scm.Status, int) error { return tt.err })
			var mu sync.Mutex
			var failed []scm.Status
			q := New(rep, Options{BaseDelay: time.Millisecond, MaxAttempts: 4, Logger: quiet(),
				OnFailure: func(s scm.Status, err error) {
					mu.Lock()
					failed = append(failed, s)
					mu.Unlock()
				}})
			s := st("runnel/build", scm.StateFailure, 1)
			_ = q.Enqueue(s)
			closeWithin(t, q, 5*time.Second)
			if len(rep.attempts) != tt.wantAttempts {
				t.Errorf("attempts: got %d, want %d", len(rep.attempts), tt.wantAttempts)
			}
			if len(failed) != 1 || failed[0] != s {
				t.Errorf("OnFailure: got %+v, want once with %+v", failed, s)
			}
		})
	}
}

// TestOrderPerContext enqueues a stream of states for several contexts
// while the forge fails often, and checks that per context the delivered
// states only move forward and end at the newest one.
func TestOrderPerContext(t *testing.T) {
	rep := newFake(func(s scm.Status, n int) error {
		seq, _ := strconv.Atoi(s.Description)
		if (seq+n)%3 != 0 { // fails two attempts in three, varying by status
			return fmt.Errorf("flaky forge (seq %d attempt %d)", seq, n)
		}
		return nil
	})
	rep.delay = 200 * time.Microsecond
	q := New(rep, Options{Workers: 4, BaseDelay: 100 * time.Microsecond, MaxDelay: time.Millisecond, MaxAttempts: 50, Logger: quiet()})

	contexts := []string{"runnel", "runnel/build", "runnel/test", "runnel/deploy"}
	states := []scm.State{scm.StatePending, scm.StatePending, scm.StateFailure, scm.StatePending, scm.StateSuccess}
	seq := 0
	last := map[string]scm.Status{}
	// The stream's pace (a load generator): rounds meet deliveries in flight.
	pace := time.NewTicker(100 * time.Microsecond)
	defer pace.Stop()
	for round := 0; round < 20; round++ {
		for _, c := range contexts {
			seq++
			s := st(c, states[(round+seq)%len(states)], seq)
			if err := q.Enqueue(s); err != nil {
				t.Fatal(err)
			}
			last[c] = s
		}
		<-pace.C
	}
	closeWithin(t, q, 10*time.Second)

	if len(rep.overlap) > 0 {
		t.Errorf("concurrent deliveries of one context: %v", rep.overlap)
	}
	prev := map[string]int{}
	final := map[string]scm.Status{}
	for _, s := range rep.okay {
		n, _ := strconv.Atoi(s.Description)
		if n <= prev[s.Context] {
			t.Errorf("context %s: delivered seq %d after seq %d", s.Context, n, prev[s.Context])
		}
		prev[s.Context] = n
		final[s.Context] = s
	}
	for _, c := range contexts {
		if final[c] != last[c] {
			t.Errorf("context %s: last delivered %+v, want newest %+v", c, final[c], last[c])
		}
	}
}

func TestFullQueueDropsOldest(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	rep := ReporterFunc(func(ctx context.Context, s scm.Status) error {
		started <- struct{}{}
		<-release
		return nil
	})
	var mu sync.Mutex
	var dropped []string
	q := New(rep, Options{Workers: 1, MaxPending: 2, Logger: quiet(), OnDrop: func(s scm.Status) {
		mu.Lock()
		dropped = append(dropped, s.Context)
		mu.Unlock()
	}})
	_ = q.Enqueue(st("a", scm.StatePending, 1))
	<-started // a is in flight; the queue is empty again
	_ = q.Enqueue(st("b", scm.StatePending, 2))
	_ = q.Enqueue(st("c", scm.StatePending, 3))
	_ = q.Enqueue(st("c", scm.StateSuccess, 4)) // coalesces, no drop
	_ = q.Enqueue(st("d", scm.StatePending, 5)) // full: drops b
	if got := q.Len(); got != 2 {
		t.Errorf("Len: got %d, want 2", got)
	}
	mu.Lock()
	if len(dropped) != 1 || dropped[0] != "b" {
		t.Errorf("dropped: got %v, want [b]", dropped)
	}
	mu.Unlock()
	close(release)
	closeWithin(t, q, 5*time.Second)
	if err := q.Enqueue(st("e", scm.StatePending, 6)); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: got %v, want ErrClosed", err)
	}
}

func TestCloseDeadline(t *testing.T) {
	t.Run("drains in time", func(t *testing.T) {
		rep := newFake(nil)
		rep.delay = 2 * time.Millisecond
		q := New(rep, Options{Workers: 2, Logger: quiet()})
		for i := range 20 {
			_ = q.Enqueue(st("c"+strconv.Itoa(i), scm.StateSuccess, i))
		}
		closeWithin(t, q, 5*time.Second)
		if len(rep.okay) != 20 {
			t.Errorf("delivered: got %d, want 20", len(rep.okay))
		}
	})
	t.Run("deadline passes", func(t *testing.T) {
		rep := ReporterFunc(func(ctx context.Context, s scm.Status) error {
			<-ctx.Done() // a forge that never answers
			return ctx.Err()
		})
		var mu sync.Mutex
		dropped := 0
		q := New(rep, Options{Workers: 1, Logger: quiet(), OnDrop: func(scm.Status) {
			mu.Lock()
			dropped++
			mu.Unlock()
		}})
		for i := range 3 {
			_ = q.Enqueue(st("c"+strconv.Itoa(i), scm.StateSuccess, i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := q.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close: got %v, want DeadlineExceeded", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Close took %v after its deadline", el)
		}
		if dropped != 3 {
			t.Errorf("dropped: got %d, want 3 (one in flight, two waiting)", dropped)
		}
	})
}

func TestState(t *testing.T) {
	tests := []struct {
		in   string
		want scm.State
	}{
		{"queued", scm.StatePending},
		{"running", scm.StateRunning},
		{"started", scm.StateRunning},
		{"pending", scm.StatePending},
		{"success", scm.StateSuccess},
		{"failure", scm.StateFailure},
		{"skipped", scm.StateSuccess},
		{"canceled", scm.StateError},
		{"error", scm.StateError},
		{"", scm.StateError},
	}
	for _, tt := range tests {
		if got := State(tt.in); got != tt.want {
			t.Errorf("State(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
