package pipeline

import (
	"strings"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	vars := map[string]string{
		"RUNNEL_COMMIT":         "abc123",
		"MATRIX_ARCH":           "arm64",
		"RUNNEL_COMMIT_MESSAGE": "fix ${RUNNEL_COMMIT} $(rm -rf /) $${X}",
		"EMPTY":                 "",
	}
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"", ""},
		{"${MATRIX_ARCH}", "arm64"},
		{"GOARCH=${MATRIX_ARCH}-${RUNNEL_COMMIT}", "GOARCH=arm64-abc123"},
		{"${RUNNEL_COMMIT}${RUNNEL_COMMIT}", "abc123abc123"},
		{"[${EMPTY}]", "[]"},
		// An untrusted value is inserted as data: never scanned again.
		{"msg: ${RUNNEL_COMMIT_MESSAGE}", "msg: fix ${RUNNEL_COMMIT} $(rm -rf /) $${X}"},
		// What does not expand stays as written.
		{"$MATRIX_ARCH", "$MATRIX_ARCH"},
		{"${UNKNOWN}", "${UNKNOWN}"},
		{"${not a name}", "${not a name}"},
		{"${1X}", "${1X}"},
		{"${", "${"},
		{"a ${MATRIX_ARCH", "a ${MATRIX_ARCH"},
		{"$", "$"},
		{"$$", "$$"},
		{"$1 $@ $$ $-", "$1 $@ $$ $-"},
		{"100$", "100$"},
		// $${ is a literal ${.
		{"$${MATRIX_ARCH}", "${MATRIX_ARCH}"},
		{"$$${MATRIX_ARCH}", "$${MATRIX_ARCH}"},
		{"${${MATRIX_ARCH}}", "${${MATRIX_ARCH}}"},
		{"héllo ${MATRIX_ARCH} wörld", "héllo arm64 wörld"},
	}
	for _, tt := range tests {
		if got := expandEnv(tt.in, vars); got != tt.want {
			t.Errorf("expandEnv(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestScanEnv(t *testing.T) {
	tests := []struct {
		in   string
		want []envToken
	}{
		{"a${B}c", []envToken{{tokText, "a", "", 0}, {tokRef, "${B}", "B", 1}, {tokText, "c", "", 5}}},
		{"$HOME/bin", []envToken{{tokBare, "$HOME", "HOME", 0}, {tokText, "/bin", "", 5}}},
		{"x ${a b}", []envToken{{tokText, "x ", "", 0}, {tokBad, "${a b}", "a b", 2}}},
		{"$${A}", []envToken{{tokEscape, "$${", "", 0}, {tokText, "A}", "", 3}}},
		{"a ${B", []envToken{{tokText, "a ", "", 0}, {tokOpen, "${B", "", 2}}},
		{"5$ $1", []envToken{{tokText, "5$ $1", "", 0}}},
	}
	for _, tt := range tests {
		got := scanEnv(tt.in)
		if len(got) != len(tt.want) {
			t.Errorf("scanEnv(%q) = %+v, want %+v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("scanEnv(%q)[%d] = %+v, want %+v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

// TestEnvWarnings: lint warns, at the reference, about what will not
// expand, and about nothing that will.
func TestEnvWarnings(t *testing.T) {
	tests := []struct {
		name, env string
		want      []string // "line:col: text in message"
	}{
		{"expands", `GOARCH: ${MATRIX_ARCH}-${ARCH}-${RUNNEL_COMMIT}-${RUNNEL_INPUT_CHANNEL}-${RUNNEL_SCHEDULE}-${CI}`, nil},
		{"escaped", `A: $${X} and $$ and 5$`, nil},
		{"bare known", `A: x $MATRIX_ARCH`, []string{"8:12: $MATRIX_ARCH is not expanded in env values; write ${MATRIX_ARCH}"}},
		{"bare other", `A: $HOME`, []string{"8:10: $HOME is not expanded: env values expand only"}},
		{"unknown", `A: ${GOPATH}/bin`, []string{"8:10: ${GOPATH} will not expand: GOPATH is not one of Runnel's"}},
		{"unknown runnel", `A: ${RUNNEL_NOPE}`, []string{"8:10: ${RUNNEL_NOPE} will not expand"}},
		{"undeclared input", `A: ${RUNNEL_INPUT_OTHER}`, []string{"8:10: ${RUNNEL_INPUT_OTHER} will not expand"}},
		{"malformed", `A: ${A-b}`, []string{"8:10: ${A-b} is not a variable reference"}},
		{"unterminated", `A: a ${B`, []string{"8:12: unterminated ${"}},
		{"quoted value points at the value", `A: "$HOME"`, []string{"8:10: $HOME is not expanded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "version: 1\ninputs:\n  channel: {type: string, default: x}\nstages:\n  build:\n    matrix: {arch: [amd64]}\n    env:\n      " + tt.env + "\n    steps: [{name: s, run: 'true'}]\n"
			p := mustParse(t, src)
			var got []string
			for _, w := range p.Warnings {
				if w.Code == CodeUnexpanded {
					got = append(got, w.String())
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got warnings %q, want %q", got, tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], "t.yml:"+w[:strings.Index(w, " ")]+" warning: unexpanded-variable: "+w[strings.Index(w, " ")+1:]) {
					t.Errorf("got %q, want it to contain %q", got[i], w)
				}
			}
		})
	}
}

// TestPipelineEnvWarnings: the pipeline's env may reference a matrix
// variable of any stage; it expands in the stages that have it.
func TestPipelineEnvWarnings(t *testing.T) {
	p := mustParse(t, `version: 1
env:
  A: ${MATRIX_OS}
  B: ${MATRIX_NOPE}
stages:
  one:
    matrix: {os: [linux]}
    steps: [{name: s, run: 'true'}]
  two:
    steps: [{name: s, run: 'true'}]
`)
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].String(), "t.yml:4:6: warning: unexpanded-variable: ${MATRIX_NOPE}") {
		t.Fatalf("got warnings %v, want one about ${MATRIX_NOPE} at 4:6", p.Warnings)
	}
	plan, err := p.Plan(Event{Kind: EventPush, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, st := range plan.Stages {
		got[st.ID] = st.Env["A"]
	}
	if got["one[os=linux]"] != "linux" || got["two"] != "${MATRIX_OS}" {
		t.Errorf("got A per stage %v, want linux in one[os=linux] and ${MATRIX_OS} as written in two", got)
	}
}

func FuzzExpandEnv(f *testing.F) {
	for _, s := range []string{"${A}", "$${A}", "$A ${", "${a b}", "x$", "${A}${B}$$"} {
		f.Add(s, "v${A}")
	}
	f.Fuzz(func(t *testing.T, s, v string) {
		var b strings.Builder
		for _, tok := range scanEnv(s) {
			b.WriteString(tok.text)
		}
		if b.String() != s {
			t.Fatalf("tokens of %q join to %q", s, b.String())
		}
		// With no variables, only the escape changes anything.
		if got, want := expandEnv(s, nil), expandEnv(s, map[string]string{"NOT_REFERENCED_": v}); got != want {
			t.Fatalf("expanding %q depends on an unreferenced variable: %q vs %q", s, got, want)
		}
		// A value is inserted once, as is.
		if got := expandEnv("${A}", map[string]string{"A": v}); got != v {
			t.Fatalf("expandEnv(${A}) with A=%q = %q", v, got)
		}
	})
}
