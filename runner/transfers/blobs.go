package transfers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/runnel-ci/runnel/artifact"
)

// blobOf reads the signed blob URL of r for method.
func (s *Service) blobOf(r *http.Request, method string) (blob, error) {
	q := r.URL.Query()
	size, err1 := strconv.ParseInt(q.Get("n"), 10, 64)
	exp, err2 := strconv.ParseInt(q.Get("e"), 10, 64)
	b := blob{method: method, key: r.PathValue("key"), size: size, sha256: q.Get("h"), exp: exp}
	if err1 != nil || err2 != nil {
		return b, errToken
	}
	return b, s.sign.checkBlob(b, q.Get("s"), s.cfg.Now())
}

// getBlob serves an object to a signed GET URL.
func (s *Service) getBlob(w http.ResponseWriter, r *http.Request) {
	b, err := s.blobOf(r, http.MethodGet)
	if err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
		return
	}
	s.serveObject(w, r, b.key, b.sha256)
}

// serveObject streams the object at key, whose SHA-256 must be sum. The
// store verifies while it reads: a corrupt object ends the response
// early, so a client that checks the length or digest notices.
func (s *Service) serveObject(w http.ResponseWriter, r *http.Request, key, sum string) {
	rc, info, err := s.cfg.Store.Get(r.Context(), key)
	if errors.Is(err, artifact.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such object"})
		return
	}
	if err != nil {
		s.log.Error("read object", "key", key, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		return
	}
	defer rc.Close()
	if info.SHA256 != sum {
		writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("%s: %v: stored sha256 %s, expected %s", key, artifact.ErrChecksum, info.SHA256, sum)})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.Header().Set("X-Runnel-Sha256", info.SHA256)
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Error("serve object", "key", key, "err", err)
		panic(http.ErrAbortHandler) // cut the response: it is not the object
	}
}

// putBlob stores the body of a signed PUT URL: exactly the signed size,
// and kept only when its SHA-256 is the signed one.
func (s *Service) putBlob(w http.ResponseWriter, r *http.Request) {
	b, err := s.blobOf(r, http.MethodPut)
	if err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
		return
	}
	if r.ContentLength >= 0 && r.ContentLength != b.size {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("the body must be %d bytes", b.size)})
		return
	}
	body := http.MaxBytesReader(w, r.Body, b.size+1)
	info, err := s.cfg.Store.Put(r.Context(), b.key, body, b.size)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "store: " + err.Error()})
		return
	}
	if info.SHA256 != b.sha256 {
		if err := s.cfg.Store.Delete(r.Context(), b.key); err != nil {
			s.log.Warn("delete refused upload", "key", b.key, "err", err)
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%v: got sha256 %s, expected %s", artifact.ErrChecksum, info.SHA256, b.sha256)})
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads a request body of at most max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		return nil, fail(http.StatusBadRequest, "body: %v", err)
	}
	return b, nil
}
