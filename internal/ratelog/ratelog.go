// Package ratelog logs, within bounds, events that anyone who can reach
// the server can cause (rejected webhooks, refused logins, failing token
// checks, net/http's per-connection errors): they can cause them as fast
// as they can send requests, and one log line each would let them fill
// the disk (or the journal) too. The first Burst events of each reason in
// an interval are logged one by one; the others are counted and reported
// in one summary line per interval.
package ratelog

import (
	"cmp"
	"context"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Burst is how many events of one reason are logged one by one per
// interval.
const Burst = 5

// clipLen bounds what a logged value taken from a request may add to a
// line (an error may name a repository found in an unverified body).
const clipLen = 200

// reasonCount is how many rejections of a reason were not logged.
type reasonCount struct {
	reason string
	n      int
}

// rejectLimiter decides which rejections are logged one by one: the
// first burst of each reason in an interval. It holds the count of the
// others until the interval has ended. An interval starts with the first
// rejection after the previous one ended. It is a plain value over the
// times it is given: no clock, no lock.
type rejectLimiter struct {
	interval time.Duration
	burst    int
	end      time.Time      // of the current interval; zero before the first
	seen     map[string]int // rejections in the current interval, by reason
	held     map[string]int // of them, those not logged, by reason
}

func newRejectLimiter(interval time.Duration, burst int) rejectLimiter {
	return rejectLimiter{interval: interval, burst: burst, seen: map[string]int{}, held: map[string]int{}}
}

// admit records a rejection of reason at now and reports whether it is
// to be logged in full. When now is past the current interval, that one
// is ended first and what it held is returned: its summary is due.
func (l *rejectLimiter) admit(now time.Time, reason string) (full bool, ended []reasonCount) {
	if !now.Before(l.end) {
		ended = l.flush(now)
		l.end = now.Add(l.interval)
	}
	l.seen[reason]++
	if l.seen[reason] <= l.burst {
		return true, ended
	}
	l.held[reason]++
	return false, ended
}

// flush ends the current interval if it is over at now and returns the
// counts it held, the largest first; nil when it is not over or held
// nothing.
func (l *rejectLimiter) flush(now time.Time) []reasonCount {
	if now.Before(l.end) {
		return nil
	}
	var out []reasonCount
	for r, n := range l.held {
		out = append(out, reasonCount{r, n})
	}
	slices.SortFunc(out, func(a, b reasonCount) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.reason, b.reason))
	})
	clear(l.seen)
	clear(l.held)
	return out
}

// due reports when the current interval ends if it holds counts, whose
// summary is then due.
func (l *rejectLimiter) due() (time.Time, bool) {
	return l.end, len(l.held) > 0
}

// Log writes log lines through a rejectLimiter. A summary is written
// when its interval ends (a timer set when the first count is held), or
// at the first event after that if the timer has not fired yet. Its
// methods are safe for concurrent use.
type Log struct {
	log     *slog.Logger
	summary string // the summary line's message
	now     func() time.Time
	after   func(time.Duration, func()) // time.AfterFunc, or a test's

	mu        sync.Mutex
	lim       rejectLimiter
	scheduled bool // a flush is set to run
}

// New returns a Log writing to log; its summary lines (WARN) have the
// message summary.
func New(log *slog.Logger, interval time.Duration, summary string) *Log {
	return &Log{log: log, summary: summary, now: time.Now, lim: newRejectLimiter(interval, Burst),
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// SetClock replaces the clock (time.Now) and, if after is not nil, the
// timer (time.AfterFunc) of l, for tests.
func (l *Log) SetClock(now func() time.Time, after func(time.Duration, func())) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = now
	if after != nil {
		l.after = after
	}
}

// Log logs an event of reason at level with msg and args, or counts it
// towards the summary of its interval.
func (l *Log) Log(reason string, level slog.Level, msg string, args ...any) {
	l.mu.Lock()
	now := l.now()
	full, ended := l.lim.admit(now, reason)
	l.summarize(ended)
	l.schedule(now)
	l.mu.Unlock()
	if full {
		l.log.Log(context.Background(), level, msg, append(args, "reason", reason)...)
	}
}

// Flush writes the summary of the interval that has ended, if any.
func (l *Log) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.summarize(l.lim.flush(now))
	l.scheduled = false
	l.schedule(now) // the interval had not ended yet: flush later
}

// schedule sets the timer of the summary due, unless it is set. Called
// with l.mu held.
func (l *Log) schedule(now time.Time) {
	if end, ok := l.lim.due(); ok && !l.scheduled {
		l.scheduled = true
		l.after(end.Sub(now), l.Flush)
	}
}

// summarize writes one line with the counts not logged. Called with l.mu
// held, so that summaries come out in order.
func (l *Log) summarize(held []reasonCount) {
	if len(held) == 0 {
		return
	}
	args := []any{"interval", l.lim.interval}
	for _, h := range held {
		args = append(args, h.reason, h.n)
	}
	l.log.Warn(l.summary, args...)
}

// stdLineLen bounds a line of StdLogger: net/http's own lines are short
// but for a handler's panic, whose stack it writes from a 64 KiB buffer;
// it is kept whole.
const stdLineLen = 80 << 10

// StdLogger returns a *log.Logger (for http.Server.ErrorLog) whose
// lines are logged through l as events of reason at level with msg, the
// line in attribute err.
func (l *Log) StdLogger(reason string, level slog.Level, msg string) *log.Logger {
	return log.New(writerFunc(func(p []byte) {
		line := strings.TrimSpace(string(p[:min(len(p), stdLineLen)]))
		l.Log(reason, level, msg, "err", line)
	}), "", 0)
}

// writerFunc is an io.Writer calling itself with each write.
type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) {
	f(p)
	return len(p), nil
}

// Clip shortens s, a value taken from a request, for a log line.
func Clip(s string) string {
	if len(s) <= clipLen {
		return s
	}
	return s[:clipLen] + "…"
}
