package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBadgeHeaders checks the caching headers of public and private
// badges, the ETag round trip, and that a repo or branch without runs
// answers 200 "unknown" rather than an error.
func TestBadgeHeaders(t *testing.T) {
	e := newEnv(t)
	if code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"pub","forge":"git","clone_url":%q}`, e.bare)), e.auth()); code != http.StatusCreated {
		t.Fatalf("create repo pub: %d %s", code, b)
	}
	code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"priv","forge":"git","clone_url":%q,"private":true}`, e.bare)), e.auth())
	if code != http.StatusCreated {
		t.Fatalf("create repo priv: %d %s", code, b)
	}
	var rv RepoView
	if err := json.Unmarshal([]byte(b), &rv); err != nil || rv.BadgeToken == "" {
		t.Fatalf("repo view %s: want a badge token (%v)", b, err)
	}

	tests := []struct {
		path        string
		code        int
		cache       string // Cache-Control, when code is 200
		wantUnknown bool
	}{
		{"/badges/pub/status.svg", 200, "no-cache, max-age=0", true},
		{"/badges/pub/status.svg?branch=nope&stage=x", 200, "no-cache, max-age=0", true},
		{"/badges/priv/status.svg", 404, "", false},
		{"/badges/priv/status.svg?token=" + rv.BadgeToken, 200, "private, no-cache", true},
		{"/badges/priv/status.svg?token=" + rv.BadgeToken + "x", 404, "", false},
		{"/badges/nope/status.svg", 404, "", false},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", e.srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s = %d, want %d", tt.path, resp.StatusCode, tt.code)
			continue
		}
		if tt.code != 200 {
			continue
		}
		if got := resp.Header.Get("Cache-Control"); got != tt.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", tt.path, got, tt.cache)
		}
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "image/svg+xml") {
			t.Errorf("GET %s: Content-Type %q, want image/svg+xml", tt.path, got)
		}
		if tt.wantUnknown && !strings.Contains(string(body), ">unknown</text>") {
			t.Errorf("GET %s: body %.200q, want an unknown badge", tt.path, body)
		}
		etag := resp.Header.Get("ETag")
		req, _ = http.NewRequest("GET", e.srv.URL+tt.path, nil)
		req.Header.Set("If-None-Match", etag)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if etag == "" || resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q = %d, want 304", tt.path, etag, resp.StatusCode)
		}
	}
}
