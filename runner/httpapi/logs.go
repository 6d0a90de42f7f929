package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/logview"
	"github.com/runnel-ci/runnel/runner/store"
)

// stepLog is the one log endpoint, for the CLI and the web UI alike
// (docs/api.md): the whole log as text; a page of it by byte range cut
// at line boundaries (?from= or ?before= or ?tail=1, JSON); or the log
// followed live, as Server-Sent Events in batches of lines (Accept:
// text/event-stream, resuming at ?from= or Last-Event-ID) or as chunked
// text (?follow=1).
func (s *Server) stepLog(w http.ResponseWriter, r *http.Request) {
	run, ok := s.loadRun(w, r)
	if !ok {
		return
	}
	sl, ok := s.resolveStep(w, r, run)
	if !ok {
		return
	}
	key := sl.Key
	q := r.URL.Query()
	done := s.stepDone(sl.Stage.ID, sl.Attempt, sl.Step.Position)
	var styled *logview.ANSI
	if q.Get("styled") == "1" {
		styled = logview.NewANSI()
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	switch {
	case sse, q.Get("follow") == "1", q.Get("follow") == "true":
		from, err := offset(r.Header.Get("Last-Event-ID"), q.Get("from"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		rd := s.cfg.Logs.Follow(r.Context(), key, from, done)
		defer rd.Close()
		if sse {
			err = logview.Follow(w, rd, from, styled)
		} else {
			err = logview.FollowText(w, rd)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("follow log", "key", key.String(), "err", err)
		}
	case q.Has("from") || q.Has("before") || q.Get("tail") == "1":
		s.logPage(w, q, key, done, styled)
	default:
		s.wholeLog(w, sl.Stage, key)
	}
}

// resolveStep finds the step attempt's log a log URL names ({step} is
// a name or a position); on failure it has answered.
func (s *Server) resolveStep(w http.ResponseWriter, r *http.Request, run *store.Run) (runner.StepLog, bool) {
	sl, err := runner.FindStepLog(run, r.PathValue("stage"), r.PathValue("step"), true, r.URL.Query().Get("attempt"))
	switch {
	case err == nil:
		return sl, true
	case errors.Is(err, runner.ErrBadAttempt):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusNotFound, err.Error())
	}
	return sl, false
}

// stepDone reports whether a step attempt has finished, so a follower of
// a log whose writer went away (a crashed process) still ends.
func (s *Server) stepDone(stageID int64, attempt, pos int) func() bool {
	return func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cur, err := s.cfg.Store.Stage(ctx, stageID)
		return err != nil || runner.StepEnded(cur, attempt, pos)
	}
}

// offset reads a resume offset: the first of the values that is set.
func offset(vals ...string) (int64, error) {
	for _, v := range vals {
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, errors.New("offset must be a byte offset (a number >= 0)")
		}
		return n, nil
	}
	return 0, nil
}

// logPage answers one page of a log as a logview.Batch.
func (s *Server) logPage(w http.ResponseWriter, q url.Values, key logstore.Key, done func() bool, styled *logview.ANSI) {
	var lq logview.Query
	var err error
	lq.Tail = q.Get("tail") == "1"
	if !lq.Tail {
		if lq.From, err = offset(q.Get("from")); err == nil {
			lq.Before, err = offset(q.Get("before"))
		}
		if err == nil && q.Has("before") && lq.Before == 0 {
			err = errors.New("before must be > 0")
		}
	}
	if err == nil {
		lq.Limit, err = offset(q.Get("limit"))
	}
	if err == nil && q.Has("lines") {
		var n int64
		if n, err = offset(q.Get("lines")); err == nil {
			lq.Lines = int(n)
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.cfg.Logs.Page(key, done(), lq)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, logview.PageBatch(p, styled))
}

// wholeLog answers the log as written so far, as text.
func (s *Server) wholeLog(w http.ResponseWriter, st *store.Stage, key logstore.Key) {
	f, err := s.cfg.Logs.Open(key)
	if errors.Is(err, logstore.ErrNotFound) {
		if st.Status.Terminal() || st.Status == store.StatusPending || st.Status == store.StatusWaiting {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			return
		}
		writeError(w, http.StatusNotFound, "no log yet")
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.Copy(w, f)
}
