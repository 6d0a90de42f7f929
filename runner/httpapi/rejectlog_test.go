package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-ci/runnel/runner/metrics"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
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

// TestRejectLogSummaryOnTime: the summary of an interval is written when
// it ends, by the timer set at its first held count, without waiting
// for another rejection.
func TestRejectLogSummaryOnTime(t *testing.T) {
	out := &lines{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var timers []time.Duration
	var fire func()
	l := newRejectLog(slog.New(slog.NewTextHandler(out, nil)), 10*time.Second)
	l.now = func() time.Time { return now }
	l.after = func(d time.Duration, f func()) { timers, fire = append(timers, d), f }

	for i := range 20 {
		now = now.Add(100 * time.Millisecond)
		l.rejected("bad_signature", slog.LevelWarn, "webhook rejected", "i", i)
	}
	if got := len(out.grep("webhook rejected")); got != rejectBurst {
		t.Errorf("got %d lines logged in full, want %d", got, rejectBurst)
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

// TestRejectedHookLogBounded (issue 11, item 4): 1000 forged deliveries,
// and a few of other kinds, make a bounded number of log lines (the
// first 5 of each reason in full, one summary with the counts of the
// others) and are all counted in runnel_webhook_rejected_total.
func TestRejectedHookLogBounded(t *testing.T) {
	out := &lines{}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(out, nil))
		c.Metrics = m
		c.HookLogInterval = time.Hour // all in one interval, however slow the machine
	}, nil)
	if _, err := e.st.CreateRepo(context.Background(), store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	body := pushBody("acme/app", strings.Repeat("a", 40))
	forged := githubHeaders("d", "not the secret", body)
	for i := range 1000 {
		if code, b := e.do("POST", "/hooks/github/acme/app", body, forged); code != http.StatusUnauthorized {
			t.Fatalf("forged delivery %d: got %d %s, want 401", i, code, b)
		}
	}
	for range 20 {
		if code, _ := e.do("POST", "/hooks/bitbucket", body, nil); code != http.StatusNotFound {
			t.Fatalf("unknown forge: got %d, want 404", code)
		}
	}
	if n := len(out.all()); n != 10 {
		t.Errorf("got %d log lines, want 10 (5 of each reason):\n%s", n, strings.Join(out.all(), "\n"))
	}
	rl := e.api.rejects
	rl.mu.Lock()
	rl.now = func() time.Time { return time.Now().Add(time.Hour) } // the interval is over
	rl.mu.Unlock()
	rl.flush()
	sum := out.grep("not logged one by one")
	if len(sum) != 1 || !strings.Contains(sum[0], "bad_signature=995 unknown_forge=15") {
		t.Errorf("summary: got %q, want bad_signature=995 unknown_forge=15", sum)
	}
	for reason, want := range map[string]float64{metrics.RejectedBadSignature: 1000, metrics.RejectedUnknownForge: 20, metrics.RejectedSlowBody: 0} {
		if got := rejectedCount(t, reg, reason); got != want {
			t.Errorf("runnel_webhook_rejected_total{reason=%q}: got %v, want %v", reason, got, want)
		}
	}
}

// TestRejectionOf: how each error that ends a webhook request is answered,
// counted and logged.
func TestRejectionOf(t *testing.T) {
	tests := []struct {
		err    error
		status int
		reason string
	}{
		{fmt.Errorf("repo %q: %w", "x", scm.ErrSignature), 401, metrics.RejectedBadSignature},
		{fmt.Errorf("read: %w", scm.ErrTooLarge), 413, metrics.RejectedTooLarge},
		{fmt.Errorf("parse: %w", scm.ErrBadRequest), 400, metrics.RejectedBadRequest},
		{errBusy, 503, metrics.RejectedBusy},
		{fmt.Errorf("read webhook body: %w", os.ErrDeadlineExceeded), 408, metrics.RejectedSlowBody},
		{fmt.Errorf("read webhook body: %w", io.ErrUnexpectedEOF), 0, metrics.RejectedAborted},
		{context.Canceled, 0, metrics.RejectedAborted},
	}
	for _, tc := range tests {
		rej, ok := rejectionOf(tc.err)
		if !ok || rej.status != tc.status || rej.reason != tc.reason {
			t.Errorf("rejectionOf(%v): got %d %s %v, want %d %s", tc.err, rej.status, rej.reason, ok, tc.status, tc.reason)
		}
	}
	if _, ok := rejectionOf(errors.New("database is locked")); ok {
		t.Errorf("an internal failure classified as a rejection")
	}
}

// rejectedCount reads runnel_webhook_rejected_total{reason} from reg.
func rejectedCount(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "runnel_webhook_rejected_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no runnel_webhook_rejected_total{reason=%q}", reason)
	return 0
}
