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
			for _, secret := range []string{"s3cret", HashToken("s3cret")} {
				got, err := Parse(req(tt.body, "Bearer s3cret"), []byte(secret))
				if err != nil {
					t.Fatalf("secret %q: %v", secret, err)
				}
				tt.want.Forge, tt.want.Repo, tt.want.Delivery = scm.ForgeGeneric, "team/app", "d-1"
				if !reflect.DeepEqual(*got, tt.want) {
					t.Errorf("got  %+v\nwant %+v", *got, tt.want)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	ok := `{"repo":"team/app","ref":"refs/heads/main","commit":"` + sha + `"}`
	tests := []struct {
		name, body, auth, secret string
		want                     error
	}{
		{"wrong token", ok, "Bearer nope", "s3cret", scm.ErrSignature},
		{"wrong token vs hash", ok, "Bearer nope", HashToken("s3cret"), scm.ErrSignature},
		{"missing token", ok, "", "s3cret", scm.ErrSignature},
		{"basic auth", ok, "Basic czNjcmV0", "s3cret", scm.ErrSignature},
		{"no secret configured", ok, "Bearer ", "", scm.ErrSignature},
		{"hash given as token", ok, "Bearer " + HashToken("s3cret"), HashToken("s3cret"), scm.ErrSignature},
		{"deletion", `{"repo":"team/app","ref":"refs/heads/main","commit":"` + scm.ZeroSHA + `"}`, "Bearer s3cret", "s3cret", scm.ErrIgnored},
		{"other ref", `{"repo":"team/app","ref":"refs/notes/x","commit":"` + sha + `"}`, "Bearer s3cret", "s3cret", scm.ErrIgnored},
		{"unknown field", `{"repo":"team/app","ref":"refs/heads/main","commit":"` + sha + `","x":1}`, "Bearer s3cret", "s3cret", scm.ErrBadRequest},
		{"short sha", `{"repo":"team/app","ref":"refs/heads/main","commit":"abc"}`, "Bearer s3cret", "s3cret", scm.ErrBadRequest},
		{"no repo", `{"ref":"refs/heads/main","commit":"` + sha + `"}`, "Bearer s3cret", "s3cret", scm.ErrBadRequest},
		{"trailing data", ok + `{}`, "Bearer s3cret", "s3cret", scm.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(req(tt.body, tt.auth), []byte(tt.secret))
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

func FuzzGenericHook(f *testing.F) {
	f.Add(`{"repo":"team/app","ref":"refs/heads/main","commit":"`+sha+`","inputs":{"a":"b"}}`, "Bearer s3cret")
	f.Add(`{"repo":"r","ref":"refs/tags/v1","commit":"`+sha+`","timestamp":"2024-05-01T10:00:00Z"}`, "bearer s3cret")
	f.Add(`{"repo":"r","changed":["a",null]}`, "Bearer x")
	f.Fuzz(func(t *testing.T, body, auth string) {
		ev, err := Parse(req(body, auth), []byte("s3cret"))
		if err == nil && (ev.Commit == "" || ev.Kind == "") {
			t.Fatalf("got %+v without commit or kind", ev)
		}
		if err == nil && auth[7:] != "s3cret" && strings.TrimSpace(auth[7:]) != "s3cret" {
			t.Fatalf("accepted auth %q", auth)
		}
	})
}
