package gitlab

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/gitlab/gitlabtest"
	"github.com/runnel-ci/runnel/scm/scmtest"
)

const sha = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"

func TestStatusReporter(t *testing.T) {
	const project = "group/sub/app"
	fake := gitlabtest.New(t, "glpat-t0k", project)
	rep, err := NewStatusReporter(fake.URL, "glpat-t0k", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	report := func(state scm.State, desc string) {
		t.Helper()
		if err := rep.Report(ctx, scm.Status{Repo: project, Commit: sha, State: state, Context: "runnel/build",
			Description: desc, TargetURL: "https://ci/runs/3"}); err != nil {
			t.Fatalf("report %s (%s): %v", state, desc, err)
		}
	}
	report(scm.StatePending, "Queued")
	// GitLab answers 400 to a state the status is in already: a second
	// report of a state (a retry) must still succeed.
	report(scm.StatePending, "Queued")
	report(scm.StateRunning, "Running on agent-1")
	report(scm.StateRunning, "Running on agent-1")
	report(scm.StateSuccess, "Stage success")
	report(scm.StateSuccess, "Stage success") // a repeat: GitLab starts a new status
	report(scm.StatePending, "Queued")        // a rerun of the commit
	report(scm.StateFailure, "Stage failure")

	got := fake.Statuses(project, sha, "runnel/build")
	var histories [][]string
	for _, st := range got {
		histories = append(histories, st.History)
		if st.TargetURL != "https://ci/runs/3" {
			t.Errorf("status %d: target_url %q, want https://ci/runs/3", st.ID, st.TargetURL)
		}
	}
	want := [][]string{{"pending", "running", "success"}, {"success"}, {"pending", "failed"}}
	if !reflect.DeepEqual(histories, want) {
		t.Errorf("got status histories %v, want %v", histories, want)
	}
	if d := got[len(got)-1].Description; d != "Stage failure" {
		t.Errorf("got description %q, want %q", d, "Stage failure")
	}
}

func TestStatusReporterErrors(t *testing.T) {
	fake := gitlabtest.New(t, "good", "a/b")
	st := scm.Status{Repo: "a/b", Commit: sha, State: scm.StatePending, Context: "runnel"}
	tests := []struct {
		name     string
		token    string
		status   func(s scm.Status) scm.Status
		fail     []int
		rejected bool
	}{
		{"wrong token", "bad", nil, nil, true},
		{"unknown project", "good", func(s scm.Status) scm.Status { s.Repo = "a/gone"; return s }, nil, true},
		{"server error", "good", nil, []int{http.StatusInternalServerError}, false},
		{"rate limited", "good", nil, []int{http.StatusTooManyRequests}, false},
		{"bad request not explained by the current state", "good", nil, []int{http.StatusBadRequest}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := NewStatusReporter(fake.URL+"/", tt.token, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := st
			if tt.status != nil {
				s = tt.status(s)
			}
			fake.FailNext(tt.fail...)
			err = rep.Report(context.Background(), s)
			if err == nil {
				t.Fatal("got nil error, want one")
			}
			if got := errors.Is(err, scm.ErrRejected); got != tt.rejected {
				t.Errorf("errors.Is(%v, ErrRejected) = %v, want %v", err, got, tt.rejected)
			}
		})
	}
	for _, bad := range []scm.Status{
		{Repo: "noslash", Commit: sha, State: scm.StatePending},
		{Repo: "a/b", Commit: "da15608", State: scm.StatePending},
		{Repo: "a/b", Commit: sha, State: "canceled"},
	} {
		rep, _ := NewStatusReporter(fake.URL, "good", nil)
		before := fake.Requests()
		if err := rep.Report(context.Background(), bad); err == nil {
			t.Errorf("Report(%+v): got nil error, want one", bad)
		}
		if fake.Requests() != before {
			t.Errorf("Report(%+v) sent a request; want it refused before", bad)
		}
	}
	if _, err := NewStatusReporter("ftp://gitlab.example.com", "t", nil); err == nil {
		t.Error("NewStatusReporter(ftp://...): got nil error, want one")
	}
}

func TestStatusReporterRejected(t *testing.T) {
	scmtest.StatusRejections(t, func(url string, c *http.Client) (scm.StatusReporter, error) {
		return NewStatusReporter(url, "t", c)
	})
}
