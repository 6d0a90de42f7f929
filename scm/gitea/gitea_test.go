package gitea

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

var secret = []byte("gitea-secret")

func sign(body, key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func fixture(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit returns the fixture with top-level fields replaced.
func edit(t testing.TB, changes map[string]any) []byte {
	var m map[string]any
	if err := json.Unmarshal(fixture(t), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func request(body []byte, headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/gitea", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Gitea-Event", "push")
	r.Header.Set("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473")
	r.Header.Set("X-Gitea-Signature", sign(body, secret))
	for k, v := range headers {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	return r
}

func TestParse(t *testing.T) {
	after := "bffeb74224043ba2feb48d137756c8a9331c449a"
	before := "28e1879d029cb852e4844d9c718537df08844e03"
	ts := time.Date(2017, 3, 13, 5, 52, 11, 0, time.UTC)
	base := scm.Event{Forge: scm.ForgeGitea, Delivery: "f6266f16-1bf3-46a5-9ea4-602e06ead473", Repo: "gitea/webhooks",
		CloneURL: "http://localhost:3000/gitea/webhooks.git", Commit: after, Message: "Webhooks Yay!", Author: "gitea"}
	with := func(f func(e *scm.Event)) scm.Event { e := base; f(&e); return e }
	tests := []struct {
		name    string
		body    []byte
		headers map[string]string
		want    scm.Event
	}{
		{"branch push", fixture(t), nil, with(func(e *scm.Event) {
			e.Kind, e.Ref, e.Branch, e.Before, e.Changed = scm.KindPush, "refs/heads/develop", "develop", before, []string{"docs/new.md", "README.md"}
		})},
		{"forgejo headers", fixture(t), map[string]string{"X-Gitea-Event": "", "X-Gitea-Delivery": "", "X-Gitea-Signature": "",
			"X-Forgejo-Event": "push", "X-Forgejo-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473", "X-Forgejo-Signature": sign(fixture(t), secret)},
			with(func(e *scm.Event) {
				e.Kind, e.Ref, e.Branch, e.Before, e.Changed = scm.KindPush, "refs/heads/develop", "develop", before, []string{"docs/new.md", "README.md"}
			})},
		{"new branch", edit(t, map[string]any{"before": scm.ZeroSHA}), nil, with(func(e *scm.Event) {
			e.Kind, e.Ref, e.Branch, e.Before = scm.KindPush, "refs/heads/develop", "develop", scm.ZeroSHA
		})},
		{"tag push", edit(t, map[string]any{"ref": "refs/tags/v2.0", "before": scm.ZeroSHA}), nil, with(func(e *scm.Event) {
			e.Kind, e.Ref, e.Tag, e.Before = scm.KindTag, "refs/tags/v2.0", "v2.0", scm.ZeroSHA
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(tt.body, tt.headers)
			got, err := Parse(r, secret)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Timestamp.Equal(ts) {
				t.Errorf("got timestamp %v, want %v", got.Timestamp, ts)
			}
			got.Timestamp = time.Time{}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseRejectsAndIgnores(t *testing.T) {
	body := fixture(t)
	altered := bytes.Replace(body, []byte("Yay"), []byte("Nay"), 1)
	deleted := edit(t, map[string]any{"after": scm.ZeroSHA, "head_commit": nil, "commits": []any{}})
	tests := []struct {
		name    string
		body    []byte
		headers map[string]string
		secret  []byte
		want    error
	}{
		{"bad signature", body, map[string]string{"X-Gitea-Signature": sign(body, []byte("x"))}, secret, scm.ErrSignature},
		{"missing signature", body, map[string]string{"X-Gitea-Signature": ""}, secret, scm.ErrSignature},
		{"body altered after signing", altered, map[string]string{"X-Gitea-Signature": sign(body, secret)}, secret, scm.ErrSignature},
		{"sha256= prefix form", body, map[string]string{"X-Gitea-Signature": "sha256=" + sign(body, secret)}, secret, scm.ErrSignature},
		{"no secret configured", body, nil, nil, scm.ErrSignature},
		{"unknown event", body, map[string]string{"X-Gitea-Event": "issues"}, secret, scm.ErrIgnored},
		{"branch deletion", deleted, nil, secret, scm.ErrIgnored},
		{"missing delivery", body, map[string]string{"X-Gitea-Delivery": ""}, secret, scm.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(request(tt.body, tt.headers), tt.secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, %v; want error %v", got, err, tt.want)
			}
		})
	}
}

func TestStatusReporter(t *testing.T) {
	type req struct {
		Method, Path, Auth string
		Body               map[string]string
	}
	var got []req
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]string
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("body %q: %v", b, err)
		}
		got = append(got, req{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), body})
		if r.URL.Path == "/api/v1/repos/gone/repo/statuses/"+scm.ZeroSHA[:39]+"1" {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":1}`)
	}))
	defer srv.Close()
	rep, err := NewStatusReporter(srv.URL+"/", "t0k", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	sha := "bffeb74224043ba2feb48d137756c8a9331c449a"
	err = rep.Report(context.Background(), scm.Status{Repo: "gitea/webhooks", Commit: sha, State: scm.StateFailure,
		Context: "runnel/test", Description: "2 steps failed", TargetURL: "https://ci/runs/3"})
	if err != nil {
		t.Fatal(err)
	}
	want := []req{{"POST", "/api/v1/repos/gitea/webhooks/statuses/" + sha, "token t0k",
		map[string]string{"state": "failure", "context": "runnel/test", "description": "2 steps failed", "target_url": "https://ci/runs/3"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// Gitea has no running state: running is reported as pending.
	if err := rep.Report(context.Background(), scm.Status{Repo: "gitea/webhooks", Commit: sha, State: scm.StateRunning, Context: "c"}); err != nil {
		t.Fatal(err)
	}
	if s := got[len(got)-1].Body["state"]; s != "pending" {
		t.Errorf("running sent as state %q, want pending", s)
	}
	if err := rep.Report(context.Background(), scm.Status{Repo: "gone/repo", Commit: scm.ZeroSHA[:39] + "1", State: scm.StatePending}); err == nil {
		t.Error("got nil error for a 404, want one")
	}
}

func FuzzGiteaHook(f *testing.F) {
	f.Add("push", fixture(f))
	f.Add("push", []byte(`{"ref":"refs/tags/x","after":"bffeb74224043ba2feb48d137756c8a9331c449a","repository":{"full_name":"a/b"},"head_commit":{"timestamp":"x"}}`))
	f.Add("pull_request", prFixture(f))
	f.Add("pull_request", []byte(`{"action":"synchronized","pull_request":{"head":{"sha":"bffeb74224043ba2feb48d137756c8a9331c449a","repo":null},"base":{"ref":"main"}},"repository":{"full_name":"a/b"}}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		// Validly signed, so every body reaches the decoders.
		ev, err := Parse(request(body, map[string]string{"X-Gitea-Event": event}), secret)
		if err != nil {
			return
		}
		if ev.Commit == "" || ev.Repo == "" || ev.Kind == "" {
			t.Fatalf("got %+v without commit, repo or kind", ev)
		}
		if (ev.Kind == scm.KindPullRequest) != (ev.PullRequest != nil) {
			t.Fatalf("got kind %s with pull request %+v", ev.Kind, ev.PullRequest)
		}
	})
}
