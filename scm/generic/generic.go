package generic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/scm"
)

// Path is where servers conventionally mount the generic hook.
const Path = "/hooks/generic"

// MaxBodySize caps a generic hook body; the payload is small.
const MaxBodySize = 1 << 20

// DeliveryHeader carries an optional unique delivery ID.
const DeliveryHeader = "X-Runnel-Delivery"

// Payload is the JSON body of a generic hook request.
type Payload struct {
	Repo      string            `json:"repo"`
	Ref       string            `json:"ref"`              // refs/heads/X or refs/tags/X
	Before    string            `json:"before,omitempty"` // previous SHA; zero or empty for a new ref
	Commit    string            `json:"commit"`           // full SHA to build
	Message   string            `json:"message,omitempty"`
	Timestamp *time.Time        `json:"timestamp,omitempty"`
	Author    string            `json:"author,omitempty"`
	CloneURL  string            `json:"clone_url,omitempty"`
	Changed   []string          `json:"changed,omitempty"`
	Inputs    map[string]string `json:"inputs,omitempty"`
	// Manual marks a manually triggered run (Kind manual) instead of
	// deriving push or tag from Ref.
	Manual bool `json:"manual,omitempty"`
}

// ParseBody decodes body, the body of r, into an Event, with the
// delivery id of r's headers. It authenticates nothing: the server finds
// the repository by r's bearer token (Token) first, and checks that the
// Event names that repository.
func ParseBody(r *http.Request, body []byte) (*scm.Event, error) {
	p, err := Decode(body)
	if err != nil {
		return nil, err
	}
	return p.event(delivery(r))
}

// Token returns r's bearer token, or "".
func Token(r *http.Request) string { return bearer(r) }

// Decode parses a generic hook body strictly (unknown fields are errors).
func Decode(body []byte) (*Payload, error) {
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("generic hook: decode body: %v: %w", err, scm.ErrBadRequest)
	}
	if dec.More() {
		return nil, fmt.Errorf("generic hook: decode body: data after the JSON object: %w", scm.ErrBadRequest)
	}
	if p.Repo == "" {
		return nil, fmt.Errorf("generic hook: missing repo: %w", scm.ErrBadRequest)
	}
	return &p, nil
}

func delivery(r *http.Request) string {
	if d := r.Header.Get(DeliveryHeader); d != "" {
		return d
	}
	return r.Header.Get("Idempotency-Key")
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(h[7:])
}

func (p *Payload) event(delivery string) (*scm.Event, error) {
	ev := &scm.Event{
		Forge:    scm.ForgeGeneric,
		Delivery: delivery,
		Repo:     p.Repo,
		CloneURL: p.CloneURL,
		Ref:      p.Ref,
		Before:   p.Before,
		Commit:   p.Commit,
		Message:  p.Message,
		Author:   p.Author,
		Changed:  p.Changed,
		Inputs:   p.Inputs,
	}
	if p.Timestamp != nil {
		ev.Timestamp = *p.Timestamp
	}
	if scm.IsZeroSHA(p.Commit) {
		if p.Ref != "" && !p.Manual {
			return nil, fmt.Errorf("generic hook: %q deleted: %w", p.Ref, scm.ErrIgnored)
		}
		return nil, fmt.Errorf("generic hook: missing commit: %w", scm.ErrBadRequest)
	}
	if !scm.ValidSHA(p.Commit) {
		return nil, fmt.Errorf("generic hook: commit %q is not a full hex SHA: %w", p.Commit, scm.ErrBadRequest)
	}
	ev.Branch, ev.Tag = scm.BranchOf(p.Ref), scm.TagOf(p.Ref)
	switch {
	case p.Manual:
		ev.Kind = scm.KindManual
	case ev.Branch != "":
		ev.Kind = scm.KindPush
	case ev.Tag != "":
		ev.Kind = scm.KindTag
	default:
		return nil, fmt.Errorf("generic hook: ref %q is neither a branch nor a tag: %w", p.Ref, scm.ErrIgnored)
	}
	return ev, nil
}
