package ratelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRejectLimiter: per interval, the first burst rejections of each
// reason are logged; the others are held and returned, the largest count
// first, once the interval is over (at a flush or the next admit).
func TestRejectLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		at     int    // ms after t0
		reason string // "" for a flush
		full   bool   // admit: logged in full
		ended  string // the counts returned, "reason=n ..."
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst then held, summary at the next admit", []step{
			{0, "sig", true, ""}, {1, "sig", true, ""}, {2, "sig", false, ""}, {3, "sig", false, ""},
			{1000, "sig", true, "sig=2"},
		}},
		{"reasons have bursts of their own", []step{
			{0, "sig", true, ""}, {1, "sig", true, ""}, {2, "slow", true, ""}, {3, "sig", false, ""},
			{4, "slow", true, ""}, {5, "slow", false, ""}, {6, "slow", false, ""},
			{999, "", false, ""}, // not over yet
			{1000, "", false, "slow=2 sig=1"},
			{1001, "slow", true, ""}, // a new interval: burst again, nothing left to report
		}},
		{"an interval starts at the first rejection after the last one ended", []step{
			{0, "sig", true, ""}, {1, "sig", true, ""}, {2, "sig", false, ""},
			{5000, "sig", true, "sig=1"}, {5999, "sig", true, ""}, {6000, "sig", true, ""},
		}},
		{"nothing held, no summary", []step{
			{0, "sig", true, ""}, {2000, "", false, ""}, {3000, "sig", true, ""},
		}},
		{"equal counts in reason order", []step{
			{0, "b", true, ""}, {0, "b", true, ""}, {0, "b", false, ""},
			{0, "a", true, ""}, {0, "a", true, ""}, {0, "a", false, ""},
			{1000, "", false, "a=1 b=1"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newRejectLimiter(time.Second, 2)
			for i, s := range tc.steps {
				var held []reasonCount
				full := false
				if s.reason == "" {
					held = l.flush(at(s.at))
				} else {
					full, held = l.admit(at(s.at), s.reason)
				}
				if full != s.full || counts(held) != s.ended {
					t.Errorf("step %d (%+v): got full %v, ended %q; want %v, %q", i, s, full, counts(held), s.full, s.ended)
				}
			}
		})
	}
}

func counts(held []reasonCount) string {
	var s []string
	for _, h := range held {
		s = append(s, fmt.Sprintf("%s=%d", h.reason, h.n))
	}
	return strings.Join(s, " ")
}

// lines is a concurrency-safe log destination.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSuffix(l.buf.String(), "\n"), "\n")
}

// grep returns the lines containing s.
func (l *lines) grep(s string) []string {
	var out []string
	for _, line := range l.all() {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestSummaryOnTime: the summary of an interval is written when
// it ends, by the timer set at its first held count, without waiting
// for another rejection.
func TestSummaryOnTime(t *testing.T) {
	out := &lines{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var timers []time.Duration
	var fire func()
	l := New(slog.New(slog.NewTextHandler(out, nil)), 10*time.Second, "webhook rejections not logged one by one")
	l.SetClock(func() time.Time { return now }, func(d time.Duration, f func()) { timers, fire = append(timers, d), f })

	for i := range 20 {
		now = now.Add(100 * time.Millisecond)
		l.Log("bad_signature", slog.LevelWarn, "webhook rejected", "i", i)
	}
	if got := len(out.grep("webhook rejected")); got != Burst {
		t.Errorf("got %d lines logged in full, want %d", got, Burst)
	}
	// The interval started at the first rejection (0.1 s); the first held
	// one came at 0.6 s.
	if len(timers) != 1 || timers[0] != 9500*time.Millisecond {
		t.Fatalf("timers set: got %v, want one of 9.5s", timers)
	}
	// A timer that fires before the end (at 10.0 s) writes nothing and is
	// set again for the rest.
	now = now.Add(8 * time.Second)
	fire()
	if sum := out.grep("not logged one by one"); len(sum) != 0 || len(timers) != 2 || timers[1] != 100*time.Millisecond {
		t.Fatalf("early timer: got summary %q, timers %v; want none, [9.5s 100ms]", sum, timers)
	}
	now = now.Add(100 * time.Millisecond) // 10.1 s: the interval has ended
	fire()
	sum := out.grep("not logged one by one")
	if len(sum) != 1 || !strings.Contains(sum[0], "interval=10s bad_signature=15") {
		t.Errorf("summary: got %q, want one line with interval=10s bad_signature=15", sum)
	}
	if len(timers) != 2 {
		t.Errorf("timers set after the summary: got %v, want no more", timers)
	}
}

// TestStdLogger: the lines of a *log.Logger (http.Server.ErrorLog) are
// logged through the limit, each whole in attribute err.
func TestStdLogger(t *testing.T) {
	out := &lines{}
	l := New(slog.New(slog.NewTextHandler(out, nil)), time.Hour, "http server errors not logged one by one")
	l.SetClock(time.Now, func(time.Duration, func()) {})
	std := l.StdLogger("http_server", slog.LevelWarn, "http server")
	for i := range 1000 {
		std.Printf("http: TLS handshake error from 10.0.0.%d:1234: %s", i%256, strings.Repeat("x", 500))
	}
	got := out.grep(`msg="http server"`)
	if len(got) != Burst || !strings.Contains(got[0], `err="http: TLS handshake error from 10.0.0.0:1234: `+strings.Repeat("x", 500)+`"`) ||
		!strings.Contains(got[0], "reason=http_server") {
		t.Errorf("got %d lines, want %d with the message in err:\n%s", len(got), Burst, strings.Join(got, "\n"))
	}
	l.SetClock(func() time.Time { return time.Now().Add(time.Hour) }, nil)
	l.Flush()
	if sum := out.grep("not logged one by one"); len(sum) != 1 || !strings.Contains(sum[0], "http_server=995") {
		t.Errorf("summary: got %q, want one with http_server=995", sum)
	}
}
