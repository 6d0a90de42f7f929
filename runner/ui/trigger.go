package ui

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/store"
)

// inputField is one typed input of the trigger form.
type inputField struct {
	pipeline.Input
	Value string // as given, else the default
	Error string // why the server refused the value
}

// Checked is true for a boolean input whose value is "true".
func (f inputField) Checked() bool { return f.Value == "true" }

// triggerPage shows the form that starts a manual run of a repository's
// branch, with a field per input its pipeline declares at the branch's
// head: text for a string, a list for a choice, a checkbox for a boolean.
func (h *Handler) triggerPage(w http.ResponseWriter, r *http.Request) {
	repo, ok := h.loadRepo(w, r)
	if !ok {
		return
	}
	h.triggerForm(w, r, repo, strings.TrimSpace(r.URL.Query().Get("branch")), nil, nil)
}

// triggerForm renders the form for branch with the values given (nil:
// the defaults) and the problems the runner found.
func (h *Handler) triggerForm(w http.ResponseWriter, r *http.Request, repo *store.Repo, branch string, given map[string]string, refused *runner.InputError) {
	if branch == "" {
		branch = repo.DefaultBranch
	}
	data := map[string]any{"Repo": repo, "Branch": branch}
	code := http.StatusOK
	commit, inputs, err := h.cfg.Actions.Inputs(r.Context(), repo, branch)
	var bad *runner.InputError
	switch {
	case errors.As(err, &bad):
		code, data["Error"] = http.StatusBadRequest, bad.Error()
	case err != nil:
		h.storeError(w, r, "read the pipeline of "+repo.Name, err)
		return
	}
	fields := make([]inputField, 0, len(inputs))
	for _, in := range inputs {
		f := inputField{Input: in, Value: in.Default}
		if v, ok := given[in.Name]; ok {
			f.Value = v
		}
		if refused != nil {
			f.Error = refused.Fields[in.Name]
		}
		fields = append(fields, f)
	}
	if refused != nil {
		code, data["Error"] = http.StatusBadRequest, refused.Error()
	}
	data["Commit"], data["Inputs"] = commit, fields
	h.render(w, r, code, "trigger", "Run "+repo.Name, data)
}

// trigger starts the run the form asks for. The form sends every input
// it shows (input.<name>); an unchecked boolean sends nothing and means
// "false". The runner checks the values against the pipeline at the
// commit it runs; refused values come back as the form with messages.
func (h *Handler) trigger(w http.ResponseWriter, r *http.Request) {
	repo, ok := h.loadRepo(w, r)
	if !ok {
		return
	}
	branch := strings.TrimSpace(r.PostFormValue("branch"))
	if branch == "" {
		branch = repo.DefaultBranch
	}
	given := map[string]string{}
	for k, v := range r.PostForm {
		if name, ok := strings.CutPrefix(k, "input."); ok && len(v) > 0 {
			given[name] = v[len(v)-1]
		}
	}
	for _, name := range r.PostForm["boolean"] {
		if _, ok := given[name]; !ok {
			given[name] = "false"
		}
	}
	run, err := h.cfg.Actions.Manual(r.Context(), runner.ManualRequest{Repo: repo, Branch: branch, Inputs: given, User: sessionOf(r).user})
	var bad *runner.InputError
	if errors.As(err, &bad) {
		h.triggerForm(w, r, repo, branch, given, bad)
		return
	}
	if err != nil {
		h.storeError(w, r, "start a run of "+repo.Name, err)
		return
	}
	h.log.Info("ui trigger", "repo", repo.Name, "branch", branch, "run", run.ID, "user", sessionOf(r).user)
	http.Redirect(w, r, "/runs/"+strconv.FormatInt(run.ID, 10)+"?done=triggered", http.StatusSeeOther)
}
