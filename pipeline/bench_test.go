package pipeline

import (
	"fmt"
	"os"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	src, err := os.ReadFile("testdata/good/realistic.pipeline.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Parse("realistic.pipeline.yml", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlan(b *testing.B) {
	p, err := ParseFile("testdata/good/realistic.pipeline.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Plan(defaultEvent); err != nil {
			b.Fatal(err)
		}
	}
}

// largePipeline returns a file just under MaxFileSize: a chain of stages,
// each needing the one before, in reverse file order (the worst case for
// the ordering).
func largePipeline() []byte {
	var b []byte
	b = append(b, "version: 1\nstages:\n"...)
	for i := 0; ; i++ {
		st := fmt.Sprintf("  s%d:\n    needs: [s%d]\n    steps:\n      - {name: a, run: echo %d}\n", i, i+1, i)
		if len(b)+len(st)+100 > MaxFileSize {
			return fmt.Appendf(b, "  s%d:\n    steps: [{name: a, run: a}]\n", i)
		}
		b = append(b, st...)
	}
}

func BenchmarkParseLarge(b *testing.B) {
	src := largePipeline()
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Parse("large.yml", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanLarge(b *testing.B) {
	p, err := Parse("large.yml", largePipeline())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Plan(defaultEvent); err != nil {
			b.Fatal(err)
		}
	}
}
