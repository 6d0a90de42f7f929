package ui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/runner/access"
	"github.com/runnel-ci/runnel/runner/store"
)

// cookieName is the session cookie. Its value is a random session id;
// the server keeps the session (user, token id, CSRF token) in memory.
const cookieName = "runnel_session"

// maxSessions bounds memory; the oldest session is dropped beyond it.
const maxSessions = 10000

// session is one login.
type session struct {
	user    string
	tokenID int64
	role    access.Role // the token's role (a token's role never changes)
	csrf    string
	expires time.Time
}

// sessions maps the SHA-256 of a session id to its session. Keying by the
// hash keeps the map's lookup timing independent of the secret id.
type sessions struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[32]byte]*session
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, m: map[[32]byte]*session{}}
}

func randomString() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// create starts a session and returns its id.
func (s *sessions) create(user string, tokenID int64, role access.Role, now time.Time) (string, *session, error) {
	id, err := randomString()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomString()
	if err != nil {
		return "", nil, err
	}
	sess := &session{user: user, tokenID: tokenID, role: role, csrf: csrf, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		var oldest [32]byte
		var first time.Time
		for k, v := range s.m {
			if v.expires.Before(now) {
				delete(s.m, k)
				continue
			}
			if first.IsZero() || v.expires.Before(first) {
				oldest, first = k, v.expires
			}
		}
		if len(s.m) >= maxSessions {
			delete(s.m, oldest)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = sess
	return id, sess, nil
}

func (s *sessions) get(id string, now time.Time) *session {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[k]
	if !ok {
		return nil
	}
	if now.After(sess.expires) {
		delete(s.m, k)
		return nil
	}
	return sess
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

type sessionKey struct{}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// current returns the request's valid session and its cookie value, or
// nil. A session whose API token has been deleted since login ends with
// it.
func (h *Handler) current(r *http.Request) (*session, string) {
	sess, id, _ := h.lookup(r)
	return sess, id
}

// lookup is current that also returns the session's API token.
func (h *Handler) lookup(r *http.Request) (*session, string, *store.Token) {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil, "", nil
	}
	sess := h.sessions.get(c.Value, time.Now())
	if sess == nil {
		return nil, "", nil
	}
	toks, err := h.cfg.Store.Tokens(r.Context())
	if err != nil {
		h.log.Error("ui: list tokens", "err", err)
		return nil, "", nil
	}
	for _, t := range toks {
		if t.ID == sess.tokenID {
			return sess, c.Value, t
		}
	}
	h.sessions.remove(c.Value)
	return nil, "", nil
}

// SessionToken returns the API token behind the UI session r carries,
// or nil: httpapi.Config.Session, so pages read the API (the log
// endpoint) with their session cookie.
func (h *Handler) SessionToken(r *http.Request) *store.Token {
	_, _, t := h.lookup(r)
	return t
}

// view requires a session with permission p for a page; without a
// session it redirects to the login form, which returns here afterwards.
func (h *Handler) view(p access.Permission, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, _ := h.current(r)
		if sess == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess))
		if !access.Allows(sess.role, p) {
			h.errorPage(w, r, http.StatusForbidden, "your token's role ("+string(sess.role)+") may not do this; it needs "+p.String())
			return
		}
		next(w, r)
	})
}

// mutate requires a session with permission p, a matching CSRF token in
// the form field "csrf" and, when the browser sends one, an Origin of
// this host.
func (h *Handler) mutate(p access.Permission, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, _ := h.current(r)
		if sess == nil {
			h.errorPage(w, r, http.StatusForbidden, "login required")
			return
		}
		if !sameOrigin(r) {
			h.errorPage(w, r, http.StatusForbidden, "cross-origin request refused")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		got := r.PostFormValue("csrf")
		if got == "" || !hmac.Equal([]byte(got), []byte(sess.csrf)) {
			h.errorPage(w, r, http.StatusForbidden, "invalid or missing CSRF token; reload the page and try again")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess))
		if !access.Allows(sess.role, p) {
			h.errorPage(w, r, http.StatusForbidden, "your token's role ("+string(sess.role)+") may not do this; it needs "+p.String())
			return
		}
		next(w, r)
	})
}

// sameOrigin reports whether the request's Origin header, if any, names
// this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// safeNext keeps a post-login redirect on this site: a path, not "//host"
// or "/\host", which browsers treat as another origin.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if sess, _ := h.current(r); sess != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, http.StatusOK, "login", "Log in", map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !sameOrigin(r) {
		h.errorPage(w, r, http.StatusForbidden, "cross-origin request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	fail := func(code int, msg string) {
		h.render(w, r, code, "login", "Log in", map[string]any{"Next": next, "Error": msg})
	}
	if token == "" {
		fail(http.StatusUnauthorized, "Enter an API token.")
		return
	}
	// CheckToken looks the token up by its SHA-256 and compares the hash
	// in constant time.
	t, err := h.cfg.Store.CheckToken(r.Context(), token)
	if errors.Is(err, store.ErrNotFound) {
		h.refusals.Log("bad_token", slog.LevelInfo, "ui login refused", "remote", r.RemoteAddr)
		fail(http.StatusUnauthorized, "That token is not valid.")
		return
	}
	if err != nil {
		h.refusals.Log("store_error", slog.LevelError, "ui login: check token", "err", err)
		fail(http.StatusInternalServerError, "Could not check the token; try again.")
		return
	}
	if c, err := r.Cookie(cookieName); err == nil {
		h.sessions.remove(c.Value) // no session fixation: always a new id
	}
	id, _, err := h.sessions.create(t.Name, t.ID, t.Role, time.Now())
	if err != nil {
		h.log.Error("ui login: new session", "err", err)
		fail(http.StatusInternalServerError, "Could not start a session; try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: h.cfg.SecureCookie || r.TLS != nil, MaxAge: int(h.cfg.SessionTTL / time.Second)})
	h.log.Info("ui login", "user", t.Name)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		h.sessions.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: h.cfg.SecureCookie || r.TLS != nil, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
