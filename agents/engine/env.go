package engine

import (
	"fmt"
	"sort"

	"github.com/runnel-ci/runnel/pipeline"
)

// ExitUnknown is the exit code Run returns together with an error when the
// step has no exit code (it never started, or it was stopped).
const ExitUnknown = -1

// Env returns the environment of step as sorted KEY=VALUE entries: the
// stage env overlaid by the step env. Values are passed to processes
// verbatim (never through a shell), so they may hold any text.
func Env(stage *pipeline.Stage, step *pipeline.Step) []string {
	m := make(map[string]string, len(stage.Env)+len(step.Env))
	for k, v := range stage.Env {
		m[k] = v
	}
	for k, v := range step.Env {
		m[k] = v
	}
	return envList(m)
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// PullPolicy says when an engine fetches an image from its registry.
type PullPolicy string

// Pull policies.
const (
	PullIfNotPresent PullPolicy = "if-not-present" // the default
	PullAlways       PullPolicy = "always"
	PullNever        PullPolicy = "never"
)

// ParsePullPolicy parses a pull policy name; "" means PullIfNotPresent.
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch p := PullPolicy(s); p {
	case "":
		return PullIfNotPresent, nil
	case PullIfNotPresent, PullAlways, PullNever:
		return p, nil
	}
	return "", fmt.Errorf("pull policy %q: want if-not-present, always or never", s)
}
