package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) *Pipeline {
	t.Helper()
	p, err := Parse("t.yml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func stageIDs(pl *Plan) []string {
	var ids []string
	for _, s := range pl.Stages {
		ids = append(ids, s.ID)
	}
	return ids
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"main", "main", true},
		{"main", "mainline", false},
		{"release/*", "release/1.2", true},
		{"release/*", "release/1/2", false},
		{"release/**", "release/1/2", true},
		{"release/**", "release", true}, // ** matches zero segments
		{"**", "a/b/c", true},
		{"**/*.go", "main.go", true},
		{"**/*.go", "a/b/c.go", true},
		{"**/*.go", "a/b/c.gox", false},
		{"docs/**/*.md", "docs/x.md", true},
		{"docs/**/*.md", "docs/a/b/x.md", true},
		{"docs/**/*.md", "src/docs/x.md", false},
		{"v[0-9]*", "v1.2.3", true},
		{"v[0-9]*", "vx", false},
		{"feature-?", "feature-a", true},
		{"feature-?", "feature-ab", false},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"*", "", true},
		{"[", "[", false}, // malformed patterns match nothing
		{"a/**/b/**/c", "a/x/b/y/z/c", true},
		{"a/**/b/**/c", "a/x/y/z/c", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestValidGlob(t *testing.T) {
	for _, p := range []string{"main", "**/*.go", "v[0-9]*", `a\*`} {
		if err := ValidGlob(p); err != nil {
			t.Errorf("ValidGlob(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "[", "a/[b-", `a\`} {
		if err := ValidGlob(p); err == nil {
			t.Errorf("ValidGlob(%q) = nil, want an error", p)
		}
	}
}

func TestWhen(t *testing.T) {
	src := `version: 1
stages:
  s:
    when:
      event: [push, tag]
      branches: [main, "release/*"]
      paths: ["src/**"]
      paths_ignore: ["src/**/*.md"]
    steps: [{name: a, run: a}]
  other:
    steps: [{name: a, run: a}]
`
	p := mustParse(t, src)
	tests := []struct {
		name string
		ev   Event
		want bool
	}{
		{"push main, unknown changes", Event{Kind: EventPush, Branch: "main"}, true},
		{"push release", Event{Kind: EventPush, Branch: "release/2"}, true},
		{"push feature", Event{Kind: EventPush, Branch: "feature/x"}, false},
		{"pull request", Event{Kind: EventPullRequest, Branch: "main"}, false},
		{"tag without branch", Event{Kind: EventTag, Tag: "v1"}, false},
		{"changed src", Event{Kind: EventPush, Branch: "main", Changed: []string{"README", "src/a/b.go"}}, true},
		{"only ignored", Event{Kind: EventPush, Branch: "main", Changed: []string{"src/a/b.md"}}, false},
		{"no changes", Event{Kind: EventPush, Branch: "main", Changed: []string{}}, false},
		{"outside paths", Event{Kind: EventPush, Branch: "main", Changed: []string{"docs/x"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, err := p.Plan(tt.ev)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			got := slices.Contains(stageIDs(pl), "s")
			if got != tt.want {
				t.Errorf("stage s planned = %v, want %v (stages %v)", got, tt.want, stageIDs(pl))
			}
		})
	}
}

func TestPipelineWhenSkips(t *testing.T) {
	p := mustParse(t, `version: 1
when: {tags: ["v*"]}
stages:
  s: {steps: [{name: a, run: a}]}
`)
	if _, err := p.Plan(Event{Kind: EventPush, Branch: "main"}); !errors.Is(err, ErrSkipped) {
		t.Errorf("Plan(push) error = %v, want ErrSkipped", err)
	}
	pl, err := p.Plan(Event{Kind: EventTag, Tag: "v1.0"})
	if err != nil || len(pl.Stages) != 1 {
		t.Errorf("Plan(tag) = %v, %v; want one stage", pl, err)
	}
	// Every stage filtered out: also skipped.
	q := mustParse(t, `version: 1
stages:
  s: {when: {event: cron}, steps: [{name: a, run: a}]}
`)
	if _, err := q.Plan(Event{Kind: EventPush}); !errors.Is(err, ErrSkipped) {
		t.Errorf("Plan with no stage left: error = %v, want ErrSkipped", err)
	}
	if _, err := q.Plan(Event{Kind: "bogus"}); err == nil || errors.Is(err, ErrSkipped) {
		t.Errorf("Plan(unknown kind) error = %v, want a plain error", err)
	}
}

func TestMatrixExpansion(t *testing.T) {
	p := mustParse(t, `version: 1
stages:
  t:
    matrix:
      b: [x, y]
      a: [1, 2, 3]
      exclude: [{a: 2}]
      include: [{b: z, a: 9}]
    steps: [{name: a, run: a}]
  after:
    needs: t
    steps: [{name: a, run: a}]
`)
	pl, err := p.Plan(Event{Kind: EventPush})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"t[b=x,a=1]", "t[b=x,a=3]", "t[b=y,a=1]", "t[b=y,a=3]", "t[b=z,a=9]", "after"}
	if got := stageIDs(pl); !slices.Equal(got, want) {
		t.Fatalf("stages = %v, want %v", got, want)
	}
	if got := pl.Stages[5].Needs; !slices.Equal(got, want[:5]) {
		t.Errorf("after needs %v, want %v", got, want[:5])
	}
	s := pl.Stages[1]
	for k, v := range map[string]string{"MATRIX_A": "3", "A": "3", "MATRIX_B": "x", "B": "x", "RUNNEL_STAGE": "t[b=x,a=3]", "CI": "true"} {
		if s.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, s.Env[k], v)
		}
	}
	if s.Matrix["a"] != "3" || s.Matrix["b"] != "x" {
		t.Errorf("matrix = %v, want a=3 b=x", s.Matrix)
	}
	// Stages must not share maps: an engine may modify one.
	pl.Stages[0].Env["X"] = "1"
	pl.Stages[0].Steps[0].Name = "changed"
	if _, ok := pl.Stages[1].Env["X"]; ok || pl.Stages[1].Steps[0].Name != "a" {
		t.Error("expanded stages share env or steps")
	}
	pl2, _ := p.Plan(Event{Kind: EventPush})
	if pl2.Stages[0].Steps[0].Name != "a" {
		t.Error("modifying a plan changed the pipeline")
	}
}

func TestMatrixLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nstages:\n  s:\n    matrix:\n      a: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]\n      b: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]\n    steps: [{name: a, run: a}]\n")
	p := mustParse(t, b.String()) // exactly 256
	pl, err := p.Plan(Event{Kind: EventPush})
	if err != nil || len(pl.Stages) != MaxMatrixCombinations {
		t.Fatalf("got %v stages, err %v; want %d", len(pl.Stages), err, MaxMatrixCombinations)
	}
	_, err = Parse("t.yml", []byte(strings.Replace(b.String(), "16]\n    steps", "16, 17]\n    steps", 1)))
	if !hasCode(err, CodeMatrixTooLarge) {
		t.Errorf("257 combinations: error %v, want %s", err, CodeMatrixTooLarge)
	}
}

