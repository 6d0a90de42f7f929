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
				seen[s.ID] = true
			}
		}
	})
}
