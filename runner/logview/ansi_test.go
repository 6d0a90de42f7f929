package logview

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestANSI(t *testing.T) {
	tests := []struct {
		name string
		in   []string // lines, converted in order by one converter
		want [][]Segment
	}{
		{"plain", []string{"hello"}, [][]Segment{{{Text: "hello"}}}},
		{"empty", []string{""}, [][]Segment{nil}},
		{"red then reset", []string{"\x1b[31mred\x1b[0m plain"}, [][]Segment{{{Text: "red", Class: "fg1"}, {Text: " plain"}}}},
		{"bold bright fg and bg", []string{"\x1b[1;92;44mx"}, [][]Segment{{{Text: "x", Class: "fg10 bg4 b"}}}},
		{"style carries to next line", []string{"\x1b[33mA", "B\x1b[m"}, [][]Segment{{{Text: "A", Class: "fg3"}}, {{Text: "B", Class: "fg3"}}}},
		{"256 colour basic", []string{"\x1b[38;5;9mx\x1b[39my"}, [][]Segment{{{Text: "x", Class: "fg9"}, {Text: "y"}}}},
		{"256 colour high dropped", []string{"\x1b[38;5;200;1mx"}, [][]Segment{{{Text: "x", Class: "b"}}}},
		{"truecolour dropped", []string{"\x1b[38;2;1;2;3;4mx"}, [][]Segment{{{Text: "x", Class: "u"}}}},
		{"cursor moves dropped", []string{"a\x1b[2K\x1b[1Gb"}, [][]Segment{{{Text: "ab"}}}},
		{"OSC title dropped", []string{"\x1b]0;title\x07ok"}, [][]Segment{{{Text: "ok"}}}},
		{"OSC with ST dropped", []string{"\x1b]8;;http://x\x1b\\link"}, [][]Segment{{{Text: "link"}}}},
		{"carriage return overwrites", []string{"10%\r50%\r100%"}, [][]Segment{{{Text: "100%"}}}},
		{"CRLF", []string{"line\r"}, [][]Segment{{{Text: "line"}}}},
		{"controls dropped, tab kept", []string{"a\x07\x08\tb\x00"}, [][]Segment{{{Text: "a\tb"}}}},
		{"invalid UTF-8", []string{"a\xffb"}, [][]Segment{{{Text: "a\uFFFDb"}}}},
		{"truncated escape", []string{"x\x1b[3"}, [][]Segment{{{Text: "x"}}}},
		{"html kept as text", []string{"<b>&</b>"}, [][]Segment{{{Text: "<b>&</b>"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewANSI()
			for i, l := range tt.in {
				if got := a.Line(l); !reflect.DeepEqual(got, tt.want[i]) {
					t.Errorf("line %d %q: got %#v, want %#v", i, l, got, tt.want[i])
				}
			}
		})
	}
}

var classRE = regexp.MustCompile(`^((fg|bg)([0-9]|1[0-5])|[bfiu])$`)

// FuzzANSI: whatever a log contains, the segments carry no escape or
// control bytes and only classes from the fixed set.
func FuzzANSI(f *testing.F) {
	for _, s := range []string{"\x1b[31mred", "\x1b]0;t\x07x", "a\rb", "\x1b[38;5;300m", "\x1b[38;2m", "\x1b", "\x1b[", "<script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := NewANSI()
		for _, l := range strings.Split(s, "\n") {
			for _, seg := range a.Line(l) {
				for _, r := range seg.Text {
					if r == 0x1b || r == '\r' || (r < 0x20 && r != '\t') || r == 0x7f {
						t.Fatalf("segment %q of %q holds control %U", seg.Text, l, r)
					}
				}
				if seg.Class == "" {
					continue
				}
				for _, c := range strings.Split(seg.Class, " ") {
					if !classRE.MatchString(c) {
						t.Fatalf("class %q of %q not in the fixed set", c, l)
					}
				}
			}
		}
	})
}

// BenchmarkANSI converts a typical coloured test log line by line.
func BenchmarkANSI(b *testing.B) {
	line := "\x1b[32m--- PASS\x1b[0m: TestSomething/with_a_subtest (0.01s) \x1b[1;33mwarning\x1b[0m: <some> & output"
	b.SetBytes(int64(len(line) + 1))
	a := NewANSI()
	for b.Loop() {
		_ = a.Line(line)
	}
}
