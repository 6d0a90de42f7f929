package logstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPathStaysInside(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []Key{
		{Run: "..", Stage: "..", Attempt: 1, Step: "../../etc/passwd"},
		{Run: "/abs", Stage: "a/b", Attempt: 2, Step: ".hidden"},
		{Run: "r\x00", Stage: "", Attempt: 0, Step: "x y"},
		{Run: "1", Stage: "test[go=1.22]", Attempt: 1, Step: "build"},
	}
	seen := map[string]bool{}
	for _, k := range tests {
		p := s.Path(k)
		rel, err := filepath.Rel(dir, p)
		if err != nil || strings.HasPrefix(rel, "..") || strings.Count(rel, string(filepath.Separator)) != 3 {
			t.Errorf("Path(%+v) = %s: not four elements below %s", k, p, dir)
		}
		if seen[p] {
			t.Errorf("Path(%+v) = %s collides", k, p)
		}
		seen[p] = true
	}
	if got, want := component("a.b"), "a.b"; got != want {
		t.Errorf("component(a.b) = %q, want %q", got, want)
	}
	if got := component("a/b"); got == component("a%2Fb") {
		t.Errorf("component collision: %q", got)
	}
}

func TestAppendOrder(t *testing.T) {
	tests := []struct {
		name       string
		chunks     []int64
		want       string
		incomplete bool // Finish says chunks are missing
	}{
		{"in order", []int64{0, 1, 2}, "012", false},
		{"duplicate dropped", []int64{0, 1, 1, 0, 2}, "012", false},
		{"gap filled later", []int64{0, 2, 3, 1}, "0123", false},
		{"first chunk late", []int64{1, 2, 0}, "012", false},
		{"gap never filled", []int64{0, 2, 4}, "0" + gapMark(1, 1) + "2" + gapMark(3, 3) + "4", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			clock, missing := fakeClock(s), incompleteLogs(s)
			k := Key{Run: "1", Stage: "s", Attempt: 1, Step: "x"}
			for _, c := range tt.chunks {
				if err := s.Append(k, c, []byte{byte('0' + c)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Finish(k); err != nil {
				t.Fatal(err)
			}
			if s.Live(k) != tt.incomplete {
				t.Fatalf("open after finish: %v, want %v", s.Live(k), tt.incomplete)
			}
			if tt.incomplete {
				clock.pass(t)
			}
			if got := len(*missing); got != map[bool]int{true: 1}[tt.incomplete] {
				t.Errorf("%d incomplete logs reported, want incomplete %v", got, tt.incomplete)
			}
			b, err := os.ReadFile(s.Path(k))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %q, want %q", b, tt.want)
			}
		})
	}
}

func TestFollow(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Run: "7", Stage: "build", Attempt: 1, Step: "compile"}
	if err := s.Append(k, 0, []byte("before\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := s.Follow(ctx, k, 0, nil)
	defer r.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	for i := 1; i <= 3; i++ {
		time.Sleep(20 * time.Millisecond)
		if err := s.Append(k, int64(i), []byte("line\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Finish(k); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if want := "before\nline\nline\nline\n"; string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	case <-ctx.Done():
		t.Fatal("follower did not reach EOF after Finish")
	}
}

func TestFollowEndsByDoneAfterCrash(t *testing.T) {
	dir := t.TempDir()
	k := Key{Run: "7", Stage: "build", Attempt: 1, Step: "compile"}
	s1, _ := New(dir)
	if err := s1.Append(k, 0, []byte("partial")); err != nil {
		t.Fatal(err)
	}
	s1.Close() // the writer went away without finishing
	s2, _ := New(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := s2.Follow(ctx, k, 0, func() bool { return true })
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "partial" {
		t.Errorf("got %q, %v; want %q, nil", b, err, "partial")
	}
}

// TestFollowFrom: a follower starting at an offset sees only what lies
// after it, then what is appended.
func TestFollowFrom(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Run: "7", Stage: "build", Attempt: 1, Step: "compile"}
	if err := s.Append(k, 0, []byte("first\nsecond\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := s.Follow(ctx, k, int64(len("first\n")), nil)
	defer r.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	if err := s.Append(k, 1, []byte("third\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(k); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if want := "second\nthird\n"; string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	case <-ctx.Done():
		t.Fatal("follower did not reach EOF after Finish")
	}
}

func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB log in -short mode")
	}
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Run: "big", Stage: "s", Attempt: 1, Step: "x"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := s.Follow(ctx, k, 0, nil)
	defer r.Close()
	type res struct {
		sum [32]byte
		n   int64
		err error
	}
	done := make(chan res, 1)
	go func() {
		h := sha256.New()
		n, err := io.Copy(h, r)
		var out res
		copy(out.sum[:], h.Sum(nil))
		out.n, out.err = n, err
		done <- out
	}()
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16) // 64 KiB
	const total = 100 << 20
	want := sha256.New()
	for i := 0; i < total/len(chunk); i++ {
		chunk[0] = byte(i)
		want.Write(chunk)
		if err := s.Append(k, int64(i), chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Finish(k); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil {
		t.Fatalf("follow: %v", got.err)
	}
	if got.n != total || got.sum != [32]byte(want.Sum(nil)) {
		t.Errorf("follower read %d bytes (sha %x), want %d bytes (sha %x)", got.n, got.sum, total, want.Sum(nil))
	}
	f, err := s.Open(k)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if n, _ := io.Copy(h, f); n != total || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Errorf("file has %d bytes, want %d with the same content", n, total)
	}
}

func TestAppendAfterFinishDropped(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Run: "1", Stage: "s", Attempt: 1, Step: "0"}
	s.Append(k, 0, []byte("a"))
	s.Finish(k)
	if err := s.Append(k, 0, []byte("a")); err != nil { // a redelivered chunk
		t.Fatal(err)
	}
	s.Finish(k)
	b, _ := os.ReadFile(s.Path(k))
	if string(b) != "a" {
		t.Errorf("got %q, want %q", b, "a")
	}
}

// Logs can hold anything a step printed: only the server's user reads
// them.
func TestFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Run: "1", Stage: "build", Attempt: 1, Step: "compile"}
	if err := s.Append(k, 0, []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitFollowers waits until n followers wait for k to be opened.
func waitFollowers(t *testing.T, s *Store, k Key, n int) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for {
		s.mu.Lock()
		w := s.waiting[k]
		got := w != nil && w.n == n
		s.mu.Unlock()
		if got {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%d followers never waited for %s", n, k)
		}
	}
}

// TestFollowWakesOnFirstWrite (issue 11, item 7): followers of a step
// that has not written yet wake on its first write, not on a timer: with
// the orphan poll out of reach, the first line still arrives, and the
// wake-up is released when they stop waiting.
func TestFollowWakesOnFirstWrite(t *testing.T) {
	defer func(d time.Duration) { orphanPoll = d }(orphanPoll)
	orphanPoll = time.Hour
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Run: "7", Stage: "build", Attempt: 1, Step: "compile"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make(chan string, 2)
	for range 2 {
		r := s.Follow(ctx, k, 0, func() bool { return false })
		defer r.Close()
		go func() {
			b := make([]byte, 64)
			n, err := r.Read(b)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(b[:n])
		}()
	}
	waitFollowers(t, s, k, 2)
	if err := s.Append(k, 0, []byte("first\n")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if b := <-got; b != "first\n" {
			t.Errorf("follower read %q, want the first line", b)
		}
	}
	s.mu.Lock()
	left := len(s.waiting)
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("%d wake-ups left after the followers stopped waiting, want 0", left)
	}
}

// TestFollowWakesOnFinishRun: a follower of a step that never wrote (its
// stage was cancelled) ends when the run's logs are finished, not on a
// timer.
func TestFollowWakesOnFinishRun(t *testing.T) {
	defer func(d time.Duration) { orphanPoll = d }(orphanPoll)
	orphanPoll = time.Hour
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Run: "7", Stage: "build", Attempt: 1, Step: "never"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ended atomic.Bool
	r := s.Follow(ctx, k, 0, ended.Load)
	defer r.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(r)
		done <- err
	}()
	waitFollowers(t, s, k, 1)
	ended.Store(true)
	if err := s.FinishRun("7"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("follower ended with %v, want EOF", err)
	}
}
