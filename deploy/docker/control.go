package docker

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Routes are a proxy's upstreams: Green receives Weight percent of the
// requests, Blue the rest. A nil upstream receives nothing. Release and
// Attempt say who sets them (deploy.Release.ID and .Attempt): a proxy
// refuses routes from an attempt of a release lower than one it has
// taken routes from (ErrFenced).
type Routes struct {
	Blue, Green *url.URL
	Weight      int
	Release     string
	Attempt     int
}

// Router is the traffic switch the Provider drives: a Proxy in the same
// process, or a Client of a `runnel proxy` process, which outlives the
// agent.
type Router interface {
	SetRoutes(ctx context.Context, r Routes) error
	GetRoutes(ctx context.Context) (Routes, error)
}

// SetRoutes implements Router; it refuses fenced routes (ErrFenced).
func (p *Proxy) SetRoutes(_ context.Context, r Routes) error {
	return p.update(r, nil)
}

// update replaces the routes unless the fencing rule (admit) refuses
// them. persist, when not nil, stores the routes and the fences first;
// its error leaves everything as it was.
func (p *Proxy) update(r Routes, persist func(Routes, []fence) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fences, ok := admit(p.fences, r.Release, r.Attempt)
	if !ok {
		return fmt.Errorf("%w (release %s attempt %d)", ErrFenced, r.Release, r.Attempt)
	}
	if persist != nil {
		if err := persist(r, fences); err != nil {
			return err
		}
	}
	p.fences = fences
	p.Set(r.Blue, r.Green, r.Weight)
	return nil
}

// GetRoutes implements Router.
func (p *Proxy) GetRoutes(context.Context) (Routes, error) {
	b, g, w := p.Routes()
	return Routes{Blue: b, Green: g, Weight: w}, nil
}

// routesJSON is the control API's body and the state file's content.
type routesJSON struct {
	Blue    string `json:"blue,omitempty"`
	Green   string `json:"green,omitempty"`
	Weight  int    `json:"weight"`
	Release string `json:"release,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
}

// stateJSON is the state file's content: the routes and the fences.
type stateJSON struct {
	routesJSON
	Fences []fence `json:"fences,omitempty"`
}

func (r Routes) toJSON() routesJSON {
	j := routesJSON{Weight: r.Weight, Release: r.Release, Attempt: r.Attempt}
	if r.Blue != nil {
		j.Blue = r.Blue.String()
	}
	if r.Green != nil {
		j.Green = r.Green.String()
	}
	return j
}

// parseUpstream accepts only http://host:port with nothing else: the
// control API must not be a way to make the proxy fetch arbitrary URLs
// with paths, credentials or queries.
func parseUpstream(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", s, err)
	}
	if u.Scheme != "http" || u.Host == "" || u.Port() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q: want http://host:port", s)
	}
	return &url.URL{Scheme: "http", Host: u.Host}, nil
}

func (j routesJSON) routes() (Routes, error) {
	if j.Weight < 0 || j.Weight > 100 {
		return Routes{}, fmt.Errorf("weight %d: want 0..100", j.Weight)
	}
	if j.Attempt < 0 {
		return Routes{}, fmt.Errorf("attempt %d: want 0 or more", j.Attempt)
	}
	b, err := parseUpstream(j.Blue)
	if err != nil {
		return Routes{}, err
	}
	g, err := parseUpstream(j.Green)
	if err != nil {
		return Routes{}, err
	}
	return Routes{Blue: b, Green: g, Weight: j.Weight, Release: j.Release, Attempt: j.Attempt}, nil
}

// maxControlBody bounds a control request.
const maxControlBody = 4 << 10

// Control is the HTTP control API of a Proxy, served by `runnel proxy`
// on its own listener: GET /routes returns the routes, PUT /routes
// replaces them (JSON {"blue", "green", "weight", "release", "attempt"};
// 409 Conflict when fenced). With Token set every request needs
// "Authorization: Bearer <Token>". With StateFile set, the routes and
// fences are written there (atomically) before a PUT is answered, so a
// restarted proxy serves the same routes and keeps fencing (LoadState).
type Control struct {
	Proxy     *Proxy
	Token     string
	StateFile string
}

func (c *Control) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(c.Token)) != 1 {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
	}
	if r.URL.Path != "/routes" {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		rt, _ := c.Proxy.GetRoutes(r.Context())
		writeJSON(w, rt.toJSON())
	case http.MethodPut:
		var j routesJSON
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			http.Error(w, "bad routes: "+err.Error(), http.StatusBadRequest)
			return
		}
		rt, err := j.routes()
		if err != nil {
			http.Error(w, "bad routes: "+err.Error(), http.StatusBadRequest)
			return
		}
		var persist func(Routes, []fence) error
		if c.StateFile != "" {
			persist = func(rt Routes, fences []fence) error {
				return writeState(c.StateFile, stateJSON{rt.toJSON(), fences})
			}
		}
		switch err := c.Proxy.update(rt, persist); {
		case errors.Is(err, ErrFenced):
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			http.Error(w, "save routes: "+err.Error(), http.StatusInternalServerError)
		default:
			writeJSON(w, rt.toJSON())
		}
	default:
		w.Header().Set("Allow", "GET, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeState(path string, j stateJSON) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".routes-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// LoadState sets p's routes and fences from a state file a Control
// wrote; a missing file leaves p without routes.
func LoadState(p *Proxy, path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("proxy state: %w", err)
	}
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("proxy state %s: %w", path, err)
	}
	rt, err := j.routes()
	if err != nil {
		return fmt.Errorf("proxy state %s: %w", path, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fences = j.Fences[max(0, len(j.Fences)-maxFences):]
	p.Set(rt.Blue, rt.Green, rt.Weight)
	return nil
}

// Client drives a `runnel proxy` through its control API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

var _ Router = (*Client)(nil)

// NewClient returns a Client of the control API at base
// (http://host:port); token may be empty.
func NewClient(base, token string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("proxy control address %q: want http://host:port", base)
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Timeout: 10 * time.Second}}, nil
}

// SetRoutes implements Router.
func (c *Client) SetRoutes(ctx context.Context, r Routes) error {
	b, err := json.Marshal(r.toJSON())
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPut, b)
	return err
}

// GetRoutes implements Router.
func (c *Client) GetRoutes(ctx context.Context) (Routes, error) {
	b, err := c.do(ctx, http.MethodGet, nil)
	if err != nil {
		return Routes{}, err
	}
	var j routesJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Routes{}, fmt.Errorf("proxy routes: %w", err)
	}
	return j.routes()
}

func (c *Client) do(ctx context.Context, method string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/routes", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("proxy control %s %s: %w", method, c.base, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxControlBody))
	if err != nil {
		return nil, fmt.Errorf("proxy control %s %s: %w", method, c.base, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		return nil, fmt.Errorf("proxy control %s %s: %w: %s", method, c.base, ErrFenced, strings.TrimSpace(string(out)))
	default:
		return nil, fmt.Errorf("proxy control %s %s: %s: %s", method, c.base, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}
