// Package gitlabtest is a fake of the part of GitLab's REST API (v4) that
// Runnel uses, commit statuses, for tests that point GitLab's own client
// library at it. It keeps state the way GitLab does: one state machine
// per (project, commit, name, ref) that is moved on while pending or
// running and replaced by a new status once finished, with GitLab's
// answers (201, 400 "Cannot transition status via :enqueue from
// :pending", 401, 404) and its authentication (PRIVATE-TOKEN or Bearer).
package gitlabtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Status is one commit status as the fake stores it.
type Status struct {
	ID          int64     `json:"id"`
	SHA         string    `json:"sha"`
	Ref         string    `json:"ref"`
	Status      string    `json:"status"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	TargetURL   string    `json:"target_url"`
	CreatedAt   time.Time `json:"created_at"`
	Project     string    `json:"-"`
	// History lists the states the status went through, oldest first.
	History []string `json:"-"`
}

// Server is the fake GitLab. Its URL is the instance's base URL (the
// client library appends /api/v4).
type Server struct {
	URL string

	mu       sync.Mutex
	token    string
	projects map[string]int64 // path_with_namespace → id
	statuses []*Status
	nextID   int64
	failures []int // answers to give the next POSTs instead of handling them
	requests int
	changed  chan struct{} // closed and replaced when a status changes
}

// New starts a fake GitLab that accepts token and knows the projects
// (paths with namespace), and closes it when the test ends.
func New(t testing.TB, token string, projects ...string) *Server {
	s := &Server{token: token, projects: map[string]int64{}, nextID: 1000, changed: make(chan struct{})}
	for i, p := range projects {
		s.projects[p] = int64(i + 1)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// FailNext makes the next status POSTs answer these codes, in order.
func (s *Server) FailNext(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, codes...)
}

// Requests returns how many API requests the fake answered.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// WaitFor waits until cond, called without the fake's lock held, is
// true after some status change, or d has passed; it reports whether cond
// held.
func (s *Server) WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond()
		}
	}
}

// Statuses returns copies of the statuses of project at sha named name,
// oldest first (a finished status followed by a new one gives two).
func (s *Server) Statuses(project, sha, name string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Status
	for _, st := range s.statuses {
		if st.Project == project && st.SHA == sha && st.Name == name {
			c := *st
			c.History = append([]string(nil), st.History...)
			out = append(out, c)
		}
	}
	return out
}

var (
	statusPath = regexp.MustCompile(`^/api/v4/projects/([^/]+)/statuses/([^/]+)$`)
	listPath   = regexp.MustCompile(`^/api/v4/projects/([^/]+)/repository/commits/([^/]+)/statuses$`)
)

// ServeHTTP answers the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	tok := r.Header.Get("PRIVATE-TOKEN")
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok == "" {
		tok = b
	}
	if tok == "" || tok != s.token {
		answer(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	path := r.URL.EscapedPath()
	if m := statusPath.FindStringSubmatch(path); m != nil && r.Method == http.MethodPost {
		s.post(w, r, m[1], m[2])
		return
	}
	if m := listPath.FindStringSubmatch(path); m != nil && r.Method == http.MethodGet {
		s.list(w, r, m[1], m[2])
		return
	}
	answer(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
}

// project resolves an :id path parameter, a number or a URL-encoded path.
func (s *Server) project(id string) (string, bool) {
	name, err := url.PathUnescape(id)
	if err != nil {
		return "", false
	}
	if n, err := strconv.ParseInt(name, 10, 64); err == nil {
		for p, pid := range s.projects {
			if pid == n {
				return p, true
			}
		}
		return "", false
	}
	_, ok := s.projects[name]
	return name, ok
}

// params reads the request's parameters the way GitLab's API does: from a
// JSON body, a form body or the query.
func params(r *http.Request) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range r.URL.Query() {
		out[k] = v[0]
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&body); err != nil {
			return nil, err
		}
		for k, v := range body {
			switch v := v.(type) {
			case string:
				out[k] = v
			case nil:
			default:
				out[k] = fmt.Sprint(v)
			}
		}
		return out, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	for k, v := range r.PostForm {
		out[k] = v[0]
	}
	return out, nil
}

var sha = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

func (s *Server) post(w http.ResponseWriter, r *http.Request, id, commit string) {
	if len(s.failures) > 0 {
		code := s.failures[0]
		s.failures = s.failures[1:]
		answer(w, code, map[string]string{"message": http.StatusText(code)})
		return
	}
	project, ok := s.project(id)
	if !ok {
		answer(w, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
		return
	}
	if !sha.MatchString(commit) {
		answer(w, http.StatusNotFound, map[string]string{"message": "404 Commit Not Found"})
		return
	}
	p, err := params(r)
	if err != nil {
		answer(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	event, ok := events[p["state"]]
	if !ok {
		answer(w, http.StatusBadRequest, map[string]string{"error": "state does not have a valid value"})
		return
	}
	name := p["name"]
	if name == "" {
		name = p["context"]
	}
	if name == "" {
		name = "default"
	}
	// GitLab moves on the newest status of this name and ref that is
	// still pending or running; otherwise it starts a new one (created).
	var st *Status
	for _, c := range s.statuses {
		if c.Project == project && c.SHA == commit && c.Name == name && c.Ref == p["ref"] &&
			(c.Status == "pending" || c.Status == "running") {
			st = c
		}
	}
	fresh := st == nil
	if fresh {
		st = &Status{ID: s.nextID, Project: project, SHA: commit, Ref: p["ref"], Name: name, Status: "created",
			CreatedAt: time.Now().UTC()}
	}
	from := st.Status
	to, err := event.fire(from)
	if err != nil {
		answer(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		return
	}
	if fresh {
		s.nextID++
		s.statuses = append(s.statuses, st)
	}
	st.Status = to
	st.History = append(st.History, to)
	close(s.changed)
	s.changed = make(chan struct{})
	if v, ok := p["description"]; ok {
		st.Description = v
	}
	if v, ok := p["target_url"]; ok {
		st.TargetURL = v
	}
	answer(w, http.StatusCreated, st)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, id, commit string) {
	project, ok := s.project(id)
	if !ok {
		answer(w, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
		return
	}
	q := r.URL.Query()
	all := q.Get("all") == "true"
	// Without all, GitLab lists only the newest status of each name.
	newest := map[string]*Status{}
	out := []*Status{}
	for _, c := range s.statuses {
		if c.Project != project || c.SHA != commit || q.Has("name") && c.Name != q.Get("name") ||
			q.Has("ref") && c.Ref != q.Get("ref") {
			continue
		}
		if all {
			out = append(out, c)
		} else {
			newest[c.Name] = c
		}
	}
	for _, c := range s.statuses {
		if newest[c.Name] == c {
			out = append(out, c)
		}
	}
	answer(w, http.StatusOK, out)
}

func answer(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
