package github

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/runnel-ci/runnel/scm"
)

// StatusReporter reports commit statuses through the GitHub REST API.
type StatusReporter struct {
	client *gh.Client
}

var _ scm.StatusReporter = (*StatusReporter)(nil)

// NewStatusReporter returns a reporter that authenticates with token (sent
// as "Authorization: Bearer <token>"). baseURL empty means github.com;
// otherwise it is a GitHub Enterprise Server URL such as
// https://ghe.example.com/ (go-github appends api/v3/ unless present).
// httpClient nil means http.DefaultClient.
func NewStatusReporter(baseURL, token string, httpClient *http.Client) (*StatusReporter, error) {
	c := gh.NewClient(httpClient).WithAuthToken(token)
	if baseURL != "" {
		var err error
		if c, err = c.WithEnterpriseURLs(baseURL, baseURL); err != nil {
			return nil, fmt.Errorf("github status reporter: base URL %q: %w", baseURL, err)
		}
	}
	return &StatusReporter{client: c}, nil
}

// Report creates a commit status (POST /repos/{owner}/{repo}/statuses/{sha}).
func (s *StatusReporter) Report(ctx context.Context, st scm.Status) error {
	owner, name, ok := strings.Cut(st.Repo, "/")
	if !ok || owner == "" || name == "" {
		return fmt.Errorf("github status for %q: repository is not owner/name", st.Repo)
	}
	st.State = st.State.Basic()
	switch st.State {
	case scm.StatePending, scm.StateSuccess, scm.StateFailure, scm.StateError:
	default:
		return fmt.Errorf("github status for %s@%s: unknown state %q", st.Repo, st.Commit, st.State)
	}
	rs := &gh.RepoStatus{
		State:   gh.String(string(st.State)),
		Context: gh.String(st.Context),
	}
	if st.Description != "" {
		rs.Description = gh.String(scm.Clip(st.Description, 140))
	}
	if st.TargetURL != "" {
		rs.TargetURL = gh.String(st.TargetURL)
	}
	if _, resp, err := s.client.Repositories.CreateStatus(ctx, owner, name, st.Commit, rs); err != nil {
		err = fmt.Errorf("github status %s for %s@%s: %w", st.State, st.Repo, st.Commit, err)
		if resp != nil && scm.Rejected(resp.StatusCode) {
			err = fmt.Errorf("%w: %w", scm.ErrRejected, err)
		}
		return err
	}
	return nil
}
