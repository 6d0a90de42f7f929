package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/runner/logview"
	"github.com/runnel-ci/runnel/runner/store"
)

// trigger pushes pipeline, triggers a run of it and returns the run.
func (e *env) trigger(pipeline string) RunView {
	e.t.Helper()
	code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"app","forge":"git","clone_url":%q}`, e.bare)), e.auth())
	if code != 201 {
		e.t.Fatalf("create repo: %d %s", code, b)
	}
	e.push(pipeline)
	code, b = e.do("POST", "/api/v1/repos/app/trigger", []byte(`{}`), e.auth())
	if code != 201 {
		e.t.Fatalf("trigger: %d %s", code, b)
	}
	var v RunView
	if err := json.Unmarshal([]byte(b), &v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

// events reads a followed log's events.
func events(t *testing.T, body string) []logview.Event {
	t.Helper()
	var evs []logview.Event
	if err := logview.ReadEvents(strings.NewReader(body), func(ev logview.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatalf("read events: %v\n%s", err, body)
	}
	return evs
}

// TestFollowLogSSE follows a running step from the start and, a second
// time, from the offset of its second line: batches of complete lines,
// each event's id the offset after it, then "end".
func TestFollowLogSSE(t *testing.T) {
	e := newEnv(t)
	v := e.trigger("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: for i in 1 2 3; do echo line $i; sleep 0.3; done\n")
	h := e.auth()
	h["Accept"] = "text/event-stream"
	path := fmt.Sprintf("/api/v1/runs/%d/stages/a/steps/s/log", v.ID)
	code, b := e.do("GET", path, nil, h)
	if code != 200 {
		t.Fatalf("follow = %d %s", code, b)
	}
	var lines []string
	var to int64
	for _, ev := range events(t, b) {
		if ev.Name == "" && (ev.From != to || ev.ID != ev.To) {
			t.Errorf("event [%d,%d) id %d after offset %d", ev.From, ev.To, ev.ID, to)
		}
		to = ev.To
		lines = append(lines, ev.Lines...)
	}
	if got, want := strings.Join(lines, "|"), "line 1|line 2|line 3"; got != want || to != 21 {
		t.Errorf("lines %q end %d, want %q end 21", got, to, want)
	}
	h["Last-Event-ID"] = "7"
	_, b = e.do("GET", path, nil, h)
	lines = nil
	for _, ev := range events(t, b) {
		lines = append(lines, ev.Lines...)
	}
	if got, want := strings.Join(lines, "|"), "line 2|line 3"; got != want {
		t.Errorf("resumed at 7: %q, want %q", got, want)
	}
	delete(h, "Last-Event-ID")
	if code, _ := e.do("GET", path+"?from=-1", nil, h); code != http.StatusBadRequest {
		t.Errorf("negative offset = %d, want 400", code)
	}
}

// TestLogPages pages through a finished 3,000-line log backwards from
// its tail and forwards from its start, by byte range and line count.
func TestLogPages(t *testing.T) {
	e := newEnv(t)
	v := e.trigger("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: seq 1 3000 | sed 's/^/line /'\n")
	if r := e.waitRun(v.ID); r.Status != store.StatusSuccess {
		t.Fatalf("run %s", r.Status)
	}
	path := fmt.Sprintf("/api/v1/runs/%d/stages/a/steps/s/log", v.ID)
	page := func(q string) logview.Batch {
		t.Helper()
		code, b := e.do("GET", path+"?"+q, nil, e.auth())
		if code != 200 {
			t.Fatalf("%s = %d %s", q, code, b)
		}
		var p logview.Batch
		if err := json.Unmarshal([]byte(b), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lines := func(p logview.Batch) []any { return p.Lines.([]any) }
	tail := page("tail=1&lines=100")
	if n := len(lines(tail)); n != 100 || lines(tail)[99] != "line 3000" || !tail.Final || tail.To != tail.Size {
		t.Errorf("tail: %d lines, last %v, final %v, to %d size %d", n, lines(tail)[n-1], tail.Final, tail.To, tail.Size)
	}
	prev := page("before=" + strconv.FormatInt(tail.From, 10) + "&limit=1000")
	if prev.To != tail.From || prev.To-prev.From > 1000 || lines(prev)[len(lines(prev))-1] != "line 2900" {
		t.Errorf("page before the tail: [%d,%d) last %v", prev.From, prev.To, lines(prev)[len(lines(prev))-1])
	}
	first := page("from=0&lines=2&styled=1")
	want := []any{[]any{map[string]any{"t": "line 1"}}, []any{map[string]any{"t": "line 2"}}}
	if fmt.Sprint(first.Lines) != fmt.Sprint(want) || first.From != 0 || first.To != 14 {
		t.Errorf("first page styled: %v [%d,%d)", first.Lines, first.From, first.To)
	}
	for _, q := range []string{"before=0", "from=x", "limit=-5&from=0", "lines=a&tail=1"} {
		if code, b := e.do("GET", path+"?"+q, nil, e.auth()); code != http.StatusBadRequest {
			t.Errorf("%s = %d %s, want 400", q, code, b)
		}
	}
}

// TestSessionReadsAPI: a request carrying a UI session may GET the API
// (the log endpoint the UI follows), never change anything with it.
func TestSessionReadsAPI(t *testing.T) {
	var tok *store.Token
	e := newEnvWith(t, func(c *Config) {
		c.Session = func(r *http.Request) *store.Token {
			if ck, err := r.Cookie("s"); err == nil && ck.Value == "good" {
				return tok
			}
			return nil
		}
	}, nil)
	toks, err := e.st.Tokens(context.Background())
	if err != nil || len(toks) != 1 {
		t.Fatalf("tokens %v %v", toks, err)
	}
	tok = toks[0]
	v := e.trigger("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: echo hi\n")
	e.waitRun(v.ID)
	cookie := map[string]string{"Cookie": "s=good"}
	if code, b := e.do("GET", fmt.Sprintf("/api/v1/runs/%d/stages/a/steps/s/log", v.ID), nil, cookie); code != 200 || b != "hi\n" {
		t.Errorf("GET log with session = %d %q", code, b)
	}
	if code, _ := e.do("GET", "/api/v1/runs", nil, map[string]string{"Cookie": "s=bad"}); code != 401 {
		t.Errorf("GET with an unknown session = %d, want 401", code)
	}
	if code, _ := e.do("POST", fmt.Sprintf("/api/v1/runs/%d/rerun", v.ID), nil, cookie); code != 401 {
		t.Errorf("POST with a session = %d, want 401", code)
	}
}
