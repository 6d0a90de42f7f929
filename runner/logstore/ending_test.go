package logstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

// grace is a fake clock of a Store's grace periods: the period passes
// when the test says so.
type grace struct {
	f       func()
	stopped bool
}

func fakeClock(s *Store) *grace {
	g := &grace{}
	s.after = func(d time.Duration, f func()) func() {
		if d != DefaultGrace {
			panic(fmt.Sprintf("grace period %s", d))
		}
		g.f, g.stopped = f, false
		return func() { g.stopped = true }
	}
	return g
}

// pass lets the running grace period end.
func (g *grace) pass(t *testing.T) {
	t.Helper()
	if g.f == nil || g.stopped {
		t.Fatal("no grace period running")
	}
	g.f()
}

// incompleteLogs collects what s reports closed incomplete.
func incompleteLogs(s *Store) *[]error {
	var errs []error
	s.OnIncomplete(func(_ Key, err error) { errs = append(errs, err) })
	return &errs
}

func gapMark(from, to int64) string {
	return fmt.Sprintf("\n[runnel: log chunks %d-%d were not received; output is missing here]\n", from, to)
}

// follow reads k's whole log as a live follower does, in the background.
func follow(t *testing.T, s *Store, k Key) <-chan string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	r := s.Follow(ctx, k, 0, func() bool { return false })
	got := make(chan string, 1)
	go func() {
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			b = append(b, "\nfollow: "+err.Error()...)
		}
		got <- string(b)
	}()
	return got
}

