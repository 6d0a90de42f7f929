package github

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/runnel-ci/runnel/scm"
)

func TestStatusReporter(t *testing.T) {
	type request struct {
		Method, Path, Auth string
		Body               map[string]any
	}
	var got []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("body %q: %v", b, err)
		}
		got = append(got, request{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), body})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":1,"state":"success"}`)
	}))
	defer srv.Close()

	rep, err := NewStatusReporter(srv.URL+"/", "tok3n", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	err = rep.Report(context.Background(), scm.Status{
		Repo: "octo/hello", Commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", State: scm.StateSuccess,
		Context: "runnel/build", Description: "passed in 12s", TargetURL: "https://ci.example.com/runs/7",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []request{{
		Method: "POST", Path: "/api/v3/repos/octo/hello/statuses/6113728f27ae82c7b1a177c8d03f9e96e0adf246", Auth: "Bearer tok3n",
		Body: map[string]any{"state": "success", "context": "runnel/build", "description": "passed in 12s", "target_url": "https://ci.example.com/runs/7"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// GitHub has no running state: running is reported as pending.
	err = rep.Report(context.Background(), scm.Status{Repo: "octo/hello", Commit: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
		State: scm.StateRunning, Context: "runnel/build"})
	if err != nil {
		t.Fatal(err)
	}
	if s := got[len(got)-1].Body["state"]; s != "pending" {
		t.Errorf("running sent as state %v, want pending", s)
	}
}

func TestStatusReporterErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
	}))
	defer srv.Close()
	rep, err := NewStatusReporter(srv.URL+"/", "t", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		st   scm.Status
	}{
		{"server 404", scm.Status{Repo: "a/b", Commit: "abc", State: scm.StatePending, Context: "c"}},
		{"repo without owner", scm.Status{Repo: "b", Commit: "abc", State: scm.StatePending, Context: "c"}},
		{"unknown state", scm.Status{Repo: "a/b", Commit: "abc", State: "weird", Context: "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := rep.Report(context.Background(), tt.st); err == nil {
				t.Errorf("got nil error, want one")
			}
		})
	}
}
