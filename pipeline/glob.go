package pipeline

import (
	"fmt"
	"path"
	"strings"
)

// Match reports whether s matches the glob pattern. Patterns are split on
// "/" into segments: a segment "**" matches zero or more whole segments;
// other segments use path.Match syntax ("*" and "?" never cross a "/",
// "[a-z]" classes, "\" escapes). A malformed pattern matches nothing; use
// ValidGlob to check one.
//
// Examples: "docs/**" matches "docs/a/b.md"; "**/*.go" matches "main.go"
// and "a/b/c.go"; "release/*" matches "release/1.2" but not "release/1/2".
func Match(pattern, s string) bool {
	ps := strings.Split(pattern, "/")
	ss := strings.Split(s, "/")
	// ok[j] reports whether the pattern segments consumed so far can match
	// the first j string segments; a dynamic programme keeps "**" linear.
	ok := make([]bool, len(ss)+1)
	ok[0] = true
	next := make([]bool, len(ss)+1)
	for _, p := range ps {
		clear(next)
		if p == "**" {
			reach := false
			for j := range ok {
				reach = reach || ok[j]
				next[j] = reach
			}
		} else {
			for j := 0; j < len(ss); j++ {
				if !ok[j] {
					continue
				}
				m, err := path.Match(p, ss[j])
				if err != nil {
					return false
				}
				next[j+1] = m
			}
		}
		ok, next = next, ok
	}
	return ok[len(ss)]
}

// ValidGlob returns an error when pattern is not a well-formed glob.
func ValidGlob(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("empty pattern")
	}
	for _, seg := range strings.Split(pattern, "/") {
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("segment %q: %w", seg, err)
		}
	}
	return nil
}
