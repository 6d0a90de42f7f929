// Package scmtest holds test helpers shared by the forge packages: checks
// that every scm.StatusReporter classifies its forge's answers the same way.
package scmtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/runnel-ci/runnel/scm"
)

// NewReporter builds the reporter under test against a fake forge API.
type NewReporter func(baseURL string, client *http.Client) (scm.StatusReporter, error)

// StatusRejections checks that 4xx answers other than 408 and 429 come back
// as scm.ErrRejected (final, so status queues stop retrying), and that 5xx,
// 408 and 429 stay retryable.
func StatusRejections(t *testing.T, newReporter NewReporter) {
	t.Helper()
	for _, tt := range []struct {
		code     int
		rejected bool
	}{
		{http.StatusUnauthorized, true},
		{http.StatusNotFound, true},
		{http.StatusUnprocessableEntity, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
	} {
		t.Run(http.StatusText(tt.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.code)
				w.Write([]byte(`{"message":"nope"}`))
			}))
			defer srv.Close()
			rep, err := newReporter(srv.URL+"/", srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			err = rep.Report(context.Background(), scm.Status{Repo: "a/b",
				Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", State: scm.StatePending, Context: "runnel"})
			if err == nil {
				t.Fatal("got nil error, want one")
			}
			if got := errors.Is(err, scm.ErrRejected); got != tt.rejected {
				t.Errorf("errors.Is(%v, ErrRejected): got %v, want %v", err, got, tt.rejected)
			}
		})
	}
}
