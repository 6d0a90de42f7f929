package transfer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/local"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/agents/transfer"
	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/artifact/fs"
	"github.com/runnel-ci/runnel/pipeline"
)

// rig runs stages on the local engine with a Local remote on a
// filesystem store, as `runnel run --backend local` does.
type rig struct {
	t      *testing.T
	store  *fs.Store
	remote *transfer.Local
	tr     *transfer.Transfer
	x      *stage.Executor
	logs   *logs
	src    string // the source tree every stage starts from
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	store, err := fs.New(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	eng := local.New(local.Options{Root: filepath.Join(dir, "ws"), StopGrace: time.Second})
	if err := os.MkdirAll(filepath.Join(dir, "ws"), 0o700); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, store: store, logs: &logs{m: map[string]*strings.Builder{}}, src: filepath.Join(dir, "src")}
	if err := os.MkdirAll(r.src, 0o755); err != nil {
		t.Fatal(err)
	}
	r.remote = &transfer.Local{Store: store, RunID: "run1", Scope: "repo"}
	r.tr = &transfer.Transfer{Files: eng, Remote: r.remote, TempDir: t.TempDir(),
		Fetcher: &artifact.Fetcher{Dir: filepath.Join(dir, "fetch"), Client: transfer.FetchClient()}}
	r.x = &stage.Executor{Engine: eng, Transfer: r.tr, Output: r.logs.output}
	return r
}

// run runs st (one step per script) and returns its result and log.
func (r *rig) run(st *pipeline.Stage) (stage.Result, string) {
	r.t.Helper()
	res := r.x.Run(context.Background(), &engine.Spec{RunID: "run1", Attempt: 1, Stage: st, Source: r.src})
	return res, r.logs.of(st.ID)
}

func stageOf(id string, scripts ...string) *pipeline.Stage {
	st := &pipeline.Stage{ID: id, Name: id, Timeout: pipeline.Duration(time.Minute)}
	for i, s := range scripts {
		st.Steps = append(st.Steps, &pipeline.Step{Name: fmt.Sprintf("s%d", i+1), Run: s})
	}
	return st
}

// logs keeps every stage's output, all steps together, in order.
type logs struct {
	mu sync.Mutex
	m  map[string]*strings.Builder
}

func (l *logs) output(st *pipeline.Stage, _ *pipeline.Step, _ int) io.Writer {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m[st.ID] == nil {
		l.m[st.ID] = &strings.Builder{}
	}
	return lockedWriter{l, l.m[st.ID]}
}

func (l *logs) of(id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.m[id]; b != nil {
		s := b.String()
		b.Reset()
		return s
	}
	return ""
}

type lockedWriter struct {
	l *logs
	b *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	return w.b.Write(p)
}

func mustContain(t *testing.T, log string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
}
