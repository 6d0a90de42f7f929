package main

import (
	"bufio"
	"bytes"
	"context"
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

	"github.com/spf13/cobra"
)

// clientFlags are the flags of every command that talks to a server's
// API. Each falls back to RUNNEL_SERVER / RUNNEL_TOKEN, then to the
// config file (RUNNEL_CONFIG, default ~/.config/runnel/config).
type clientFlags struct {
	server, token, config string
}

// addClientFlags adds --server, --token and --config to cmd.
func (a *app) addClientFlags(cmd *cobra.Command, f *clientFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", a.env["RUNNEL_SERVER"], "server URL ($RUNNEL_SERVER, config file, default http://localhost:8080)")
	fl.StringVar(&f.token, "token", a.env["RUNNEL_TOKEN"], "API token ($RUNNEL_TOKEN or config file)")
	fl.StringVar(&f.config, "config", a.env["RUNNEL_CONFIG"], "config file with server = URL and token = TOKEN lines ($RUNNEL_CONFIG, default ~/.config/runnel/config)")
}

// apiClient calls a server's JSON API.
type apiClient struct {
	server string // no trailing slash
	token  string
	http   *http.Client
}

// client resolves server and token (flag, environment, config file,
// default) and returns a client; a missing token is a usage error.
func (a *app) client(f clientFlags) (*apiClient, error) {
	conf, err := a.readClientConfig(f.config)
	if err != nil {
		return nil, err
	}
	server := firstOf(f.server, conf["server"], "http://localhost:8080")
	token := firstOf(f.token, conf["token"])
	if token == "" {
		return nil, usageError(errors.New("no API token: pass --token, set RUNNEL_TOKEN or put token = ... in the config file"))
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError(fmt.Errorf("server %q is not an http(s) URL", server))
	}
	return &apiClient{server: strings.TrimRight(server, "/"), token: token, http: &http.Client{}}, nil
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// readClientConfig reads "key = value" lines (# comments) from the config
// file. A missing default file is no error; a named one must exist. A
// file holding a token must not be readable by group or others.
func (a *app) readClientConfig(path string) (map[string]string, error) {
	named := path != ""
	if !named {
		dir := a.env["XDG_CONFIG_HOME"]
		if dir == "" {
			home := a.env["HOME"]
			if home == "" {
				return nil, nil
			}
			dir = filepath.Join(home, ".config")
		}
		path = filepath.Join(dir, "runnel", "config")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !named {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	conf, err := parseClientConfig(path, string(b))
	if err != nil {
		return nil, err
	}
	if conf["token"] != "" {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("config %s holds a token but is readable by others (mode %v): chmod 600 %s", path, fi.Mode().Perm(), path)
		}
	}
	return conf, nil
}

// parseClientConfig parses the config file's text.
func parseClientConfig(path, text string) (map[string]string, error) {
	conf := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || (k != "server" && k != "token") {
			return nil, fmt.Errorf("%s:%d: want server = URL or token = TOKEN", path, n)
		}
		conf[k] = v
	}
	return conf, sc.Err()
}

// apiError is a non-2xx answer of the API.
type apiError struct {
	method, path string
	code         int
	status, msg  string
	body         []byte
}

func (e *apiError) Error() string {
	if e.msg != "" {
		return fmt.Sprintf("%s %s: %s: %s", e.method, e.path, e.status, e.msg)
	}
	return fmt.Sprintf("%s %s: %s", e.method, e.path, e.status)
}

// request sends a request with the token and returns the response when
// it is 2xx; otherwise an *apiError.
func (c *apiClient) request(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &apiError{method: method, path: path, code: resp.StatusCode, status: resp.Status, body: b}
	var msg struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &msg) == nil {
		e.msg = msg.Error
	}
	return nil, e
}

// call sends a JSON request and decodes the JSON answer into out (when
// not nil), within 30 s.
func (c *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.request(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}

// repoPath is the API path of a repository (names keep their slashes).
func repoPath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/api/v1/repos/" + strings.Join(parts, "/")
}
