package ui

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSuffix(b.buf.String(), "\n"), "\n")
}

// TestLoginRefusedLogBounded: 1000 refused logins (anyone can post to
// /login) make a bounded number of log lines: the first 5 in full, then
// one summary line with the count of the others.
func TestLoginRefusedLogBounded(t *testing.T) {
	e := newEnv(t)
	out := &syncBuffer{}
	h, err := New(Config{Store: e.store, Logs: e.logs, Actions: e.runner, Logger: slog.New(slog.NewTextHandler(out, nil)),
		LoginLogInterval: time.Hour}) // all in one interval, however slow the machine
	if err != nil {
		t.Fatal(err)
	}
	h.refusals.SetClock(time.Now, func(time.Duration, func()) {}) // the summary is written by Flush below
	form := url.Values{"token": {"not a token"}, "next": {"/"}}.Encode()
	for i := range 1000 {
		req := httptest.NewRequest("POST", "/login", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("login %d: got %d, want 401", i, w.Code)
		}
	}
	if got := out.lines(); len(got) != 5 || !strings.Contains(got[0], `msg="ui login refused"`) {
		t.Errorf("got %d log lines, want 5 \"ui login refused\":\n%s", len(got), strings.Join(got, "\n"))
	}
	h.refusals.SetClock(func() time.Time { return time.Now().Add(time.Hour) }, nil) // the interval is over
	h.refusals.Flush()
	got := out.lines()
	if len(got) != 6 || !strings.Contains(got[5], "ui logins refused not logged one by one") || !strings.Contains(got[5], "bad_token=995") {
		t.Errorf("after the interval: got %d lines, want 6, the last a summary with bad_token=995:\n%s", len(got), strings.Join(got, "\n"))
	}
}
