package ui

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/runnel-ci/runnel/runner/access"
)

// tokensPage lists the API tokens (never their secrets) with a form to
// make one and a button to revoke each. Admins only.
func (h *Handler) tokensPage(w http.ResponseWriter, r *http.Request) {
	h.tokensForm(w, r, http.StatusOK, map[string]any{})
}

func (h *Handler) tokensForm(w http.ResponseWriter, r *http.Request, code int, data map[string]any) {
	toks, err := h.cfg.Store.Tokens(r.Context())
	if err != nil {
		h.storeError(w, r, "list tokens", err)
		return
	}
	data["Tokens"], data["Roles"], data["Self"] = toks, access.Roles, sessionOf(r).tokenID
	if data["Flash"] == nil {
		data["Flash"] = map[string]string{"revoked": "Token revoked."}[r.URL.Query().Get("done")]
	}
	h.render(w, r, code, "tokens", "API tokens", data)
}

// createToken makes a token and shows its plaintext once, on the page
// that answers the POST (never in a URL, never again).
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	role, err := access.Parse(r.PostFormValue("role"))
	if msg := access.CheckTokenName(name); msg != "" || err != nil {
		if msg == "" {
			msg = err.Error()
		}
		h.tokensForm(w, r, http.StatusBadRequest, map[string]any{"Error": msg, "Name": name})
		return
	}
	plain, t, err := h.cfg.Store.CreateToken(r.Context(), name, role)
	if err != nil {
		h.storeError(w, r, "create token", err)
		return
	}
	h.log.Info("ui token created", "id", t.ID, "name", t.Name, "role", t.Role, "user", sessionOf(r).user)
	h.tokensForm(w, r, http.StatusCreated, map[string]any{"Created": t, "Plain": plain})
}

// revokeToken deletes a token: requests with it get 401 at once, and
// UI sessions started with it end.
func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		h.errorPage(w, r, http.StatusNotFound, "no such token")
		return
	}
	if err := h.cfg.Store.DeleteToken(r.Context(), id); err != nil {
		h.storeError(w, r, "revoke token", err)
		return
	}
	h.log.Info("ui token revoked", "id", id, "user", sessionOf(r).user)
	http.Redirect(w, r, "/tokens?done=revoked", http.StatusSeeOther)
}
