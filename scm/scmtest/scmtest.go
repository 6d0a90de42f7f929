// Package scmtest holds test helpers shared by the forge packages: checks
// that every scm.StatusReporter classifies its forge's answers the same way.
package scmtest

import (
	"context"
	"encoding/json"
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

// Edit decodes the JSON object body, lets edit change it and encodes it
// again: tests derive payload variants from one real payload this way.
func Edit(t testing.TB, body []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Obj returns the object at path below m; it panics when there is none,
// which in a test means the payload lost its shape.
func Obj(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		m = m[k].(map[string]any)
	}
	return m
}
