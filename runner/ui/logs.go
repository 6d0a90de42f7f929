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
	run     *store.Run
	stage   *store.Stage
	step    *store.Step
	attempt int
	key     logstore.Key
}

// live reports whether the step attempt may still write to its log.
func (s stepRef) live() bool {
	return s.attempt == s.stage.Attempt && !s.stage.Status.Terminal() && !s.step.Status.Terminal() &&
		(s.stage.Status == store.StatusQueued || s.stage.Status == store.StatusRunning)
}

// resolveStep finds the run, stage, step and attempt of a log URL; on
// failure it has answered with code and returns false.
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
	for _, st := range run.Stages {
		if st.Key == r.PathValue("stage") {
			ref.stage = st
		}
	}
	if ref.stage == nil {
		fail(http.StatusNotFound, "no such stage")
		return ref, false
	}
	pos, err := strconv.Atoi(r.PathValue("step"))
	if err == nil {
		for _, step := range ref.stage.Steps {
			if step.Position == pos {
				ref.step = step
			}
		}
	}
	if ref.step == nil {
		fail(http.StatusNotFound, "no such step")
		return ref, false
	}
	ref.attempt = ref.stage.Attempt
	if a := r.URL.Query().Get("attempt"); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 || n > ref.stage.Attempt {
			fail(http.StatusBadRequest, "no such attempt")
			return ref, false
		}
		ref.attempt = n
	}
	ref.key = runner.LogKey(run.ID, ref.stage.Key, ref.attempt, ref.step.Position)
	return ref, true
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
	p, err := h.readPage(ref.key, live, lq)
	if err != nil {
		h.storeError(w, r, "read log", err)
		return
	}
	base := stagePath(ref.run.ID, ref.stage.Key) + "/steps/" + strconv.Itoa(ref.step.Position)
	q := "?attempt=" + strconv.Itoa(ref.attempt)
	var attempts []int
	for i := 1; i <= ref.stage.Attempt; i++ {
		attempts = append(attempts, i)
	}
	api := "/api/v1/runs/" + strconv.FormatInt(ref.run.ID, 10) + "/stages/" + url.PathEscape(ref.stage.Key) +
		"/steps/" + strconv.Itoa(ref.step.Position) + "/log" + q + "&styled=1"
	// A live log's page near its end hands over to the live stream.
	atEnd := p.To == p.Size || (live && p.Size-p.To < h.cfg.LogPageBytes)
	d := map[string]any{"Run": ref.run, "Stage": ref.stage, "Step": ref.step, "Attempt": ref.attempt, "Attempts": attempts,
		"Page": p, "Lines": segmentLines(p.Data), "Live": live, "Follow": live && atEnd, "AtEnd": atEnd,
		"Raw": base + "/log.txt" + q, "Base": base + "/log", "Here": base + "/log" + q, "Src": api,
		"PageLines": h.cfg.LogPageLines, "PageBytes": h.cfg.LogPageBytes, "MaxLines": h.cfg.LogMaxLines}
	h.stream(w, r, "log", fmt.Sprintf("%s #%d · %s · %s", ref.run.Repo, ref.run.Number, ref.stage.Key, ref.step.Name), d)
}

// readPage reads the page lq asks for; a log not written yet is an
// empty page.
func (h *Handler) readPage(k logstore.Key, live bool, lq logview.Query) (logview.Page, error) {
	final := !live && !h.cfg.Logs.Live(k)
	f, err := h.cfg.Logs.Open(k)
	if errors.Is(err, logstore.ErrNotFound) {
		return logview.Page{Final: final}, nil
	}
	if err != nil {
		return logview.Page{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return logview.Page{}, fmt.Errorf("stat log %s: %w", k, err)
	}
	return logview.ReadPage(f, fi.Size(), final, lq)
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
	f, err := h.cfg.Logs.Open(ref.key)
	if errors.Is(err, logstore.ErrNotFound) {
		return
	}
	if err != nil {
		h.log.Error("ui: open log", "key", ref.key.String(), "err", err)
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
