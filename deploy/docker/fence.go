package docker

import (
	"errors"
	"slices"
)

// ErrFenced is the answer to routes from an attempt of a release older
// than one that already set the proxy's routes: the stale attempt of a
// re-delivered deploy stage (its agent was frozen or cut off, not dead)
// must not move traffic, or remove containers, under the new attempt.
var ErrFenced = errors.New("routes refused: a later attempt of this release has set them")

// maxFences bounds the releases a proxy remembers; a release older than
// the last maxFences is no longer fenced (its stage ended long ago).
const maxFences = 64

// fence is the highest stage attempt seen of one release.
type fence struct {
	Release string `json:"release"`
	Attempt int    `json:"attempt"`
}

// admit is the fencing rule: routes from attempt of release are refused
// when fences hold a higher attempt of that release. Routes without a
// release are never refused (a release with no identity cannot be
// re-delivered). It returns the fences after the routes are admitted:
// release moved to the end with the highest attempt, at most maxFences.
func admit(fences []fence, release string, attempt int) ([]fence, bool) {
	if release == "" {
		return fences, true
	}
	i := slices.IndexFunc(fences, func(f fence) bool { return f.Release == release })
	if i >= 0 && fences[i].Attempt > attempt {
		return fences, false
	}
	out := slices.Clone(fences)
	if i >= 0 {
		out = slices.Delete(out, i, i+1)
	}
	out = append(out, fence{release, attempt})
	if len(out) > maxFences {
		out = out[len(out)-maxFences:]
	}
	return out, true
}
