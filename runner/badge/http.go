package badge

import (
	"net/http"
	"strings"
)

// Serve renders the badge for label and status and writes it to w with
// Write.
func Serve(w http.ResponseWriter, r *http.Request, label, status string) {
	Write(w, r, Render(label, status))
}

// Write sends an already rendered badge. It sets the SVG content type,
// "Cache-Control: no-cache, max-age=0" unless w already has a
// Cache-Control header (image proxies such as GitHub's camo
// cache for a long time otherwise) and an ETag, and answers 304 Not
// Modified when the request's If-None-Match matches. HEAD requests get the
// headers only.
func Write(w http.ResponseWriter, r *http.Request, svg []byte) {
	tag := ETag(svg)
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml; charset=utf-8")
	// A caller's Cache-Control stays (a private repo's badge sends
	// "private, no-cache" so that shared caches do not keep it).
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache, max-age=0")
	}
	h.Set("ETag", tag)
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && noneMatch(r.Header.Values("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	_, _ = w.Write(svg) // a failed write means the client went away
}

// noneMatch reports whether any entity tag in the If-None-Match header
// values matches tag, using weak comparison as RFC 9110 §13.1.2 asks.
func noneMatch(values []string, tag string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "*" {
				return true
			}
			t = strings.TrimPrefix(t, "W/")
			if t == tag {
				return true
			}
		}
	}
	return false
}
