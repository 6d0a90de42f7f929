package transfers

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
)

// Artifact describes the artifacts a stage of a run uploaded.
type Artifact struct {
	Stage   string    `json:"stage"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// URL downloads the archive (a tar) through the authenticated API.
	URL string `json:"url"`
}

// List returns the artifacts of a run, by stage ID.
func (s *Service) List(ctx context.Context, runID int64) ([]Artifact, error) {
	objs, err := s.cfg.DB.RunArtifacts(ctx, runID)
	if err != nil {
		return nil, err
	}
	out := make([]Artifact, 0, len(objs))
	for _, o := range objs {
		out = append(out, Artifact{Stage: o.Name, Size: o.Size, SHA256: o.SHA256, Created: o.CreatedAt, Expires: o.ExpiresAt,
			URL: "/api/v1/runs/" + strconv.FormatInt(runID, 10) + "/artifacts/" + url.PathEscape(o.Name)})
	}
	return out, nil
}

// RunArtifacts serves, behind the API's authentication, GET
// /api/v1/runs/{id}/artifacts (the list) and GET
// /api/v1/runs/{id}/artifacts/{stage} (the archive: streamed from the
// filesystem store, or a redirect to a presigned URL of S3).
func (s *Service) RunArtifacts(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such run"})
		return
	}
	stage := r.PathValue("stage")
	if stage == "" {
		list, err := s.List(r.Context(), id)
		if err != nil {
			s.log.Error("list artifacts", "run", id, "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			return
		}
		writeJSON(w, http.StatusOK, list)
		return
	}
	o, err := s.cfg.DB.ReadyObject(r.Context(), "artifact", runScope(id), stage, false)
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no artifacts of stage " + stage})
		return
	}
	if err != nil {
		s.log.Error("find artifacts", "run", id, "stage", stage, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		return
	}
	w.Header().Set("X-Runnel-Sha256", o.SHA256)
	if s.presign != nil {
		u, err := s.presign.Presign(r.Context(), o.Key, urlTTL)
		if err != nil {
			s.log.Error("presign artifacts", "key", o.Key, "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			return
		}
		http.Redirect(w, r, u, http.StatusTemporaryRedirect)
		return
	}
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": stage + ".tar"}))
	s.serveObject(w, r, o.Key, o.SHA256)
}