func hasCode(err error, code string) bool {
	var ds Diagnostics
	if !errors.As(err, &ds) {
		return false
	}
	return slices.ContainsFunc(ds, func(d Diagnostic) bool { return d.Code == code })
}

func TestTopologicalOrder(t *testing.T) {
	p := mustParse(t, `version: 1
stages:
  deploy: {needs: [test, lint], steps: [{name: a, run: a}]}
  test: {needs: [build], steps: [{name: a, run: a}]}
  lint: {steps: [{name: a, run: a}]}
  build: {steps: [{name: a, run: a}]}
  docs: {steps: [{name: a, run: a}]}
  skipped: {when: {event: cron}, steps: [{name: a, run: a}]}
  after-skipped: {needs: [skipped, lint], steps: [{name: a, run: a}]}
`)
	for range 5 { // the order must not depend on map iteration
		pl, err := p.Plan(Event{Kind: EventPush})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"lint", "build", "test", "deploy", "docs", "after-skipped"}
		if got := stageIDs(pl); !slices.Equal(got, want) {
			t.Fatalf("order = %v, want %v", got, want)
		}
		if got := pl.Stages[5].Needs; !slices.Equal(got, []string{"lint"}) {
			t.Errorf("after-skipped needs %v, want [lint] (the filtered need dropped)", got)
		}
	}
}

