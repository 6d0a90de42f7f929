package workspace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// logSink keeps what a stage reports, as the agent's sink would send it.
type logSink struct {
	mu       sync.Mutex
	logs     map[string]*bytes.Buffer
	statuses map[string]rules.Status
}

func (s *logSink) StepStarted(string) {}
func (s *logSink) StepFinished(step string, st rules.Status, _, _ int, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses[step] = st
}
func (s *logSink) Deploying(string, wire.DeployProgress) {}
func (s *logSink) Log(step string) io.WriteCloser {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := &bytes.Buffer{}
	s.logs[step] = b
	return nopCloser{b}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// TestStepLogMax: a step printing past the cap keeps running to its end
// (its last command's effect is seen by the next step) while its log
// stops at the cap with a line saying so; the next step's log has its own
// cap.
func TestStepLogMax(t *testing.T) {
	const limit = 1000
	st := &pipeline.Stage{ID: "build", Name: "build", Steps: []*pipeline.Step{
		{Name: "chatty", Run: "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done; echo kept-running > marker"},
		{Name: "after", Run: "cat marker"},
	}}
	r := &StageRunner{Engine: local.New(local.Options{Root: t.TempDir()}), WorkDir: t.TempDir(), StepLogMax: limit}
	sink := &logSink{logs: map[string]*bytes.Buffer{}, statuses: map[string]rules.Status{}}
	res := r.RunStage(context.Background(), &wire.Job{RunID: "1", StageID: "build", Attempt: 1, Stage: st}, sink)
	if res.Status != rules.Success {
		t.Fatalf("stage: got %s (%s), want success", res.Status, res.Reason)
	}
	chatty := sink.logs["chatty"].String()
	want := fmt.Sprintf("\n[runnel: log truncated at %d bytes]\n", limit)
	if !strings.HasSuffix(chatty, want) || len(chatty) != limit+len(want) {
		t.Errorf("chatty log: got %d bytes ending %q, want %d bytes then %q", len(chatty), chatty[max(0, len(chatty)-60):], limit, want)
	}
	if got := sink.statuses["chatty"]; got != rules.Success {
		t.Errorf("chatty: got %s, want success", got)
	}
	if got := sink.logs["after"].String(); got != "kept-running\n" {
		t.Errorf("after log: got %q, want %q", got, "kept-running\n")
	}
}
