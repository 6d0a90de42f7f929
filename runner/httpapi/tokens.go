package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/runnel-ci/runnel/runner/access"
)

// TokenView is an API token as the API shows it (never its hash).
type TokenView struct {
	ID        int64       `json:"id"`
	Name      string      `json:"name"`
	Role      access.Role `json:"role"`
	CreatedAt time.Time   `json:"created_at"`
	// Token is the plaintext, returned once, at creation.
	Token string `json:"token,omitempty"`
}

// TokenRequest is the body of POST /api/v1/tokens. An empty role means
// read.
type TokenRequest struct {
	Name string      `json:"name"`
	Role access.Role `json:"role"`
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := s.cfg.Store.Tokens(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]TokenView, 0, len(toks))
	for _, t := range toks {
		out = append(out, TokenView{ID: t.ID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	if err := access.CheckTokenName(req.Name); err != "" {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if req.Role == "" {
		req.Role = access.Read
	}
	if _, err := access.Parse(string(req.Role)); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	plain, t, err := s.cfg.Store.CreateToken(r.Context(), req.Name, req.Role)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("api token created", "id", t.ID, "name", t.Name, "role", t.Role, "by", user(r))
	writeJSON(w, http.StatusCreated, TokenView{ID: t.ID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt, Token: plain})
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "token id must be a number")
		return
	}
	if err := s.cfg.Store.DeleteToken(r.Context(), id); err != nil {
		s.storeError(w, err)
		return
	}
	s.log.Info("api token revoked", "id", id, "by", user(r))
	w.WriteHeader(http.StatusNoContent)
}
