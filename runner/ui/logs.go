package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/logstore"
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

// logLine is a rendered line of the log page.
type logLine []Segment

// logPage shows a step's log as it is now and, while the step runs, has
// the browser follow it from where the page ends (ui.js, EventSource).
func (h *Handler) logPage(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.resolveStep(w, r, func(code int, msg string) { h.errorPage(w, r, code, msg) })
	if !ok {
		return
	}
	data, truncated, err := h.readLog(ref.key)
	if err != nil {
		h.storeError(w, r, "read log", err)
		return
	}
	// Render complete lines only; the follower resumes at the byte after
	// the last newline, so a line being written is shown once, complete.
	end := int64(len(data))
	live := ref.live()
	if live {
		if i := lastNewline(data); i >= 0 {
			end = int64(i + 1)
		} else {
			end = 0
		}
		data = data[:end]
	}
	a := newANSI()
	var lines []logLine
	rd := bufio.NewReader(bytes.NewReader(data))
	for {
		l, err := rd.ReadString('\n')
		if len(l) > 0 {
			lines = append(lines, a.line(trimNewline(l)))
		}
		if err != nil {
			break
		}
	}
	base := stagePath(ref.run.ID, ref.stage.Key) + "/steps/" + strconv.Itoa(ref.step.Position)
	q := "?attempt=" + strconv.Itoa(ref.attempt)
	var attempts []int
	for i := 1; i <= ref.stage.Attempt; i++ {
		attempts = append(attempts, i)
	}
	d := map[string]any{"Run": ref.run, "Stage": ref.stage, "Step": ref.step, "Attempt": ref.attempt, "Attempts": attempts,
		"Lines": lines, "Truncated": truncated, "Live": live, "Raw": base + "/log.txt" + q, "Base": base + "/log",
		"Events": base + "/events" + q + "&from=" + strconv.FormatInt(truncated+end, 10)}
	h.render(w, r, http.StatusOK, "log", fmt.Sprintf("%s #%d · %s · %s", ref.run.Repo, ref.run.Number, ref.stage.Key, ref.step.Name), d)
}

// readLog reads a log, or its last MaxLogBytes, and says how many bytes
// were left out at the start. A log not written yet is empty.
func (h *Handler) readLog(k logstore.Key) ([]byte, int64, error) {
	f, err := h.cfg.Logs.Open(k)
	if errors.Is(err, logstore.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("stat log %s: %w", k, err)
	}
	var skip int64
	if fi.Size() > h.cfg.MaxLogBytes {
		skip = fi.Size() - h.cfg.MaxLogBytes
		if _, err := f.Seek(skip, io.SeekStart); err != nil {
			return nil, 0, fmt.Errorf("seek log %s: %w", k, err)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, h.cfg.MaxLogBytes))
	if err != nil {
		return nil, 0, fmt.Errorf("read log %s: %w", k, err)
	}
	return data, skip, nil
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

// logEvents streams a step's log as Server-Sent Events from byte offset
// "from" (or the Last-Event-ID of a reconnecting EventSource): one event
// per line, data {"s": [segments]}, id the offset after the line, and a
// final "end" event once the step attempt has finished.
func (h *Handler) logEvents(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.resolveStep(w, r, func(code int, msg string) { http.Error(w, msg, code) })
	if !ok {
		return
	}
	from := int64(0)
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("from")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad offset", http.StatusBadRequest)
			return
		}
		from = n
		break
	}
	stageID, attempt, pos := ref.stage.ID, ref.attempt, ref.step.Position
	done := func() bool {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		cur, err := h.cfg.Store.Stage(ctx, stageID)
		if err != nil || cur.Attempt != attempt || cur.Status.Terminal() {
			return true
		}
		for _, step := range cur.Steps {
			if step.Position == pos {
				return step.Status.Terminal()
			}
		}
		return true
	}
	rd := h.cfg.Logs.Follow(r.Context(), ref.key, done)
	defer rd.Close()
	if from > 0 {
		if n, err := io.CopyN(io.Discard, rd, from); err != nil || n < from {
			// The log is shorter than the offset (or was cut); nothing to add.
			writeEnd(w)
			return
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	a := newANSI()
	br := bufio.NewReaderSize(rd, 64<<10)
	offset := from
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull || (err == nil && len(line) > 0) || (errors.Is(err, io.EOF) && len(line) > 0) {
			// A line over 64 KiB is sent in pieces.
			offset += int64(len(line))
			b, merr := json.Marshal(map[string][]Segment{"s": a.line(trimNewline(string(line)))})
			if merr != nil {
				return
			}
			if _, werr := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", offset, b); werr != nil {
				return
			}
			if br.Buffered() == 0 {
				_ = rc.Flush()
			}
			if err == nil || err == bufio.ErrBufferFull {
				continue
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				writeEnd(w)
				_ = rc.Flush()
			} else if !errors.Is(err, context.Canceled) && !errors.Is(err, os.ErrClosed) {
				h.log.Warn("ui: follow log", "key", ref.key.String(), "err", err)
			}
			return
		}
	}
}

func writeEnd(w http.ResponseWriter) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
	}
	_, _ = io.WriteString(w, "event: end\ndata: {}\n\n")
}

func lastNewline(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i
		}
	}
	return -1
}

func trimNewline(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		return s[:n-1]
	}
	return s
}
