package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/scmtest"
)

var secret = []byte("It's a Secret to Everybody")

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign256(body, key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func sign1(body, key []byte) string {
	m := hmac.New(sha1.New, key)
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

func request(event string, body []byte, headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	r.Header.Set("X-Hub-Signature-256", sign256(body, secret))
	for k, v := range headers {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	return r
}

func TestParseEvents(t *testing.T) {
	tests := []struct {
		file, event string
		want        scm.Event
	}{
		{"push.with-new-branch.json", "push", scm.Event{
			Kind: scm.KindPush, Ref: "refs/heads/master", Branch: "master",
			Before: scm.ZeroSHA, Commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Repo: "Codertocat/Hello-World", CloneURL: "https://github.com/Codertocat/Hello-World.git",
			Message: "Initial commit", Author: "Codertocat",
		}},
		{"push.update.json", "push", scm.Event{
			Kind: scm.KindPush, Ref: "refs/heads/master", Branch: "master",
			Before: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", Commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Repo: "Codertocat/Hello-World", CloneURL: "https://github.com/Codertocat/Hello-World.git",
			Message: "Initial commit", Author: "Codertocat", Changed: []string{"README.md"},
		}},
		{"push.tag.json", "push", scm.Event{
			Kind: scm.KindTag, Ref: "refs/tags/v1.0.0", Tag: "v1.0.0",
			Before: scm.ZeroSHA, Commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Repo: "Codertocat/Hello-World", CloneURL: "https://github.com/Codertocat/Hello-World.git",
			Message: "Initial commit", Author: "Codertocat",
		}},
		{"pull_request.opened.json", "pull_request", scm.Event{
			Kind: scm.KindPullRequest, Ref: "refs/pull/2/head", Branch: "master",
			Commit: "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
			Repo:   "Codertocat/Hello-World", CloneURL: "https://github.com/Codertocat/Hello-World.git",
			Message: "Update the README with new information.", Author: "Codertocat",
			PullRequest: &scm.PullRequest{Number: 2, Title: "Update the README with new information.",
				HeadRef: "changes", HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
				BaseRef: "master", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
				HeadCloneURL: "https://github.com/Codertocat/Hello-World.git", HeadRepo: "Codertocat/Hello-World", SameRepo: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Parse(request(tt.event, fixture(t, tt.file), nil), secret)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Timestamp.IsZero() {
				t.Errorf("got zero Timestamp, want the commit or PR time")
			}
			got.Timestamp = tt.want.Timestamp
			tt.want.Forge = scm.ForgeGitHub
			tt.want.Delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseSynchronize(t *testing.T) {
	got, err := Parse(request("pull_request", fixture(t, "pull_request.synchronize.json"), nil), secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != scm.KindPullRequest || got.PullRequest == nil || got.Commit != got.PullRequest.HeadSHA || got.Branch != got.PullRequest.BaseRef {
		t.Errorf("got %+v, want a pull_request event building the head SHA on the base branch", got)
	}
}

func TestParseFork(t *testing.T) {
	body := scmtest.Edit(t, fixture(t, "pull_request.opened.json"), func(m map[string]any) {
		repo := scmtest.Obj(m, "pull_request", "head", "repo")
		repo["id"], repo["full_name"], repo["clone_url"] = 9999, "mallory/Hello-World", "https://github.com/mallory/Hello-World.git"
	})
	got, err := Parse(request("pull_request", body, nil), secret)
	if err != nil {
		t.Fatal(err)
	}
	pr := got.PullRequest
	if pr.SameRepo || pr.HeadRepo != "mallory/Hello-World" || pr.HeadCloneURL != "https://github.com/mallory/Hello-World.git" {
		t.Errorf("got %+v, want the fork mallory/Hello-World and SameRepo false", pr)
	}
	if got.Repo != "Codertocat/Hello-World" {
		t.Errorf("got repo %q, want the base repository", got.Repo)
	}
}

func TestParseRejectsAndIgnores(t *testing.T) {
	push := fixture(t, "push.with-new-branch.json")
	pr := fixture(t, "pull_request.opened.json")
	closed := bytes.Replace(pr, []byte(`"action": "opened"`), []byte(`"action": "closed"`), 1)
	if bytes.Equal(closed, pr) {
		t.Fatal("fixture has no opened action to replace")
	}
	altered := bytes.Replace(push, []byte("Initial commit"), []byte("Initial commiT"), 1)
	tests := []struct {
		name    string
		event   string
		body    []byte
		headers map[string]string
		secret  []byte
		want    error
	}{
		{"bad signature", "push", push, map[string]string{"X-Hub-Signature-256": sign256(push, []byte("wrong"))}, secret, scm.ErrSignature},
		{"missing signature", "push", push, map[string]string{"X-Hub-Signature-256": ""}, secret, scm.ErrSignature},
		{"body altered after signing", "push", altered, map[string]string{"X-Hub-Signature-256": sign256(push, secret)}, secret, scm.ErrSignature},
		{"sha1 only", "push", push, map[string]string{"X-Hub-Signature-256": "", "X-Hub-Signature": sign1(push, secret)}, secret, scm.ErrSignature},
		{"sha1 in sha256 header", "push", push, map[string]string{"X-Hub-Signature-256": sign1(push, secret)}, secret, scm.ErrSignature},
		{"not hex", "push", push, map[string]string{"X-Hub-Signature-256": "sha256=zz"}, secret, scm.ErrSignature},
		{"no secret configured", "push", push, nil, nil, scm.ErrSignature},
		{"ping", "ping", fixture(t, "ping.json"), nil, secret, scm.ErrIgnored},
		{"unknown event", "issues", push, nil, secret, scm.ErrIgnored},
		{"unknown action", "pull_request", closed, nil, secret, scm.ErrIgnored},
		{"branch deletion", "push", fixture(t, "push.deleted.json"), nil, secret, scm.ErrIgnored},
		{"missing delivery", "push", push, map[string]string{"X-GitHub-Delivery": ""}, secret, scm.ErrBadRequest},
		{"bad json", "push", []byte(`{"ref":`), nil, secret, scm.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(tt.event, tt.body, tt.headers)
			if tt.name == "bad json" {
				r.Header.Set("X-Hub-Signature-256", sign256(tt.body, secret))
			}
			got, err := Parse(r, tt.secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, %v; want error %v", got, err, tt.want)
			}
		})
	}
}

func TestParseFormEncoded(t *testing.T) {
	push := fixture(t, "push.with-new-branch.json")
	body := []byte("payload=" + url.QueryEscape(string(push)))
	r := request("push", body, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	got, err := Parse(r, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != "6113728f27ae82c7b1a177c8d03f9e96e0adf246" {
		t.Errorf("got commit %q, want 6113728f…", got.Commit)
	}
}

func TestParseTooLarge(t *testing.T) {
	body := bytes.Repeat([]byte(" "), scm.MaxBodySize+1)
	r := request("push", body, nil)
	r.ContentLength = -1 // as with chunked encoding: only the reader can tell
	_, err := Parse(r, secret)
	if !errors.Is(err, scm.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}
