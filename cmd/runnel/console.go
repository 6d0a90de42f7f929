package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/runnel-ci/runnel/agents/logs"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// console is the terminal of `runnel run`: step output of stages running in
// parallel, each line prefixed with stage/step, plus progress lines and the
// final summary. Whole lines are written under one lock so that lines of
// different stages never interleave mid-line.
type console struct {
	mu     sync.Mutex
	w      io.Writer
	color  bool
	colors map[string]int // stage ID -> SGR colour
	// secrets are masked in every step's output (--secrets-file, and
	// values steps register with ::add-mask::).
	secrets *logs.Set
}

// stageColors are ANSI SGR foreground colours, picked per stage in turn.
var stageColors = []int{36, 33, 35, 32, 34, 96, 93, 95, 92, 94}

func newConsole(w io.Writer, env map[string]string) *console {
	return &console{w: w, color: useColor(w, env), colors: map[string]int{}, secrets: logs.NewSet()}
}

// useColor reports whether w is a terminal that wants colour: NO_COLOR
// (https://no-color.org) turns it off, as does TERM=dumb.
func useColor(w io.Writer, env map[string]string) bool {
	if env["NO_COLOR"] != "" || env["TERM"] == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func (c *console) colorOf(stageID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.color {
		return 0
	}
	col, ok := c.colors[stageID]
	if !ok {
		col = stageColors[len(c.colors)%len(stageColors)]
		c.colors[stageID] = col
	}
	return col
}

func (c *console) writeLine(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Write(b) //nolint:errcheck // a broken terminal must not fail the run
}

func (c *console) printf(format string, args ...any) {
	c.writeLine([]byte(fmt.Sprintf(format, args...)))
}

// stepOutput returns the writer for one attempt of a step: its output gets
// the stage/step prefix and is written to the console line by line.
func (c *console) stepOutput(st *pipeline.Stage, step *pipeline.Step, _ int) io.Writer {
	sink := &lineSink{c: c}
	prefix := st.ID + "/" + step.Name + " | "
	var chain io.WriteCloser
	// Masking runs before prefixing, so a prefix cannot hide a secret.
	if col := c.colorOf(st.ID); col != 0 {
		chain = logs.Chain(sink, logs.AddMask(c.secrets), logs.MaskSet(c.secrets), logs.ColorPrefix(prefix, col))
	} else {
		chain = logs.Chain(sink, logs.AddMask(c.secrets), logs.MaskSet(c.secrets), logs.Prefix(prefix))
	}
	return &closeBoth{WriteCloser: chain, after: sink}
}

// lineSink buffers a partial line and hands complete lines to the console.
type lineSink struct {
	c   *console
	buf []byte
}

func (s *lineSink) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	if i := bytes.LastIndexByte(s.buf, '\n'); i >= 0 {
		s.c.writeLine(s.buf[:i+1])
		s.buf = append(s.buf[:0], s.buf[i+1:]...)
	}
	return len(p), nil
}

func (s *lineSink) Close() error {
	if len(s.buf) > 0 {
		s.c.writeLine(append(s.buf, '\n'))
		s.buf = nil
	}
	return nil
}

type closeBoth struct {
	io.WriteCloser
	after io.Closer
}

func (c *closeBoth) Close() error {
	err := c.WriteCloser.Close()
	if err2 := c.after.Close(); err == nil {
		err = err2
	}
	return err
}

// StepStarted implements stage.Reporter.
func (c *console) StepStarted(st *pipeline.Stage, step *pipeline.Step, attempt int) {
	if attempt > 1 {
		c.printf("--> %s/%s: retry, attempt %d of %d\n", st.ID, step.Name, attempt, step.Retry.Limit+1)
	}
}

// StepFinished implements stage.Reporter.
func (c *console) StepFinished(st *pipeline.Stage, step *pipeline.Step, r stage.StepResult) {
	if r.Status == rules.Skipped {
		return
	}
	c.printf("--> %s/%s: %s%s\n", st.ID, step.Name, statusText(r.Status, r.AllowedFailure), reasonText(r.Reason))
}

func (c *console) stageStarted(st *pipeline.Stage) {
	c.printf("==> %s: started\n", st.ID)
}

func (c *console) stageFinished(st *pipeline.Stage, r stage.Result) {
	c.printf("==> %s: %s%s\n", st.ID, r.Status, reasonText(r.Reason))
}

func statusText(s rules.Status, allowed bool) string {
	if allowed {
		return string(s) + " (allowed)"
	}
	return string(s)
}

func reasonText(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

// writeSummary prints the table of every stage and step.
func writeSummary(w io.Writer, res stage.RunResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tSTEP\tSTATUS\tATTEMPTS\tDURATION")
	for _, sr := range res.Stages {
		fmt.Fprintf(tw, "%s\t\t%s\t\t%s\n", sr.StageID, sr.Status, duration(sr.Duration()))
		for _, st := range sr.Steps {
			attempts := ""
			if st.Attempts > 0 {
				attempts = fmt.Sprint(st.Attempts)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\n", st.Name, statusText(st.Status, st.AllowedFailure), attempts, duration(st.Duration()))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "run %s\n", strings.ToUpper(string(res.Status)))
	return err
}

func duration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.Round(time.Millisecond).String()
}

// writeSummaryJSON writes res as JSON to file, for scripts and tests.
func writeSummaryJSON(file string, res stage.RunResult) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}
