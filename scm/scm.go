package scm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runnel-ci/runnel/pipeline"
)

// Event kinds; the values equal pipeline's Event kinds.
const (
	KindPush        = pipeline.EventPush
	KindPullRequest = pipeline.EventPullRequest
	KindTag         = pipeline.EventTag
	KindManual      = pipeline.EventManual
	KindCron        = pipeline.EventCron
)

// Forge names, as set in Event.Forge.
const (
	ForgeGitHub  = "github"
	ForgeGitea   = "gitea"
	ForgeGitLab  = "gitlab"
	ForgeGeneric = "generic" // the generic JSON hook, also sent by the git post-receive hook
)

// ZeroSHA is the all-zero object name forges and git use for "no commit"
// (the before of a new branch, the after of a deleted one).
const ZeroSHA = "0000000000000000000000000000000000000000"

// MaxBodySize caps a webhook request body. GitHub sends payloads of up to
// 25 MB; larger bodies are refused with ErrTooLarge.
const MaxBodySize = 25 << 20

var (
	// ErrSignature means the request's signature or token is missing or
	// wrong, or no secret is configured (fail closed). HTTP: 401.
	ErrSignature = errors.New("missing or invalid webhook signature")
	// ErrIgnored means the request is authentic and well-formed but asks
	// for nothing: a ping, an unknown event or action, a branch deletion.
	// HTTP: 2xx (e.g. 202 or 204), and no run is started.
	ErrIgnored = errors.New("webhook event ignored")
	// ErrTooLarge means the body exceeds MaxBodySize. HTTP: 413.
	ErrTooLarge = errors.New("webhook body too large")
	// ErrBadRequest means the request is authentic but malformed (bad
	// JSON, missing delivery ID or required field). HTTP: 400.
	ErrBadRequest = errors.New("malformed webhook request")
	// ErrRejected means a forge refused a commit status for good (a 4xx
	// other than 408 or 429: bad token, unknown repository or commit,
	// validation failure). Retrying cannot help; status queues give up.
	ErrRejected = errors.New("forge rejected the status")
)

// Rejected reports whether an HTTP status code from a forge's API means
// the request will never succeed as sent.
func Rejected(code int) bool {
	return code >= 400 && code < 500 && code != 408 && code != 429
}

// PullRequest describes the pull (merge) request of a pull_request Event.
type PullRequest struct {
	Number  int    `json:"number"`
	Title   string `json:"title,omitempty"`
	HeadRef string `json:"head_ref"` // source branch name
	HeadSHA string `json:"head_sha"`
	BaseRef string `json:"base_ref"` // target branch name
	BaseSHA string `json:"base_sha,omitempty"`
	// HeadCloneURL is the clone URL of the head repository, which differs
	// from Event.CloneURL for a pull request from a fork.
	HeadCloneURL string `json:"head_clone_url,omitempty"`
	// HeadRepo is the full name of the head repository; "" when the forge
	// no longer knows it (a deleted fork).
	HeadRepo string `json:"head_repo,omitempty"`
	// SameRepo is true only when the forge's verified payload says the
	// head and base repositories are one (see SameRepo); a pull request
	// from a fork, or one whose head repository is unknown, has false and
	// is untrusted. Commit metadata never decides it.
	SameRepo bool `json:"same_repo,omitempty"`
}

// SameRepo decides whether a pull request's head repository is its base
// repository, from the ids the forge gives them (0 when absent) or else
// their full names. Anything unknown counts as a different repository,
// so the answer fails closed.
func SameRepo(headID, baseID int64, headName, baseName string) bool {
	if headID != 0 && baseID != 0 {
		return headID == baseID
	}
	return headName != "" && baseName != "" && strings.EqualFold(headName, baseName)
}

// Event is what a trigger produced: one run's worth of "what happened".
// Commit is the SHA to build (for a pull request: the head SHA).
type Event struct {
	Forge    string `json:"forge"`              // ForgeGitHub, ...
	Delivery string `json:"delivery,omitempty"` // the forge's delivery ID, for dedup of redeliveries
	Kind     string `json:"kind"`               // KindPush, KindPullRequest, KindTag, KindManual, KindCron

	Repo     string `json:"repo"`                // full name, e.g. owner/name, or a local repo name
	CloneURL string `json:"clone_url,omitempty"` // may be empty for local repositories

	Ref    string `json:"ref,omitempty"`    // full ref, e.g. refs/heads/main, refs/tags/v1, refs/pull/7/head
	Branch string `json:"branch,omitempty"` // pushed branch; for a pull request the base (target) branch
	Tag    string `json:"tag,omitempty"`    // set for KindTag

	Before string `json:"before,omitempty"` // previous SHA of the ref; empty or ZeroSHA when new
	Commit string `json:"commit"`           // full SHA to build

	Message   string    `json:"message,omitempty"`  // commit message
	Timestamp time.Time `json:"timestamp,omitzero"` // commit time; zero when unknown
	Author    string    `json:"author,omitempty"`

	PullRequest *PullRequest `json:"pull_request,omitempty"` // set for KindPullRequest

	// Changed lists paths changed by the push when the payload says so;
	// nil means unknown (path filters then match everything).
	Changed []string `json:"changed,omitempty"`
	// Deleted is true when the ref was deleted. Hooks report deletions as
	// ErrIgnored; the field exists for triggers that pass them on.
	Deleted bool `json:"deleted,omitempty"`
	// Inputs are values of a manual trigger (generic hook "inputs").
	Inputs map[string]string `json:"inputs,omitempty"`
	// Schedule names the schedule of a cron or one-off run.
	Schedule string `json:"schedule,omitempty"`
}

