package engine

import (
	"fmt"
	"sort"
)

// ExitUnknown is the exit code Run returns together with an error when the
// step has no exit code (it never started, or it was stopped).
const ExitUnknown = -1

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
