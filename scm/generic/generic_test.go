package generic

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

const sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"

func req(body, auth string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	r.Header.Set(DeliveryHeader, "d-1")
	return r
}

func TestParse(t *testing.T) {
	ts := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name, body string
		want       scm.Event
	}{
		{"branch", `{"repo":"team/app","ref":"refs/heads/main","before":"` + scm.ZeroSHA + `","commit":"` + sha + `","message":"fix: x","timestamp":"2024-05-01T10:00:00Z","author":"Ann"}`,
			scm.Event{Kind: scm.KindPush, Ref: "refs/heads/main", Branch: "main", Before: scm.ZeroSHA, Commit: sha, Message: "fix: x", Timestamp: ts, Author: "Ann"}},
		{"tag", `{"repo":"team/app","ref":"refs/tags/v1","commit":"` + sha + `"}`,
			scm.Event{Kind: scm.KindTag, Ref: "refs/tags/v1", Tag: "v1", Commit: sha}},
		{"manual with inputs", `{"repo":"team/app","ref":"refs/heads/main","commit":"` + sha + `","manual":true,"inputs":{"env":"staging"}}`,
			scm.Event{Kind: scm.KindManual, Ref: "refs/heads/main", Branch: "main", Commit: sha, Inputs: map[string]string{"env": "staging"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBody(req(tt.body, "Bearer s3cret"), []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Forge, tt.want.Repo, tt.want.Delivery = scm.ForgeGeneric, "team/app", "d-1"
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	ok := `{"repo":"team/app","ref":"refs/heads/main","commit":"` + sha + `"}`
	tests := []struct {
		name, body string
		want       error
	}{
		{"deletion", `{"repo":"team/app","ref":"refs/heads/main","commit":"` + scm.ZeroSHA + `"}`, scm.ErrIgnored},
		{"other ref", `{"repo":"team/app","ref":"refs/notes/x","commit":"` + sha + `"}`, scm.ErrIgnored},
		{"unknown field", `{"repo":"team/app","ref":"refs/heads/main","commit":"` + sha + `","x":1}`, scm.ErrBadRequest},
		{"short sha", `{"repo":"team/app","ref":"refs/heads/main","commit":"abc"}`, scm.ErrBadRequest},
		{"no repo", `{"ref":"refs/heads/main","commit":"` + sha + `"}`, scm.ErrBadRequest},
		{"trailing data", ok + `{}`, scm.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBody(req(tt.body, ""), []byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, %v; want error %v", got, err, tt.want)
			}
		})
	}
}

func TestParseBody(t *testing.T) {
	body := `{"repo":"team/app","ref":"refs/heads/main","commit":"` + sha + `"}`
	r := req(body, "Bearer tok")
	r.Header.Set(DeliveryHeader, "d-1")
	if Token(r) != "tok" {
		t.Errorf("Token: got %q, want tok", Token(r))
	}
	ev, err := ParseBody(r, []byte(body))
	if err != nil || ev.Commit != sha || ev.Repo != "team/app" || ev.Delivery != "d-1" || ev.Kind != scm.KindPush {
		t.Errorf("got %+v, %v; want the push event with delivery d-1", ev, err)
	}
	if _, err := ParseBody(r, []byte(`{"repo":"x","bogus":1}`)); !errors.Is(err, scm.ErrBadRequest) {
		t.Errorf("unknown field: got %v, want ErrBadRequest", err)
	}
	if Token(req(body, "Basic tok")) != "" {
		t.Errorf("Token of a non-bearer Authorization: want empty")
	}
}

// FuzzParseBody: the server decodes generic hook bodies after finding
// the repository by token; any body gives an event with a commit and a
// kind, or an error.
func FuzzParseBody(f *testing.F) {
	f.Add(`{"repo":"team/app","ref":"refs/heads/main","commit":"` + sha + `","inputs":{"a":"b"}}`)
	f.Add(`{"repo":"r","ref":"refs/tags/v1","commit":"` + sha + `","manual":true}`)
	f.Fuzz(func(t *testing.T, body string) {
		ev, err := ParseBody(req(body, ""), []byte(body))
		if err == nil && (ev.Commit == "" || ev.Kind == "" || ev.Repo == "") {
			t.Fatalf("got %+v without commit, kind or repo", ev)
		}
	})
}
