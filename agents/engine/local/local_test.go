package local

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/engine/enginetest"
	"github.com/runnel-ci/runnel/pipeline"
)

func newEngine(t *testing.T) (*Engine, enginetest.Config) {
	root := t.TempDir()
	e := New(Options{Root: root, StopGrace: time.Second})
	return e, enginetest.Config{
		Engine: e,
		Grace:  time.Second,
		AfterTeardown: func(t *testing.T, s *engine.Spec) {
			if _, err := os.Stat(e.Workspace(s)); !os.IsNotExist(err) {
				t.Errorf("workspace after Teardown: got %v, want not exist", err)
			}
		},
	}
}

func TestContract(t *testing.T) {
	_, c := newEngine(t)
	enginetest.Run(t, c)
}

func TestServicesUnsupported(t *testing.T) {
	e, _ := newEngine(t)
	s := enginetest.NewSpec(t, "", nil, "")
	s.Stage.Services = []pipeline.Service{{Name: "db", Image: "postgres"}}
	err := e.Setup(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), `"db"`) {
		t.Fatalf("got %v, want an error naming service \"db\"", err)
	}
}

func TestMinimalHostEnv(t *testing.T) {
	t.Setenv("RUNNEL_TEST_NOT_PASSED", "x")
	t.Setenv("RUNNEL_TEST_PASSED", "y")
	e := New(Options{Root: t.TempDir(), PassEnv: []string{"RUNNEL_TEST_PASSED"}})
	c := enginetest.Config{Engine: e}
	s := enginetest.NewSpec(t, "", nil, "")
	enginetest.SetUp(t, c, s)
	code, out, err := enginetest.RunStep(context.Background(), t, c, s, `echo "[$RUNNEL_TEST_NOT_PASSED][$RUNNEL_TEST_PASSED]"; test -n "$PATH"`, nil)
	if want := "[][y]\n"; err != nil || code != 0 || out != want {
		t.Fatalf("got %d, %v, %q, want 0, nil, %q", code, err, out, want)
	}
}

func TestLeftoverProcessesEnd(t *testing.T) {
	// A background process that keeps the output pipe open must not keep
	// Run from returning.
	_, c := newEngine(t)
	s := enginetest.NewSpec(t, "", nil, "")
	enginetest.SetUp(t, c, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, _, err := enginetest.RunStep(ctx, t, c, s, "sleep 1000 & echo bg", nil)
	if err != nil || code != 0 {
		t.Fatalf("got %d, %v, want 0, nil", code, err)
	}
}

func TestOutputToFile(t *testing.T) {
	// A file as out is handed to the step directly; both streams land in it.
	_, c := newEngine(t)
	s := enginetest.NewSpec(t, "", nil, "")
	enginetest.SetUp(t, c, s)
	f, err := os.Create(t.TempDir() + "/out.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code, err := c.Engine.Run(context.Background(), s, &pipeline.Step{Name: "x", Run: "echo one; echo two >&2"}, f)
	if err != nil || code != 0 {
		t.Fatalf("got %d, %v, want 0, nil", code, err)
	}
	b, err := os.ReadFile(f.Name())
	if want := "one\ntwo\n"; err != nil || string(b) != want {
		t.Fatalf("got %q, %v, want %q", b, err, want)
	}
}
