package ui

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/runnel-ci/runnel/runner/store"
)

// reposPage lists the repositories.
func (h *Handler) reposPage(w http.ResponseWriter, r *http.Request) {
	repos, err := h.cfg.Store.Repos(r.Context())
	if err != nil {
		h.storeError(w, r, "list repos", err)
		return
	}
	h.render(w, r, http.StatusOK, "repos", "Repositories", map[string]any{"Repos": repos})
}

// branchRow is a branch on a repository's page with its latest run.
type branchRow struct {
	Name string
	Run  *store.Run
}

// branchWindow is how many recent runs the branch list is made from.
const branchWindow = 200

// repoPage shows a repository: recent runs, branches with their latest
// run, the badge snippet, schedules and settings.
func (h *Handler) repoPage(w http.ResponseWriter, r *http.Request) {
	repo, ok := h.loadRepo(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	recent, err := h.cfg.Store.ListRuns(ctx, store.RunFilter{RepoID: repo.ID, Limit: branchWindow})
	if err != nil {
		h.storeError(w, r, "list runs", err)
		return
	}
	var branches []branchRow
	seen := map[string]bool{}
	for _, run := range recent { // newest first: the first run of a branch is its latest
		if run.Branch == "" || seen[run.Branch] {
			continue
		}
		seen[run.Branch] = true
		branches = append(branches, branchRow{Name: run.Branch, Run: run})
	}
	schedules, err := h.cfg.Store.Schedules(ctx, repo.ID)
	if err != nil {
		h.storeError(w, r, "list schedules", err)
		return
	}
	runs := recent[:min(len(recent), 20)]
	badge := h.baseURL(r) + "/badges/" + repo.Name + "/status.svg"
	data := map[string]any{"Repo": repo, "Runs": runs, "Branches": branches, "Schedules": schedules,
		"Badge": badge, "BadgeMarkdown": "[![build status](" + badge + ")](" + h.baseURL(r) + "/repos/" + repo.Name + ")",
		"Flash": map[string]string{"saved": "Settings saved."}[r.URL.Query().Get("done")]}
	h.render(w, r, http.StatusOK, "repo", repo.Name, data)
}

// repoSettings changes the settings the page offers: default branch,
// cancel previous runs, private, generic hook.
func (h *Handler) repoSettings(w http.ResponseWriter, r *http.Request) {
	repo, ok := h.loadRepo(w, r)
	if !ok {
		return
	}
	branch := strings.TrimSpace(r.PostFormValue("default_branch"))
	if msg := checkBranch(branch); msg != "" {
		h.errorPage(w, r, http.StatusBadRequest, "default branch: "+msg)
		return
	}
	up := *repo
	up.DefaultBranch = branch
	up.CancelPrevious = r.PostFormValue("cancel_previous") == "on"
	up.Private = r.PostFormValue("private") == "on"
	up.GenericHook = r.PostFormValue("generic_hook") == "on"
	if err := h.cfg.Store.UpdateRepo(r.Context(), up); err != nil {
		h.storeError(w, r, "update repo", err)
		return
	}
	h.log.Info("ui repo settings", "repo", repo.Name, "default_branch", up.DefaultBranch, "cancel_previous", up.CancelPrevious,
		"private", up.Private, "generic_hook", up.GenericHook, "user", sessionOf(r).user)
	http.Redirect(w, r, "/repos/"+repo.Name+"?done=saved", http.StatusSeeOther)
}

func (h *Handler) loadRepo(w http.ResponseWriter, r *http.Request) (*store.Repo, bool) {
	name := r.PathValue("name")
	if name == "" {
		name = r.FormValue("repo")
	}
	repo, err := h.cfg.Store.Repo(r.Context(), name)
	if err != nil {
		h.storeError(w, r, "repo "+name, err)
		return nil, false
	}
	return repo, true
}

// baseURL is the server's public URL, else the scheme and host the
// request came to.
func (h *Handler) baseURL(r *http.Request) string {
	if h.cfg.BaseURL != "" {
		return strings.TrimSuffix(h.cfg.BaseURL, "/")
	}
	u := url.URL{Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	return u.String()
}

// checkBranch returns why name cannot be a branch name, or "" (a subset
// of git check-ref-format's rules: enough to keep junk out).
func checkBranch(name string) string {
	switch {
	case name == "":
		return "is required"
	case len(name) > 255:
		return "is longer than 255 bytes"
	case strings.HasPrefix(name, "-"), strings.HasPrefix(name, "/"), strings.HasSuffix(name, "/"),
		strings.HasSuffix(name, "."), strings.HasSuffix(name, ".lock"):
		return "may not start with - or /, nor end with /, . or .lock"
	case strings.Contains(name, ".."), strings.Contains(name, "//"), strings.Contains(name, "@{"):
		return `may not contain "..", "//" or "@{"`
	case strings.IndexFunc(name, func(c rune) bool {
		return unicode.IsSpace(c) || !unicode.IsPrint(c) || strings.ContainsRune(`~^:?*[\`, c)
	}) >= 0:
		return `may not contain spaces, control characters or any of ~^:?*[\`
	}
	return ""
}