func TestCycleReport(t *testing.T) {
	_, err := Parse("c.yml", []byte(`version: 1
stages:
  a: {needs: [b], steps: [{name: a, run: a}]}
  b: {needs: [c], steps: [{name: a, run: a}]}
  c: {needs: [a], steps: [{name: a, run: a}]}
`))
	want := "c.yml:5:15: cycle: needs form a cycle: a -> b -> c -> a"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestEventEnv(t *testing.T) {
	p := mustParse(t, `version: 1
env: {A: pipeline, B: pipeline}
stages:
  s:
    env: {B: stage}
    steps: [{name: a, run: 'echo "$RUNNEL_COMMIT_MESSAGE"', env: {C: step, B: step}}]
`)
	msg := "$(touch /tmp/pwned) `id` \"; rm -rf /"
	pl, err := p.Plan(Event{Kind: EventManual, Branch: "x", Message: msg, Inputs: map[string]string{"my-input": "1", "b.c": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	s := pl.Stages[0]
	for k, v := range map[string]string{"A": "pipeline", "B": "stage", "RUNNEL_COMMIT_MESSAGE": msg, "RUNNEL_INPUT_MY_INPUT": "1", "RUNNEL_INPUT_B_C": "2", "RUNNEL_EVENT": "manual", "RUNNEL_BRANCH": "x", "RUNNEL_TAG": ""} {
		if got, ok := s.Env[k]; !ok || got != v {
			t.Errorf("stage env %s = %q, want %q", k, got, v)
		}
	}
	if strings.Contains(s.Steps[0].Run, "touch") {
		t.Errorf("untrusted text reached the script: %q", s.Steps[0].Run)
	}
	env := s.StepEnv(s.Steps[0])
	if env["B"] != "step" || env["C"] != "step" || env["A"] != "pipeline" {
		t.Errorf("StepEnv = %v, want B=step C=step A=pipeline", env)
	}
	if _, ok := s.Env["C"]; ok {
		t.Error("StepEnv modified the stage env")
	}
	if got := s.StepTimeout(s.Steps[0]); got.D() != DefaultStageTimeout {
		t.Errorf("StepTimeout = %v, want %v", got.D(), DefaultStageTimeout)
	}
}

func TestSanitizeEnvName(t *testing.T) {
	for in, want := range map[string]string{"version": "VERSION", "dry-run": "DRY_RUN", "a.b c": "A_B_C", "": "_", "ünï": "_N_"} {
		if got := SanitizeEnvName(in); got != want {
			t.Errorf("SanitizeEnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLimits(t *testing.T) {
	big := make([]byte, MaxFileSize+1)
	if _, err := Parse("big.yml", big); !hasCode(err, CodeFileTooLarge) {
		t.Errorf("oversized file: error %v, want %s", err, CodeFileTooLarge)
	}
	path := filepath.Join(t.TempDir(), "big.yml")
	if err := os.WriteFile(path, append(big, big...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(path); !hasCode(err, CodeFileTooLarge) {
		t.Errorf("ParseFile oversized: error %v, want %s", err, CodeFileTooLarge)
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	if _, err := Parse("deep.yml", []byte(deep)); !hasCode(err, CodeYAMLSyntax) {
		t.Errorf("deep nesting: error %v, want %s", err, CodeYAMLSyntax)
	}
	// A self-referencing alias must not loop.
	self := "version: 1\nstages: &s\n  a:\n    steps: [{name: a, run: a}]\n  b: *s\n"
	if _, err := Parse("self.yml", []byte(self)); err == nil {
		t.Error("self-referencing alias: no error")
	}
	many := "version: 1\nstages:\n  s:\n    steps:\n" + strings.Repeat("      - {nme: x}\n", 500)
	_, err := Parse("many.yml", []byte(many))
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != maxDiags+1 || ds[len(ds)-1].Code != CodeTooComplex {
		t.Errorf("got %d diagnostics, want %d ending in %s", len(ds), maxDiags+1, CodeTooComplex)
	}
}

func TestEmpty(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "---\n"} {
		if _, err := Parse("e.yml", []byte(src)); !hasCode(err, CodeMissingField) {
			t.Errorf("Parse(%q) error %v, want %s", src, err, CodeMissingField)
		}
	}
}

// TestEveryCodeCovered checks that the golden bad files and the tests above
// exercise every diagnostic code.
func TestEveryCodeCovered(t *testing.T) {
	all := []string{CodeYAMLSyntax, CodeFileTooLarge, CodeTooComplex, CodeMultipleDocuments, CodeBadVersion,
		CodeUnknownKey, CodeDuplicateKey, CodeWrongType, CodeMissingField, CodeBadValue, CodeBadName,
		CodeReservedName, CodeDuplicateName, CodeUnknownNeed, CodeCycle, CodeBadGlob, CodeBadDuration,
		CodeBadMatrix, CodeMatrixTooLarge, CodeUnsupported, CodeDuplicateNeed, CodeTimeoutExceedsStage, CodeStatusWithoutNeeds, CodeUnexpanded}
	files, _ := filepath.Glob("testdata/*/*")
	var text strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, ".diag") || strings.HasSuffix(f, ".plan.json") {
			b, _ := os.ReadFile(f)
			text.Write(b)
		}
	}
	doc, err := os.ReadFile("../docs/pipeline.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if !strings.Contains(string(doc), "| `"+c+"` |") {
			t.Errorf("docs/pipeline.md does not list code %s", c)
		}
		if c == CodeFileTooLarge {
			continue // TestLimits: a golden file of 1 MiB is not worth its weight
		}
		if !strings.Contains(text.String(), ": "+c+": ") {
			t.Errorf("no golden file shows code %s", c)
		}
	}
}
