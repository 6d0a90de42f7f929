package gitlab

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"

	"github.com/runnel-ci/runnel/scm"
)

// StatusReporter reports commit statuses through GitLab's REST API (v4)
// with GitLab's own client library.
//
// GitLab keeps a state machine per status name, not a list of reports:
// a status still pending or running is moved on, a finished one is
// followed by a new one. It refuses with 400 a move that goes nowhere,
// such as pending while already pending, which a retried or repeated
// report is. Report then reads the status back and counts the report as
// done when it is already in the wanted state, so Report stays
// idempotent.
type StatusReporter struct {
	client *gl.Client
}

var _ scm.StatusReporter = (*StatusReporter)(nil)

// DefaultURL is the instance a reporter without a base URL talks to.
const DefaultURL = "https://gitlab.com"

// NewStatusReporter returns a reporter for the GitLab instance at baseURL
// (e.g. https://gitlab.example.com; empty means DefaultURL; the library
// appends /api/v4) authenticating with a personal, project or group
// access token (sent as PRIVATE-TOKEN). httpClient nil means a client
// with a 30 s timeout. The library's own retries are off: the status
// queue that calls Report retries, with its own backoff and limits.
func NewStatusReporter(baseURL, token string, httpClient *http.Client) (*StatusReporter, error) {
	if baseURL == "" {
		baseURL = DefaultURL
	}
	if _, err := scm.ParseForgeURL(strings.TrimRight(baseURL, "/")); err != nil {
		return nil, fmt.Errorf("gitlab status reporter: %w", err)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	c, err := gl.NewClient(token, gl.WithBaseURL(baseURL), gl.WithHTTPClient(httpClient), gl.WithoutRetries())
	if err != nil {
		return nil, fmt.Errorf("gitlab status reporter: base URL %q: %w", baseURL, err)
	}
	return &StatusReporter{client: c}, nil
}

// stateOf maps a commit status state onto GitLab's: GitLab says failed
// where GitHub says failure, and has no error state (failed again).
func stateOf(s scm.State) (gl.BuildStateValue, error) {
	switch s {
	case scm.StatePending:
		return gl.Pending, nil
	case scm.StateRunning:
		return gl.Running, nil
	case scm.StateSuccess:
		return gl.Success, nil
	case scm.StateFailure, scm.StateError:
		return gl.Failed, nil
	}
	return "", fmt.Errorf("unknown state %q", s)
}

// Report sets a commit status (POST /projects/{path}/statuses/{sha}); the
// status's context is GitLab's status name.
func (s *StatusReporter) Report(ctx context.Context, st scm.Status) error {
	if owner, name, ok := strings.Cut(st.Repo, "/"); !ok || owner == "" || name == "" {
		return fmt.Errorf("gitlab status for %q: project is not namespace/name", st.Repo)
	}
	if !scm.ValidSHA(st.Commit) {
		return fmt.Errorf("gitlab status for %s: commit %q is not a full SHA", st.Repo, st.Commit)
	}
	state, err := stateOf(st.State)
	if err != nil {
		return fmt.Errorf("gitlab status for %s@%s: %w", st.Repo, st.Commit, err)
	}
	opt := &gl.SetCommitStatusOptions{State: state, Name: gl.Ptr(st.Context)}
	if st.Description != "" {
		opt.Description = gl.Ptr(scm.Clip(st.Description, 255))
	}
	if st.TargetURL != "" {
		opt.TargetURL = gl.Ptr(st.TargetURL)
	}
	_, resp, err := s.client.Commits.SetCommitStatus(st.Repo, st.Commit, opt, gl.WithContext(ctx))
	if err == nil {
		return nil
	}
	if resp != nil && resp.StatusCode == http.StatusBadRequest {
		if cur, cerr := s.current(ctx, st); cerr == nil && cur == state {
			return nil
		}
	}
	err = fmt.Errorf("gitlab status %s for %s@%s: %w", state, st.Repo, st.Commit, err)
	if resp != nil && scm.Rejected(resp.StatusCode) {
		err = fmt.Errorf("%w: %w", scm.ErrRejected, err)
	}
	return err
}

// current returns the state of the newest status named st.Context on the
// commit.
func (s *StatusReporter) current(ctx context.Context, st scm.Status) (gl.BuildStateValue, error) {
	list, _, err := s.client.Commits.GetCommitStatuses(st.Repo, st.Commit,
		&gl.GetCommitStatusesOptions{Name: gl.Ptr(st.Context)}, gl.WithContext(ctx))
	if err != nil {
		return "", err
	}
	var newest *gl.CommitStatus
	for _, c := range list {
		if c.Name == st.Context && (newest == nil || c.ID > newest.ID) {
			newest = c
		}
	}
	if newest == nil {
		return "", fmt.Errorf("no status %q on %s", st.Context, st.Commit)
	}
	return gl.BuildStateValue(newest.Status), nil
}