func readLog(t *testing.T, s *Store, k Key) string {
	t.Helper()
	b, err := os.ReadFile(s.Path(k))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Chunk 1 fails to be stored and is delivered again after the EOF chunk
// and the step's end were handled: the log waits for it and is complete;
// a live follower gets all of it and then its end.
func TestLateChunkAfterEnd(t *testing.T) {
	for _, eofEmpty := range []bool{false, true} {
		t.Run(fmt.Sprintf("empty EOF %v", eofEmpty), func(t *testing.T) {
			s, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			clock, missing := fakeClock(s), incompleteLogs(s)
			k := Key{Run: "1", Stage: "build", Attempt: 1, Step: "0"}
			if err := s.Append(k, 0, []byte("zero\n")); err != nil {
				t.Fatal(err)
			}
			got := follow(t, s, k)
			want := "zero\none\ntwo\n"
			last, data := int64(2), []byte("two\n")
			if eofEmpty {
				if err := s.Append(k, 2, data); err != nil {
					t.Fatal(err)
				}
				last, data = 3, nil
			}
			if err := s.End(k, last, data); err != nil {
				t.Fatal(err)
			}
			if err := s.EndStep(k, 0); err != nil {
				t.Fatal(err)
			}
			if !s.Live(k) {
				t.Fatal("log with chunk 1 missing closed at its end")
			}
			if err := s.Append(k, 1, []byte("one\n")); err != nil {
				t.Fatal(err)
			}
			if s.Live(k) || !clock.stopped {
				t.Fatalf("complete log still open (%v) or its grace period running (%v)", s.Live(k), !clock.stopped)
			}
			if b := readLog(t, s, k); b != want {
				t.Errorf("stored %q, want %q", b, want)
			}
			if f := <-got; f != want {
				t.Errorf("follower read %q, want %q", f, want)
			}
			if len(*missing) != 0 {
				t.Errorf("reported incomplete: %v", *missing)
			}
		})
	}
}

// The EOF chunk fails and the step's end is handled before it comes
// again: the log waits for it.
func TestEOFAfterStepEnd(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fakeClock(s)
	k := Key{Run: "1", Stage: "build", Attempt: 1, Step: "0"}
	if err := s.Append(k, 0, []byte("zero\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.EndStep(k, 0); err != nil {
		t.Fatal(err)
	}
	if !s.Live(k) {
		t.Fatal("log closed at the step's end without its EOF chunk")
	}
	if err := s.End(k, 1, []byte("last\n")); err != nil {
		t.Fatal(err)
	}
	if s.Live(k) {
		t.Fatal("log still open after its EOF chunk")
	}
	if b := readLog(t, s, k); b != "zero\nlast\n" {
		t.Errorf("stored %q", b)
	}
	// A step whose only chunk (with the EOF mark) failed says it sent one.
	short := Key{Run: "1", Stage: "build", Attempt: 1, Step: "2"}
	if err := s.EndStep(short, 1); err != nil || !s.Live(short) {
		t.Fatalf("log of a step that sent 1 chunk, none stored: err %v, open %v", err, s.Live(short))
	}
	if err := s.End(short, 0, []byte("only\n")); err != nil || s.Live(short) {
		t.Fatalf("its chunk came: err %v, open %v", err, s.Live(short))
	}
	if b := readLog(t, s, short); b != "only\n" {
		t.Errorf("stored %q", b)
	}
	// A step that wrote nothing (skipped) closes at its end.
	skipped := Key{Run: "1", Stage: "build", Attempt: 1, Step: "1"}
	if err := s.EndStep(skipped, 0); err != nil || s.Live(skipped) {
		t.Fatalf("skipped step's log: err %v, open %v", err, s.Live(skipped))
	}
}

// Chunks that never come: after the grace period the log closes with
// what it has, marked where output is missing, reported incomplete, and
// a chunk coming later is dropped.
func TestGraceBound(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(s *Store, k Key) error
		want string
	}{
		{"gap before EOF", func(s *Store, k Key) error { return s.End(k, 2, []byte("two\n")) },
			"zero\n" + gapMark(1, 1) + "two\n"},
		{"chunks up to EOF", func(s *Store, k Key) error { return s.End(k, 3, nil) },
			"zero\n" + gapMark(1, 2)},
		{"chunks the step's end counts", func(s *Store, k Key) error { return s.EndStep(k, 3) },
			"zero\n" + "\n[runnel: log chunks 1-2 were not received; the end of the output is missing]\n"},
		{"no EOF", func(s *Store, k Key) error { return s.EndStep(k, 0) },
			"zero\n\n[runnel: the end of this log was not received; output may be missing]\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			clock, missing := fakeClock(s), incompleteLogs(s)
			k := Key{Run: "1", Stage: "build", Attempt: 1, Step: "0"}
			if err := s.Append(k, 0, []byte("zero\n")); err != nil {
				t.Fatal(err)
			}
			got := follow(t, s, k)
			if err := tt.end(s, k); err != nil {
				t.Fatal(err)
			}
			if !s.Live(k) {
				t.Fatal("incomplete log closed before its grace period")
			}
			clock.pass(t)
			if s.Live(k) {
				t.Fatal("log open after its grace period")
			}
			if len(*missing) != 1 || !errors.Is((*missing)[0], ErrIncomplete) {
				t.Errorf("reported %v, want one ErrIncomplete", *missing)
			}
			if err := s.Append(k, 1, []byte("one\n")); err != nil {
				t.Fatal(err)
			}
			if b := readLog(t, s, k); b != tt.want {
				t.Errorf("stored %q, want %q", b, tt.want)
			}
			if f := <-got; f != tt.want {
				t.Errorf("follower read %q, want %q", f, tt.want)
			}
		})
	}
}

// A server restarted during a step: the log's file holds what the earlier
// process stored, so the step's end closes it (it cannot tell which
// chunks that was).
func TestEndStepAfterRestart(t *testing.T) {
	dir := t.TempDir()
	k := Key{Run: "1", Stage: "build", Attempt: 1, Step: "0"}
	s1, _ := New(dir)
	if err := s1.Append(k, 0, []byte("before the restart\n")); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	s2, _ := New(dir)
	fakeClock(s2)
	if err := s2.EndStep(k, 3); err != nil || s2.Live(k) {
		t.Fatalf("end of a step written before a restart: err %v, open %v", err, s2.Live(k))
	}
	if b := readLog(t, s2, k); b != "before the restart\n" {
		t.Errorf("stored %q", b)
	}
}
