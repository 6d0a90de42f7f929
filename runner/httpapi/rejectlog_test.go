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
	rl.SetClock(func() time.Time { return time.Now().Add(time.Hour) }, nil) // the interval is over
	rl.Flush()
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

// TestTokenCheckFailureLogBounded: while the store fails, each API
// request with a bearer token (anyone can send one) fails its token
// check; 1000 of them make 5 "check token" lines and one summary.
func TestTokenCheckFailureLogBounded(t *testing.T) {
	out := &lines{}
	e := newEnvWith(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(out, nil))
		c.HookLogInterval = time.Hour // all in one interval, however slow the machine
	}, nil)
	e.st.Close() // the store fails from here on
	for i := range 1000 {
		if code, b := e.do("GET", "/api/v1/runs", nil, map[string]string{"Authorization": "Bearer not-a-token"}); code != http.StatusUnauthorized {
			t.Fatalf("request %d: got %d %s, want 401", i, code, b)
		}
	}
	if n := len(out.grep(`msg="check token"`)); n != 5 {
		t.Errorf("got %d \"check token\" lines, want 5:\n%s", n, strings.Join(out.all(), "\n"))
	}
	e.api.authFails.SetClock(func() time.Time { return time.Now().Add(time.Hour) }, nil) // the interval is over
	e.api.authFails.Flush()
	if sum := out.grep("token check failures not logged one by one"); len(sum) != 1 || !strings.Contains(sum[0], "store_error=995") {
		t.Errorf("summary: got %q, want one with store_error=995", sum)
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