// PipelineEvent converts e to the event pipeline compilation takes.
func (e *Event) PipelineEvent() pipeline.Event {
	pe := pipeline.Event{
		Kind:     e.Kind,
		Branch:   e.Branch,
		Tag:      e.Tag,
		Commit:   e.Commit,
		Message:  e.Message,
		Author:   e.Author,
		Repo:     e.Repo,
		Ref:      e.Ref,
		Schedule: e.Schedule,
	}
	if e.Changed != nil {
		pe.Changed = append([]string{}, e.Changed...)
	}
	if len(e.Inputs) > 0 {
		pe.Inputs = make(map[string]string, len(e.Inputs))
		for k, v := range e.Inputs {
			pe.Inputs[k] = v
		}
	}
	return pe
}

// Hook turns a forge's webhook request into an Event. Parse reads and
// closes nothing but r.Body (at most MaxBodySize bytes), verifies the
// request against secret on the raw body before decoding it, and returns:
// an Event; ErrSignature (also when secret is empty); ErrIgnored; or an
// error wrapping ErrTooLarge or ErrBadRequest.
//
// Verify checks the signature or token while the body streams in, so
// that a server need not hold an unverified body in memory to learn that
// it is not authentic. It looks at the headers only and returns an error
// wrapping ErrSignature when the request cannot be authentic (no secret;
// a missing, malformed or wrong-length signature; a wrong token) before
// any of the body is read; otherwise a BodyCheck, to which the caller
// writes the raw body. A body that passed is then given to Parse, which
// verifies it again. Implementations are safe for concurrent use.
type Hook interface {
	Verify(r *http.Request, secret []byte) (BodyCheck, error)
	Parse(r *http.Request, secret []byte) (*Event, error)
}

// State is a commit status state.
type State string

// Commit status states.
const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure"
	StateError   State = "error"
	// StateRunning means the run or stage has started. GitLab shows it;
	// forges without a running state report it as pending (Basic).
	StateRunning State = "running"
)

// Basic returns s in the four states GitHub and Gitea know: running
// becomes pending.
func (s State) Basic() State {
	if s == StateRunning {
		return StatePending
	}
	return s
}

// Status is one commit status to report on a forge.
type Status struct {
	Repo        string // owner/name
	Commit      string // full SHA
	State       State
	Context     string // e.g. "runnel/build"; one status line per context
	Description string // short text; forges truncate (GitHub: 140 chars)
	TargetURL   string // link to the run
}

// StatusReporter reports commit statuses to a forge. Report is safe for
// concurrent use and idempotent per (Repo, Commit, Context, State).
type StatusReporter interface {
	Report(ctx context.Context, s Status) error
}

// ReadBody reads r's body up to limit bytes (MaxBodySize when limit <= 0)
// and returns an error wrapping ErrTooLarge when it is longer. A body
// the server already read (BytesBody) is returned as it is, not copied.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = MaxBodySize
	}
	if r.Body == nil {
		return nil, nil
	}
	if b, ok := r.Body.(bytesBody); ok {
		if int64(len(b.b)) > limit {
			return nil, fmt.Errorf("read webhook body: %d bytes, limit %d: %w", len(b.b), limit, ErrTooLarge)
		}
		return b.b, nil
	}
	if r.ContentLength > limit {
		return nil, fmt.Errorf("read webhook body: %d bytes, limit %d: %w", r.ContentLength, limit, ErrTooLarge)
	}
	// A nil ResponseWriter is allowed: MaxBytesReader then only limits.
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("read webhook body: more than %d bytes: %w", limit, ErrTooLarge)
		}
		return nil, fmt.Errorf("read webhook body: %w", err)
	}
	return b, nil
}

// BytesBody is a request body that the server has read already (within
// its own bounds): ReadBody returns b itself, so a large body is not held
// twice. The caller must not change b while the request is parsed.
func BytesBody(b []byte) io.ReadCloser { return bytesBody{bytes.NewReader(b), b} }

type bytesBody struct {
	*bytes.Reader
	b []byte
}

func (bytesBody) Close() error { return nil }

// Clip truncates s to at most n bytes on a UTF-8 boundary; reporters use it
// for forge length limits.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// BranchOf returns the branch name of ref refs/heads/X, or "".
func BranchOf(ref string) string {
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return b
	}
	return ""
}

// TagOf returns the tag name of ref refs/tags/X, or "".
func TagOf(ref string) string {
	if t, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return t
	}
	return ""
}

// IsZeroSHA reports whether sha is empty or all zeros (no commit).
func IsZeroSHA(sha string) bool {
	return strings.Trim(sha, "0") == ""
}

// ValidSHA reports whether s is a full lower-case hex object name (SHA-1
// or SHA-256).
func ValidSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
