package ui

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/logview"
	"github.com/runnel-ci/runnel/runner/store"
)

// stepRef is a step attempt's log as named by a URL.
type stepRef struct {
	run *store.Run
	runner.StepLog
}

// live reports whether the step attempt may still write to its log: it
// has started and not ended.
func (s stepRef) live() bool {
	return !runner.StepEnded(s.Stage, s.Attempt, s.Step.Position) &&
		(s.Stage.Status == store.StatusQueued || s.Stage.Status == store.StatusRunning)
}

// resolveStep finds the run, stage, step (by position) and attempt of a
// log URL; on failure it has answered with code and returns false.
func (h *Handler) resolveStep(w http.ResponseWriter, r *http.Request, fail func(code int, msg string)) (stepRef, bool) {
	var ref stepRef
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		fail(http.StatusNotFound, "no such run")
		return ref, false
	}
	run, err := h.cfg.Store.Run(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		fail(http.StatusNotFound, "no such run")
		return ref, false
	}
	if err != nil {
		h.log.Error("ui: load run", "run", id, "err", err)
		fail(http.StatusInternalServerError, "internal error")
		return ref, false
	}
	ref.run = run
	ref.StepLog, err = runner.FindStepLog(run, r.PathValue("stage"), r.PathValue("step"), false, r.URL.Query().Get("attempt"))
	switch {
	case err == nil:
		return ref, true
	case errors.Is(err, runner.ErrBadAttempt), errors.Is(err, runner.ErrNoAttempt):
		fail(http.StatusBadRequest, runner.ErrNoAttempt.Error())
	default:
		fail(http.StatusNotFound, err.Error())
	}
	return ref, false
}

// logQuery reads the part of the log a log page URL asks for: ?from=N
// (a page from there on), ?before=N (a page ending there) or neither
// (the tail).
func logQuery(q url.Values, lines int, limit int64) (logview.Query, error) {
	lq := logview.Query{Tail: true, Lines: lines, Limit: limit}
	for _, k := range []string{"from", "before"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || (k == "before" && n == 0) {
			return lq, fmt.Errorf("%s must be a byte offset", k)
		}
		lq.Tail = false
		if k == "from" {
			lq.From = n
		} else {
			lq.Before = n
		}
		break
	}
	return lq, nil
}

// logPage shows one page of a step's log (the tail unless the URL asks
// for another), streamed into the response as it is rendered. ui.js
// pages further by byte range as the reader scrolls and, while the
// step runs and the page shows the end, follows the log live; both go
// through the API's log endpoint.
func (h *Handler) logPage(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.resolveStep(w, r, func(code int, msg string) { h.errorPage(w, r, code, msg) })
	if !ok {
		return
	}
	lq, err := logQuery(r.URL.Query(), h.cfg.LogPageLines, h.cfg.LogPageBytes)
	if err != nil {
		h.errorPage(w, r, http.StatusBadRequest, err.Error())
		return
	}
	live := ref.live()
	p, err := h.cfg.Logs.Page(ref.Key, !live, lq)
	if err != nil {
		h.storeError(w, r, "read log", err)
		return
	}
	base := stagePath(ref.run.ID, ref.Stage.Key) + "/steps/" + strconv.Itoa(ref.Step.Position)
	q := "?attempt=" + strconv.Itoa(ref.Attempt)
	var attempts []int
	for i := 1; i <= ref.Stage.Attempt; i++ {
		attempts = append(attempts, i)
	}
	api := "/api/v1/runs/" + strconv.FormatInt(ref.run.ID, 10) + "/stages/" + url.PathEscape(ref.Stage.Key) +
		"/steps/" + strconv.Itoa(ref.Step.Position) + "/log" + q + "&styled=1"
	// A live log's page near its end hands over to the live stream.
	atEnd := p.To == p.Size || (live && p.Size-p.To < h.cfg.LogPageBytes)
	d := map[string]any{"Run": ref.run, "Stage": ref.Stage, "Step": ref.Step, "Attempt": ref.Attempt, "Attempts": attempts,
		"Page": p, "Lines": segmentLines(p.Data), "Live": live, "Follow": live && atEnd, "AtEnd": atEnd,
		"Raw": base + "/log.txt" + q, "Base": base + "/log", "Here": base + "/log" + q, "Src": api,
		"PageLines": h.cfg.LogPageLines, "PageBytes": h.cfg.LogPageBytes, "MaxLines": h.cfg.LogMaxLines}
	h.stream(w, r, "log", fmt.Sprintf("%s #%d · %s · %s", ref.run.Repo, ref.run.Number, ref.Stage.Key, ref.Step.Name), d)
}

// segmentLines yields the lines of data as styled segments, one at a
// time, for the template to render as it goes.
func segmentLines(data []byte) iter.Seq[[]logview.Segment] {
	return func(yield func([]logview.Segment) bool) {
		a := logview.NewANSI()
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			if !yield(a.Line(string(line))) {
				return
			}
		}
	}
}

// logText serves the log as plain text, as written (escape sequences
// included), sandboxed so a browser never runs it as anything.
func (h *Handler) logText(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.resolveStep(w, r, func(code int, msg string) { http.Error(w, msg, code) })
	if !ok {
		return
	}
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	f, err := h.cfg.Logs.Open(ref.Key)
	if errors.Is(err, logstore.ErrNotFound) {
		return
	}
	if err != nil {
		h.log.Error("ui: open log", "key", ref.Key.String(), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	_, _ = io.Copy(w, f)
}

// stream renders a page straight into the response through a small
// buffer, for pages whose content is large (a log page): nothing is
// built whole in memory. A template error after the first bytes went
// out can only be logged.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, name, title string, data any) {
	p := page{Title: title, Nav: name, Data: data}
	if s := sessionOf(r); s != nil {
		p.User, p.CSRF = s.user, s.csrf
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	bw := bufio.NewWriterSize(w, 32<<10)
	if err := h.pages[name].ExecuteTemplate(bw, "layout.html", p); err != nil {
		h.log.Error("ui render", "page", name, "err", err)
		return
	}
	_ = bw.Flush()
}
