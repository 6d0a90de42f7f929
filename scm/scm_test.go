package scm

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/pipeline"
)

func TestPipelineEvent(t *testing.T) {
	ev := &Event{
		Forge: ForgeGitHub, Delivery: "d", Kind: KindPullRequest, Repo: "o/r", CloneURL: "https://x/o/r.git",
		Ref: "refs/pull/2/head", Branch: "main", Before: "b", Commit: "c", Message: "m", Timestamp: time.Unix(1, 0),
		Author: "ann", PullRequest: &PullRequest{Number: 2}, Changed: []string{"a.go"}, Inputs: map[string]string{"k": "v"},
	}
	got := ev.PipelineEvent()
	want := pipeline.Event{Kind: "pull_request", Branch: "main", Commit: "c", Message: "m", Author: "ann", Repo: "o/r",
		Ref: "refs/pull/2/head", Changed: []string{"a.go"}, Inputs: map[string]string{"k": "v"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// The result shares no memory with the event.
	got.Changed[0], got.Inputs["k"] = "x", "x"
	if ev.Changed[0] != "a.go" || ev.Inputs["k"] != "v" {
		t.Errorf("PipelineEvent aliases the event's slices or maps")
	}
	if got := (&Event{Kind: KindPush}).PipelineEvent(); got.Changed != nil || got.Inputs != nil {
		t.Errorf("got Changed %#v Inputs %#v, want nil (unknown)", got.Changed, got.Inputs)
	}
}

func TestReadBody(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		limit  int64
		length int64 // Content-Length; -1 unknown
		want   error
	}{
		{"under", 10, 10, -1, nil},
		{"over, unknown length", 11, 10, -1, ErrTooLarge},
		{"over, declared length", 11, 10, 11, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", bytes.NewReader(bytes.Repeat([]byte("x"), tt.size)))
			r.ContentLength = tt.length
			b, err := ReadBody(r, tt.limit)
			if !errors.Is(err, tt.want) || (err == nil && len(b) != tt.size) {
				t.Errorf("got %d bytes, %v; want %d, %v", len(b), err, tt.size, tt.want)
			}
		})
	}
}

// TestReadBodyBytes: a body the server read already (BytesBody) is
// returned without a copy, and still bounded by the limit.
func TestReadBodyBytes(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 10)
	r := httptest.NewRequest("POST", "/", nil)
	r.Body = BytesBody(body)
	b, err := ReadBody(r, 10)
	same := len(b) == len(body) && &b[0] == &body[0]
	if err != nil || !same {
		t.Errorf("got %d bytes (same memory: %v), %v; want the body itself", len(b), same, err)
	}
	r.Body = BytesBody(body)
	if _, err := ReadBody(r, 9); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: got %v, want ErrTooLarge", err)
	}
}

func TestHelpers(t *testing.T) {
	tests := []struct{ got, want string }{
		{Clip("héllo", 2), "h"},
		{Clip("héllo", 3), "hé"},
		{Clip("abc", 5), "abc"},
		{BranchOf("refs/heads/feat/x"), "feat/x"},
		{BranchOf("refs/tags/v1"), ""},
		{TagOf("refs/tags/v1"), "v1"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
	if !IsZeroSHA(ZeroSHA) || !IsZeroSHA("") || IsZeroSHA("0001") {
		t.Error("IsZeroSHA wrong")
	}
	if !ValidSHA(strings.Repeat("a", 40)) || ValidSHA(strings.Repeat("A", 40)) || ValidSHA("abc") {
		t.Error("ValidSHA wrong")
	}
}

func TestSameRepo(t *testing.T) {
	tests := []struct {
		name               string
		headID, baseID     int64
		headName, baseName string
		want               bool
	}{
		{"same id", 7, 7, "a/b", "a/b", true},
		{"same id, renamed", 7, 7, "a/old", "a/b", true},
		{"fork by id", 8, 7, "fork/b", "a/b", false},
		{"fork by id, same name", 8, 7, "a/b", "a/b", false},
		{"no ids, same name", 0, 0, "a/b", "a/b", true},
		{"no ids, name case differs", 0, 0, "A/B", "a/b", true},
		{"one id missing, names decide", 0, 7, "fork/b", "a/b", false},
		{"no ids, fork name", 0, 0, "fork/b", "a/b", false},
		{"deleted head repository", 0, 7, "", "a/b", false},
		{"nothing known", 0, 0, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SameRepo(tt.headID, tt.baseID, tt.headName, tt.baseName); got != tt.want {
				t.Errorf("SameRepo(%d, %d, %q, %q) = %v, want %v", tt.headID, tt.baseID, tt.headName, tt.baseName, got, tt.want)
			}
		})
	}
}
