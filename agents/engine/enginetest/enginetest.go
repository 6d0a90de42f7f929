package enginetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
)

// Config describes the engine under test.
type Config struct {
	Engine engine.Engine
	Image  string // stage image (ignored by engines without images)
	// Grace is the engine's SIGTERM-to-SIGKILL grace period; stop tests
	// allow Grace plus a slack for it.
	Grace time.Duration
	// AfterTeardown, when set, checks that nothing of s is left.
	AfterTeardown func(t *testing.T, s *engine.Spec)
}

var seq struct {
	sync.Mutex
	n int
}

// NewSpec returns a Spec with a run ID unique to this test process.
func NewSpec(t *testing.T, image string, env map[string]string, source string) *engine.Spec {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	return &engine.Spec{
		RunID:   fmt.Sprintf("enginetest-%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6, n),
		Attempt: 1,
		Stage:   &pipeline.Stage{ID: "test[case=" + sanitize(t.Name()) + "]", Name: "test", Image: image, Env: env},
		Source:  source,
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// SetUp runs Setup for s and registers Teardown (and the AfterTeardown
// check) as cleanup.
func SetUp(t *testing.T, c Config, s *engine.Spec) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Engine.Teardown(ctx, s); err != nil {
			t.Errorf("Teardown: %v", err)
		}
		if err := c.Engine.Teardown(ctx, s); err != nil {
			t.Errorf("second Teardown: got %v, want nil (idempotent)", err)
		}
		if c.AfterTeardown != nil {
			c.AfterTeardown(t, s)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Engine.Setup(ctx, s); err != nil {
		t.Fatalf("Setup: %v", err)
	}
}

// RunStep runs script as a step and returns its exit code and output.
func RunStep(ctx context.Context, t *testing.T, c Config, s *engine.Spec, script string, env map[string]string) (int, string, error) {
	t.Helper()
	var out syncBuffer
	code, err := c.Engine.Run(ctx, s, &pipeline.Step{Name: "step", Run: script, Env: env}, &out)
	return code, out.String(), err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Run runs the contract tests.
func Run(t *testing.T, c Config) {
	t.Run("ExitCodes", func(t *testing.T) { testExitCodes(t, c) })
	t.Run("Env", func(t *testing.T) { testEnv(t, c) })
	t.Run("Output", func(t *testing.T) { testOutput(t, c) })
	t.Run("Workspace", func(t *testing.T) { testWorkspace(t, c) })
	t.Run("Timeout", func(t *testing.T) { testStop(t, c, false) })
	t.Run("Cancel", func(t *testing.T) { testStop(t, c, true) })
	if _, ok := c.Engine.(engine.Files); ok {
		t.Run("Files", func(t *testing.T) { testFiles(t, c) })
	}
}

func testExitCodes(t *testing.T, c Config) {
	s := NewSpec(t, c.Image, nil, "")
	SetUp(t, c, s)
	for _, tt := range []struct {
		script string
		want   int
	}{
		{"true", 0},
		{"exit 3", 3},
		{"false; echo not reached", 1}, // sh -e
	} {
		code, out, err := RunStep(context.Background(), t, c, s, tt.script, nil)
		if err != nil || code != tt.want {
			t.Errorf("%q: got %d, %v, want %d, nil (output %q)", tt.script, code, err, tt.want, out)
		}
		if strings.Contains(out, "not reached") {
			t.Errorf("%q: script went on after a failing command: %q", tt.script, out)
		}
	}
}

func testEnv(t *testing.T, c Config) {
	tricky := "it's \"quoted\" $(touch pwned) `touch pwned2` ${HOME}\nline two\n"
	s := NewSpec(t, c.Image, map[string]string{"STAGE_ONLY": "s", "BOTH": "stage", "TRICKY": tricky}, "")
	SetUp(t, c, s)
	code, out, err := RunStep(context.Background(), t, c, s,
		`printf '%s|%s|%s|' "$STAGE_ONLY" "$BOTH" "$STEP_ONLY"; printf '%s' "$TRICKY"; ls pwned pwned2 2>/dev/null || true`,
		map[string]string{"BOTH": "step", "STEP_ONLY": "p"})
	if err != nil || code != 0 {
		t.Fatalf("got %d, %v, want 0, nil (output %q)", code, err, out)
	}
	if want := "s|step|p|" + tricky; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func testOutput(t *testing.T, c Config) {
	s := NewSpec(t, c.Image, nil, "")
	SetUp(t, c, s)
	code, out, err := RunStep(context.Background(), t, c, s, "echo to-stdout; echo to-stderr >&2; seq 1 2000 | tail -n 1", nil)
	if err != nil || code != 0 {
		t.Fatalf("got %d, %v, want 0, nil", code, err)
	}
	for _, want := range []string{"to-stdout\n", "to-stderr\n", "2000\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

func testWorkspace(t *testing.T, c Config) {
	src := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside.txt")
	must(t, os.WriteFile(outside, []byte("host secret\n"), 0o600))
	must(t, os.MkdirAll(filepath.Join(src, "dir"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "dir", "a.txt"), []byte("from source\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho script ran\n"), 0o755))
	must(t, os.Symlink(outside, filepath.Join(src, "link")))
	s := NewSpec(t, c.Image, nil, src)
	SetUp(t, c, s)

	steps := []struct {
		script string
		want   string
	}{
		{`cat dir/a.txt; ./run.sh; echo made-by-step-1 > b.txt; if [ -L link ]; then echo link-is-a-link; fi`,
			"from source\nscript ran\nlink-is-a-link\n"},
		{`cat b.txt`, "made-by-step-1\n"},
		{`rm -rf ./* ./.[!.]* && ls -A | wc -l | tr -d ' '`, "0\n"},
	}
	for i, st := range steps {
		code, out, err := RunStep(context.Background(), t, c, s, st.script, nil)
		if err != nil || code != 0 || out != st.want {
			t.Errorf("step %d: got %d, %v, %q, want 0, nil, %q", i+1, code, err, out, st.want)
		}
	}
	for _, p := range []string{"dir/a.txt", "run.sh", "link"} {
		if _, err := os.Lstat(filepath.Join(src, p)); err != nil {
			t.Errorf("source changed by a step: %v", err)
		}
	}
	if _, err := os.Lstat(filepath.Join(src, "b.txt")); err == nil {
		t.Errorf("source gained b.txt written by a step")
	}
}

// testStop checks that a step that ignores SIGTERM is killed once the
// context ends, within the grace period plus slack.
//
// A deadline is only meaningful once the step runs, and on a loaded
// machine creating and starting the container can take longer than a
// short deadline. A deadline that ends during start must still be reported
// as a timeout; the case is then tried again with a longer deadline, so the
// stop of a running step is always what is finally checked.
func testStop(t *testing.T, c Config, cancelIt bool) {
	if cancelIt {
		if !stopOnce(t, c, context.Canceled, 0) {
			t.Fatal("step ended before it started, without a deadline")
		}
		return
	}
	for _, d := range []time.Duration{2 * time.Second, 8 * time.Second, 32 * time.Second} {
		if stopOnce(t, c, context.DeadlineExceeded, d) {
			return
		}
		t.Logf("deadline of %v ended while the step was starting; trying a longer one", d)
	}
	t.Fatal("the step never started within a 32s deadline")
}

// stopOnce runs the sleeping step once in a fresh spec, ending its context
// by cancel (deadline 0) or by the deadline. It reports false when the step
// ended before it started, which is allowed only for a deadline and only
// when the engine reported that deadline.
func stopOnce(t *testing.T, c Config, want error, deadline time.Duration) bool {
	s := NewSpec(t, c.Image, nil, "")
	SetUp(t, c, s)
	var (
		ctx    context.Context
		cancel context.CancelFunc
	)
	if deadline == 0 {
		ctx, cancel = context.WithCancel(context.Background())
	} else {
		ctx, cancel = context.WithTimeout(context.Background(), deadline)
	}
	defer cancel()
	started := make(chan struct{})
	out := &signalWriter{want: "started", ch: started}
	step := &pipeline.Step{Name: "sleep", Run: "trap '' TERM; echo started; sleep 1000; echo survived"}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := c.Engine.Run(ctx, s, step, out)
		done <- result{code, err}
	}()
	select {
	case <-started:
	case r := <-done:
		if deadline == 0 || !errors.Is(r.err, want) || r.code != engine.ExitUnknown {
			t.Fatalf("step ended early: %d, %v, output %q", r.code, r.err, out.String())
		}
		return false
	case <-time.After(60 * time.Second):
		t.Fatal("step did not start within 60s")
	}
	stopAt := time.Now()
	if deadline == 0 {
		cancel()
	} else if d, ok := ctx.Deadline(); ok {
		stopAt = d
	}
	limit := c.Grace + 10*time.Second
	select {
	case r := <-done:
		if !errors.Is(r.err, want) {
			t.Errorf("got error %v, want one wrapping %v", r.err, want)
		}
		if r.code != engine.ExitUnknown {
			t.Errorf("got exit code %d, want %d", r.code, engine.ExitUnknown)
		}
		if strings.Contains(out.String(), "survived") {
			t.Errorf("step went on after being stopped: %q", out.String())
		}
	case <-time.After(time.Until(stopAt) + limit):
		t.Fatalf("step still running %v after the context ended", limit)
	}
	return true
}

type signalWriter struct {
	syncBuffer
	want string
	ch   chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(func() { close(w.ch) })
	}
	return n, err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
