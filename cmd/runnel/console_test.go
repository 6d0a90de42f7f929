package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// TestConsoleLinesDoNotInterleave writes partial lines from several
// "stages" at once; every line on the console must be whole and carry its
// own prefix.
func TestConsoleLinesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer
	c := newConsole(&buf, nil)
	var wg sync.WaitGroup
	const stages, lines = 4, 200
	for i := range stages {
		st := &pipeline.Stage{ID: fmt.Sprintf("s%d", i)}
		step := &pipeline.Step{Name: "x"}
		wg.Go(func() {
			w := c.stepOutput(st, step, 1)
			for j := range lines {
				// Each line in three writes; the last line is unterminated.
				fmt.Fprintf(w, "%s-", st.ID)
				fmt.Fprintf(w, "%d", j)
				if j < lines-1 {
					io.WriteString(w, "\n")
				}
			}
			w.(io.Closer).Close()
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != stages*lines {
		t.Fatalf("got %d lines, want %d", len(got), stages*lines)
	}
	next := map[string]int{}
	for _, line := range got {
		prefix, rest, ok := strings.Cut(line, "/x | ")
		if !ok {
			t.Fatalf("line without prefix: %q", line)
		}
		num, ok := strings.CutPrefix(rest, prefix+"-")
		if !ok {
			t.Fatalf("mixed line: %q", line)
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			t.Fatalf("mixed line: %q", line)
		}
		if n != next[prefix] {
			t.Fatalf("stage %s: got line %d, want %d", prefix, n, next[prefix])
		}
		next[prefix]++
	}
}

func TestConsoleColor(t *testing.T) {
	var buf bytes.Buffer
	c := newConsole(&buf, nil)
	if c.color {
		t.Fatal("colour on for a bytes.Buffer, want off (not a terminal)")
	}
	c.color = true // as on a terminal
	w := c.stepOutput(&pipeline.Stage{ID: "a"}, &pipeline.Step{Name: "s"}, 1)
	io.WriteString(w, "hi\n")
	w.(io.Closer).Close()
	w = c.stepOutput(&pipeline.Stage{ID: "b"}, &pipeline.Step{Name: "s"}, 1)
	io.WriteString(w, "ho\n")
	w.(io.Closer).Close()
	want := "\x1b[36ma/s | \x1b[0mhi\n\x1b[33mb/s | \x1b[0mho\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestSummaryTable(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res := stage.RunResult{Status: rules.Failure, Stages: []stage.Result{
		{StageID: "lint", Status: rules.Success, Started: t0, Finished: t0.Add(3 * time.Second), Steps: []stage.StepResult{
			{Name: "vet", Status: rules.Failure, AllowedFailure: true, Attempts: 1, Started: t0, Finished: t0.Add(1500 * time.Millisecond)},
		}},
		{StageID: "test", Status: rules.Skipped, Steps: []stage.StepResult{{Name: "unit", Status: rules.Skipped}}},
	}}
	var buf bytes.Buffer
	if err := writeSummary(&buf, res); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"STAGE  STEP  STATUS             ATTEMPTS  DURATION",
		"lint         success                      3s",
		"       vet   failure (allowed)  1         1.5s",
		"test         skipped                      ",
		"       unit  skipped                      ",
		"run FAILURE",
		"",
	}, "\n")
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}
