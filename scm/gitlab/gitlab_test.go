package gitlab

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

var secret = []byte("gl-secret")

func fixture(t testing.TB, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func request(event string, body []byte, headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/gitlab", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Gitlab-Event", event)
	r.Header.Set("X-Gitlab-Token", string(secret))
	r.Header.Set("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e")
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
	tests := []struct {
		name, event, file string
		headers           map[string]string
		want              scm.Event
	}{
		{"push", "Push Hook", "push.json", nil, scm.Event{
			Forge: scm.ForgeGitLab, Delivery: "13792a34-cac6-4fda-95a8-c58e00a3954e", Kind: scm.KindPush,
			Repo: "mike/diaspora", CloneURL: "http://example.com/mike/diaspora.git", Ref: "refs/heads/master", Branch: "master",
			Before: "95790bf891e76fee5e1747ab589903a6a1f80f22", Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
			Message: "fixed readme", Author: "jsmith", Timestamp: time.Date(2012, 1, 3, 21, 36, 29, 0, time.UTC),
			Changed: []string{"CHANGELOG", "app/controller/application.rb"},
		}},
		{"tag push with idempotency key", "Tag Push Hook", "tag_push.json",
			map[string]string{"X-Gitlab-Event-UUID": "", "Idempotency-Key": "k-1"}, scm.Event{
				Forge: scm.ForgeGitLab, Delivery: "k-1", Kind: scm.KindTag,
				Repo: "jsmith/example", CloneURL: "http://example.com/jsmith/example.git", Ref: "refs/tags/v1.0.0", Tag: "v1.0.0",
				Before: scm.ZeroSHA, Commit: "5937ac0a7beb003549fc5fd26fc247adbce4a52e", Author: "jsmith",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(request(tt.event, fixture(t, tt.file), tt.headers), secret)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Timestamp.Equal(tt.want.Timestamp) {
				t.Errorf("got timestamp %v, want %v", got.Timestamp, tt.want.Timestamp)
			}
			got.Timestamp = tt.want.Timestamp
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseRejectsAndIgnores(t *testing.T) {
	push := fixture(t, "push.json")
	deleted := bytes.Replace(push, []byte(`"after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"`), []byte(`"after": "`+scm.ZeroSHA+`"`), 1)
	deleted = bytes.Replace(deleted, []byte(`"checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"`), []byte(`"checkout_sha": null`), 1)
	if bytes.Equal(deleted, push) {
		t.Fatal("could not derive the deletion payload")
	}
	tests := []struct {
		name, event string
		body        []byte
		headers     map[string]string
		secret      []byte
		want        error
	}{
		{"wrong token", "Push Hook", push, map[string]string{"X-Gitlab-Token": "nope"}, secret, scm.ErrSignature},
		{"missing token", "Push Hook", push, map[string]string{"X-Gitlab-Token": ""}, secret, scm.ErrSignature},
		{"token prefix", "Push Hook", push, map[string]string{"X-Gitlab-Token": "gl-secre"}, secret, scm.ErrSignature},
		{"no secret configured", "Push Hook", push, nil, nil, scm.ErrSignature},
		{"unknown event", "Issue Hook", push, nil, secret, scm.ErrIgnored},
		{"branch deletion", "Push Hook", deleted, nil, secret, scm.ErrIgnored},
		{"kind mismatch", "Tag Push Hook", push, nil, secret, scm.ErrBadRequest},
		{"bad json", "Push Hook", []byte("{"), nil, secret, scm.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(request(tt.event, tt.body, tt.headers), tt.secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, %v; want error %v", got, err, tt.want)
			}
		})
	}
}

func FuzzGitLabHook(f *testing.F) {
	f.Add("Push Hook", fixture(f, "push.json"))
	f.Add("Tag Push Hook", fixture(f, "tag_push.json"))
	f.Add("Merge Request Hook", fixture(f, "merge_request.json"))
	f.Add("Merge Request Hook", []byte(`{"object_kind":"merge_request","project":{"path_with_namespace":"a/b"},"object_attributes":{"iid":1,"action":"update","oldrev":"x","target_branch":"m","source":null,"last_commit":{"id":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}}}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		ev, err := Parse(request(event, body, nil), secret)
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
