package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// defaultEvent is used for a good file without a sidecar .event.json.
var defaultEvent = Event{Kind: EventPush, Branch: "main", Ref: "refs/heads/main", Commit: "0123456789abcdef0123456789abcdef01234567", Message: "Add a feature", Author: "dev", Repo: "acme/app"}

type goldenResult struct {
	Warnings []string `json:"warnings,omitempty"`
	Skipped  bool     `json:"skipped,omitempty"`
	Plan     *Plan    `json:"plan,omitempty"`
}

func TestGoldenGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.pipeline.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, f := range files {
		base := strings.TrimSuffix(f, ".pipeline.yml")
		t.Run(filepath.Base(base), func(t *testing.T) {
			ev := defaultEvent
			if b, err := os.ReadFile(base + ".event.json"); err == nil {
				ev = Event{}
				if err := json.Unmarshal(b, &ev); err != nil {
					t.Fatalf("read event: %v", err)
				}
			}
			p, err := ParseFile(f)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var res goldenResult
			for _, w := range p.Warnings {
				res.Warnings = append(res.Warnings, w.String())
			}
			plan, err := p.Plan(ev)
			switch {
			case errors.Is(err, ErrSkipped):
				res.Skipped = true
			case err != nil:
				t.Fatalf("Plan: %v", err)
			default:
				res.Plan = plan
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			compareGolden(t, base+".plan.json", got)
			if plan != nil {
				// The plan must survive the trip to an agent unchanged.
				var back Plan
				if err := json.Unmarshal(got, &goldenResult{Plan: &back}); err != nil {
					t.Fatalf("decode plan: %v", err)
				}
				again, _ := json.Marshal(&back)
				want, _ := json.Marshal(plan)
				if !bytes.Equal(again, want) {
					t.Errorf("plan JSON round trip differs:\n got %s\nwant %s", again, want)
				}
			}
		})
	}
}

func TestGoldenBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.pipeline.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, f := range files {
		base := strings.TrimSuffix(f, ".pipeline.yml")
		t.Run(filepath.Base(base), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(f)
			p, err := Parse(name, src)
			if err == nil {
				t.Fatalf("Parse accepted a bad file; warnings: %v", p.Warnings)
			}
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("error is %T, want Diagnostics", err)
			}
			compareGolden(t, base+".diag", []byte(ds.Error()+"\n"))
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
