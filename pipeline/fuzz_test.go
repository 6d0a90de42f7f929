package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse or Plan panic or hang, and
// that what Parse accepts Plan can compile for every event kind.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.pipeline.yml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz.yml", src)
		if err != nil {
			var ds Diagnostics
			if !errors.As(err, &ds) || !ds.HasErrors() {
				t.Fatalf("error %T without error diagnostics: %v", err, err)
			}
			return
		}
		for _, kind := range eventKinds {
			pl, err := p.Plan(Event{Kind: kind, Branch: "main", Tag: "v1", Changed: []string{"a/b.go"}})
			if errors.Is(err, ErrSkipped) {
				continue
			}
			if err != nil {
				t.Fatalf("Plan(%s) of an accepted file: %v", kind, err)
			}
			seen := map[string]bool{}
			for _, s := range pl.Stages {
				if seen[s.ID] {
					t.Fatalf("duplicate stage ID %q", s.ID)
				}
				for _, n := range s.Needs {
					if !seen[n] {
						t.Fatalf("stage %s needs %s, which is not before it", s.ID, n)
					}
				}
				for _, r := range s.Receive {
					if !seen[r] {
						t.Fatalf("stage %s receives artifacts of %s, which is not before it", s.ID, r)
					}
				}
				checkPlanPaths(t, s)
				seen[s.ID] = true
			}
		}
	})
}

// checkPlanPaths fails when a compiled stage holds a workspace path that
// cleanPath would not return unchanged: agents rely on plan paths being
// clean and inside the workspace.
func checkPlanPaths(t *testing.T, s *Stage) {
	t.Helper()
	var paths []string
	if s.Artifacts != nil {
		paths = append(paths, s.Artifacts.Paths...)
	}
	for _, f := range s.Fetch {
		paths = append(paths, f.Dest)
	}
	for _, c := range s.Cache {
		paths = append(paths, c.Paths...)
		paths = append(paths, c.Files...)
	}
	for _, p := range paths {
		if q, problem := cleanPath(p, false); problem != "" || q != p {
			t.Fatalf("stage %s: plan path %q is not clean (%s)", s.ID, p, problem)
		}
	}
}
