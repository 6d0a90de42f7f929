package ui

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/internal/gitmirror"
	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/transfers"
)

var funcs = template.FuncMap{
	"short":     shortSHA,
	"firstLine": firstLine,
	"when":      formatTime,
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur":       duration,
	"refLabel":  refLabel,
	"runURL":    func(id int64) string { return "/runs/" + strconv.FormatInt(id, 10) },
	"pathEsc":   url.PathEscape,
	"size":      humanSize,
	"rest":      func(percent int) int { return 100 - percent },
	"redact":    gitmirror.Redact, // credentials of a clone URL stored before they were refused
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse ui layout: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"runs", "run", "log", "repos", "repo", "trigger", "tokens", "agents", "deployments", "login", "error"} {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse ui page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what the layout sees.
type page struct {
	Title string
	Nav   string
	User  string
	CSRF  string
	// CanOperate and CanAdmin say what the session's role may do; pages
	// show only the buttons it may use (the handlers check again).
	CanOperate, CanAdmin bool
	Data                 any
}

// render executes a page into a buffer first, so a template error never
// leaves a half-written page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, name, title string, data any) {
	p := page{Title: title, Nav: name, Data: data}
	if s := sessionOf(r); s != nil {
		p.User, p.CSRF = s.user, s.csrf
		p.CanOperate, p.CanAdmin = access.Allows(s.role, access.Operate), access.Allows(s.role, access.Administer)
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		h.log.Error("ui render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func shortSHA(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if len(s) > 120 {
		s = strings.ToValidUTF8(s[:120], "") + "…"
	}
	return s
}

// humanSize formats a byte count: "512 B", "4.5 KiB", "200.0 MiB".
func humanSize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, unit := float64(n)/1024, 0
	for f >= 1024 && unit < 4 {
		f /= 1024
		unit++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[unit]
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// duration is how long something ran: start to finish, or start to now
// while it runs.
func duration(start, end time.Time) string {
	if start.IsZero() {
		return "—"
	}
	if end.IsZero() {
		end = time.Now()
	}
	d := end.Sub(start).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

func refLabel(branch, tag, ref string) string {
	switch {
	case tag != "":
		return "tag " + tag
	case branch != "":
		return branch
	}
	return ref
}

// runsPage lists runs with filters by repo, branch and status.
func (h *Handler) runsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	f := store.RunFilter{Branch: strings.TrimSpace(q.Get("branch")), Limit: 50}
	data := map[string]any{"Repo": q.Get("repo"), "Branch": f.Branch, "Status": q.Get("status"), "Statuses": allStatuses}
	repos, err := h.cfg.Store.Repos(ctx)
	if err != nil {
		h.storeError(w, r, "list repos", err)
		return
	}
	data["Repos"] = repos
	if name := q.Get("repo"); name != "" {
		repo, err := h.cfg.Store.Repo(ctx, name)
		if err != nil {
			h.storeError(w, r, "repo "+name, err)
			return
		}
		f.RepoID = repo.ID
	}
	if st := q.Get("status"); st != "" {
		if !store.Status(st).Valid() {
			h.errorPage(w, r, http.StatusBadRequest, "unknown status filter")
			return
		}
		f.Status = []store.Status{store.Status(st)}
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			h.errorPage(w, r, http.StatusBadRequest, "before must be a run id")
			return
		}
		f.Before = n
	}
	runs, err := h.cfg.Store.ListRuns(ctx, f)
	if err != nil {
		h.storeError(w, r, "list runs", err)
		return
	}
	data["Runs"] = runs
	if f.Before == 0 {
		data["Refresh"] = h.cfg.RefreshInterval.Milliseconds()
	}
	if len(runs) == f.Limit {
		nq := url.Values{}
		for _, k := range []string{"repo", "branch", "status"} {
			if v := q.Get(k); v != "" {
				nq.Set(k, v)
			}
		}
		nq.Set("before", strconv.FormatInt(runs[len(runs)-1].ID, 10))
		data["Older"] = "/?" + nq.Encode()
	}
	h.render(w, r, http.StatusOK, "runs", "Runs", data)
}

var allStatuses = []store.Status{store.StatusPending, store.StatusWaiting, store.StatusQueued, store.StatusRunning,
	store.StatusSuccess, store.StatusFailure, store.StatusCanceled, store.StatusError, store.StatusSkipped}

// stageView is a stage on the run page.
type stageView struct {
	*store.Stage
	CanDecide bool // waiting for an approval decision
	Path      string
	Steps     []stepView
}

type stepView struct {
	*store.Step
	LogURL string
}

// dagOrder sorts stages topologically by needs (ties by plan position)
// and gives each its depth. Needs naming unknown stages are ignored; a
// cycle, which the compiler refuses, would keep plan order.
func dagOrder(stages []*store.Stage) []*store.Stage {
	byKey := map[string]*store.Stage{}
	for _, s := range stages {
		byKey[s.Key] = s
	}
	placed := map[string]bool{}
	out := make([]*store.Stage, 0, len(stages))
	for len(out) < len(stages) {
		progress := false
		for _, s := range stages {
			if placed[s.Key] {
				continue
			}
			ready := true
			for _, n := range s.Needs {
				if _, ok := byKey[n]; ok && !placed[n] {
					ready = false
					break
				}
			}
			if ready {
				placed[s.Key] = true
				out = append(out, s)
				progress = true
			}
		}
		if !progress {
			for _, s := range stages {
				if !placed[s.Key] {
					placed[s.Key] = true
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func stagePath(runID int64, key string) string {
	return "/runs/" + strconv.FormatInt(runID, 10) + "/stages/" + url.PathEscape(key)
}

func (h *Handler) loadRun(w http.ResponseWriter, r *http.Request) (*store.Run, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		h.errorPage(w, r, http.StatusNotFound, "no such run")
		return nil, false
	}
	run, err := h.cfg.Store.Run(r.Context(), id)
	if err != nil {
		h.storeError(w, r, "run "+strconv.FormatInt(id, 10), err)
		return nil, false
	}
	return run, true
}

// runPage shows one run: its stage graph, then its stages in DAG order
// with their steps.
func (h *Handler) runPage(w http.ResponseWriter, r *http.Request) {
	run, ok := h.loadRun(w, r)
	if !ok {
		return
	}
	ordered := dagOrder(run.Stages)
	var stages []stageView
	for _, st := range ordered {
		sv := stageView{Stage: st, Path: stagePath(run.ID, st.Key),
			CanDecide: st.Approval == store.ApprovalWaiting && !st.Status.Terminal()}
		for _, step := range st.Steps {
			sv.Steps = append(sv.Steps, stepView{Step: step, LogURL: sv.Path + "/steps/" + strconv.Itoa(step.Position) + "/log"})
		}
		stages = append(stages, sv)
	}
	head, err := h.headApproval(r.Context(), run)
	if err != nil {
		h.storeError(w, r, "load the approval of the run's head", err)
		return
	}
	data := map[string]any{"Run": run, "Stages": stages, "Graph": layoutDAG(run.Stages), "Diagnostics": h.cfg.Actions.Diagnostics(run),
		"Head": head, "Flash": flash(r.URL.Query().Get("done")),
		"Refresh": h.cfg.RefreshInterval.Milliseconds(), "Artifacts": h.artifacts(r.Context(), run.ID)}
	h.render(w, r, http.StatusOK, "run", fmt.Sprintf("%s #%d", run.Repo, run.Number), data)
}

// artifacts lists a run's artifacts for its page; a failure shows none
// (and is logged) rather than failing the page.
func (h *Handler) artifacts(ctx context.Context, runID int64) []transfers.Artifact {
	if h.cfg.Artifacts == nil {
		return nil
	}
	list, err := h.cfg.Artifacts.List(ctx, runID)
	if err != nil {
		h.log.Error("list artifacts", "run", runID, "err", err)
	}
	return list
}

// flash turns the fixed "done" query values set by action redirects into
// messages; anything else shows nothing.
func flash(done string) string {
	return map[string]string{
		"canceled":  "Cancel requested.",
		"approved":  "Stage approved.",
		"head":      "Head commit approved: its stages that ask for secrets or deploy run now.",
		"rejected":  "Stage rejected.",
		"rerun":     "This run was started as a rerun.",
		"triggered": "Run started.",
	}[done]
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	run, ok := h.loadRun(w, r)
	if !ok {
		return
	}
	if err := h.cfg.Actions.Cancel(r.Context(), run.ID); err != nil {
		h.storeError(w, r, "cancel run", err)
		return
	}
	h.log.Info("ui cancel", "run", run.ID, "user", sessionOf(r).user)
	http.Redirect(w, r, "/runs/"+strconv.FormatInt(run.ID, 10)+"?done=canceled", http.StatusSeeOther)
}

func (h *Handler) rerun(w http.ResponseWriter, r *http.Request) {
	run, ok := h.loadRun(w, r)
	if !ok {
		return
	}
	nr, err := h.cfg.Actions.Rerun(r.Context(), run.ID)
	if err != nil {
		h.storeError(w, r, "rerun", err)
		return
	}
	h.log.Info("ui rerun", "run", run.ID, "new_run", nr.ID, "user", sessionOf(r).user)
	http.Redirect(w, r, "/runs/"+strconv.FormatInt(nr.ID, 10)+"?done=rerun", http.StatusSeeOther)
}

func (h *Handler) decide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		run, ok := h.loadRun(w, r)
		if !ok {
			return
		}
		stage, user := r.PathValue("stage"), sessionOf(r).user
		act, done := h.cfg.Actions.Reject, "rejected"
		if approve {
			act, done = h.cfg.Actions.Approve, "approved"
		}
		if err := act(r.Context(), run.ID, stage, user); err != nil {
			h.storeError(w, r, "decide approval of "+stage, err)
			return
		}
		h.log.Info("ui approval", "run", run.ID, "stage", stage, "approved", approve, "user", user)
		http.Redirect(w, r, "/runs/"+strconv.FormatInt(run.ID, 10)+"?done="+done, http.StatusSeeOther)
	}
}

// agentRow is an agent on the agents page.
type agentRow struct {
	Name      string
	Labels    []string // "k=v", sorted
	Capacity  int
	Running   int
	Connected bool
	Version   string
	State     string
	LastSeen  time.Time
}

func labelList(m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func (h *Handler) agentsPage(w http.ResponseWriter, r *http.Request) {
	stored, err := h.cfg.Store.Agents(r.Context())
	if err != nil {
		h.storeError(w, r, "list agents", err)
		return
	}
	rows := map[string]*agentRow{}
	if h.cfg.Agents != nil {
		for _, a := range h.cfg.Agents() {
			rows[a.Name] = &agentRow{Name: a.Name, Labels: labelList(a.Labels), Capacity: a.Capacity, Running: a.Running,
				Connected: true, LastSeen: a.LastSeen}
		}
	}
	for _, a := range stored {
		row, ok := rows[a.Name]
		if !ok {
			row = &agentRow{Name: a.Name, Labels: labelList(a.Labels), Capacity: a.Capacity, LastSeen: a.LastSeen}
			rows[a.Name] = row
		}
		row.Version, row.State = a.Version, a.State
		if row.LastSeen.IsZero() || a.LastSeen.After(row.LastSeen) {
			row.LastSeen = a.LastSeen
		}
	}
	list := slices.SortedFunc(maps.Values(rows), func(a, b *agentRow) int {
		if a.Connected != b.Connected {
			if a.Connected {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	h.render(w, r, http.StatusOK, "agents", "Agents", map[string]any{"Agents": list})
}

func (h *Handler) deploymentsPage(w http.ResponseWriter, r *http.Request) {
	f := store.DeploymentFilter{Environment: r.URL.Query().Get("environment"), Limit: 100}
	if name := r.URL.Query().Get("repo"); name != "" {
		repo, err := h.cfg.Store.Repo(r.Context(), name)
		if err != nil {
			h.storeError(w, r, "repo "+name, err)
			return
		}
		f.RepoID = repo.ID
	}
	deps, err := h.cfg.Store.ListDeployments(r.Context(), f)
	if err != nil {
		h.storeError(w, r, "list deployments", err)
		return
	}
	data := map[string]any{"Deployments": deps}
	if slices.ContainsFunc(deps, func(d *store.Deployment) bool { return d.Result == "" }) {
		// A release in progress: the page follows its traffic split.
		data["Refresh"] = h.cfg.RefreshInterval.Milliseconds()
	}
	h.render(w, r, http.StatusOK, "deployments", "Deployments", data)
}
