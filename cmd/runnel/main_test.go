package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// binary is the runnel binary built once for the tests, which run it as a
// real process: exit codes, signals and stdout are part of what is tested.
var binary string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "runnel-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "runnel")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

type result struct {
	code           int
	stdout, stderr string
}

// runnel runs the binary in dir with args and returns its exit code and
// output.
func runnel(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run runnel %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

func TestLint(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
	}{
		{
			name:     "every mistake with its position",
			args:     []string{"lint", "testdata/bad.pipeline.yml"},
			wantCode: 1,
			wantOut: []string{
				`testdata/bad.pipeline.yml:1:10: bad-version: version must be 1, got an integer "2"`,
				`testdata/bad.pipeline.yml:5:5: unknown-key: unknown stage key "imagee" (did you mean "image"?)`,
				`testdata/bad.pipeline.yml:9:18: bad-duration: timeout "soon" is not a positive duration like 30s, 10m or 1h30m`,
				`testdata/bad.pipeline.yml:11:13: unknown-need: stage test needs "biuld", which is not a stage (did you mean "build"?)`,
				`testdata/bad.pipeline.yml:13:9: missing-field: step has no name`,
			},
		},
		{
			name:     "warnings only",
			args:     []string{"lint", "testdata/warn.pipeline.yml"},
			wantCode: 0,
			wantOut: []string{
				`testdata/warn.pipeline.yml:9:18: warning: timeout-exceeds-stage: step "compile" timeout 5m0s exceeds the stage timeout 1m0s`,
			},
		},
		{
			name:     "env references that will not expand",
			args:     []string{"lint", "testdata/env.pipeline.yml"},
			wantCode: 0,
			wantOut: []string{
				`testdata/env.pipeline.yml:8:15: warning: unexpanded-variable: $MATRIX_ARCH is not expanded in env values; write ${MATRIX_ARCH}`,
				`testdata/env.pipeline.yml:9:12: warning: unexpanded-variable: ${GOPATH} will not expand: GOPATH is not one of Runnel's (RUNNEL_*, CI) or the stage's matrix variables; it stays as written`,
			},
		},
		{
			name:     "container requests without permission",
			args:     []string{"lint", "testdata/container.pipeline.yml"},
			wantCode: 1,
			wantOut: []string{
				`testdata/container.pipeline.yml:6:7: not-allowed: stage build: privileged: true needs the container permission privileged, which this repository does not have (an admin grants it with runnel repo update REPO --allow-container privileged)`,
				`testdata/container.pipeline.yml:7:16: not-allowed: stage build: network: host needs the container permission host-network, which this repository does not have (an admin grants it with runnel repo update REPO --allow-container host-network)`,
				`testdata/container.pipeline.yml:12:21: not-allowed: step docker: volume "/var/run/docker.sock:/var/run/docker.sock" needs the container permission docker-socket, which this repository does not have (an admin grants it with runnel repo update REPO --allow-container docker-socket)`,
				`testdata/container.pipeline.yml:12:64: not-allowed: step docker: volume "/home:/home" needs the container permission host-mounts, which this repository does not have (an admin grants it with runnel repo update REPO --allow-container host-mounts)`,
			},
		},
		{
			name:     "container requests granted",
			args:     []string{"lint", "--allow-container", "privileged,host-network", "--allow-container", "docker-socket,host-mounts", "testdata/container.pipeline.yml"},
			wantCode: 0,
			wantOut:  []string{},
		},
		{name: "unknown container permission", args: []string{"lint", "--allow-container", "root", "testdata/container.pipeline.yml"}, wantCode: 2},
		{
			name:     "several files",
			args:     []string{"lint", "../../examples/demo/.pipeline.yml", "testdata/warn.pipeline.yml", "testdata/bad.pipeline.yml"},
			wantCode: 1,
		},
		{name: "clean files", args: []string{"lint", "../../examples/demo/.pipeline.yml", "../../examples/failing/.pipeline.yml"}, wantCode: 0, wantOut: []string{}},
		{name: "missing file", args: []string{"lint", "testdata/nope.yml"}, wantCode: 2},
		{name: "unknown flag", args: []string{"lint", "--nope"}, wantCode: 2},
		{name: "unknown command", args: []string{"nope"}, wantCode: 2},
		{name: "run takes no arguments", args: []string{"run", "extra"}, wantCode: 2},
		{name: "bad backend", args: []string{"run", "-C", "../../examples/demo", "--backend", "vm"}, wantCode: 2},
		{name: "bad env flag", args: []string{"run", "-C", "../../examples/demo", "--env", "NOEQUALS"}, wantCode: 2},
		{name: "bad pull policy", args: []string{"run", "-C", "../../examples/demo", "--pull", "sometimes"}, wantCode: 2},
		{name: "bad event", args: []string{"run", "-C", "../../examples/demo", "--event", "merge"}, wantCode: 2},
		{name: "pipeline with errors", args: []string{"run", "-f", "testdata/bad.pipeline.yml", "--backend", "local"}, wantCode: 1},
		{name: "unknown stage", args: []string{"run", "-C", "../../examples/demo", "--backend", "local", "--stage", "nope"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runnel(t, ".", tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			if tt.wantOut == nil {
				return
			}
			got := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
			if r.stdout == "" {
				got = []string{}
			}
			if strings.Join(got, "\n") != strings.Join(tt.wantOut, "\n") {
				t.Errorf("stdout:\ngot\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.wantOut, "\n"))
			}
		})
	}
}

func TestLintDefaultFile(t *testing.T) {
	r := runnel(t, "../../examples/demo", "lint")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("lint in examples/demo: got code %d stdout %q stderr %q, want 0 and no output", r.code, r.stdout, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := runnel(t, ".", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "runnel ") {
		t.Errorf("version: got code %d stdout %q, want 0 and 'runnel ...'", r.code, r.stdout)
	}
	bin := filepath.Join(t.TempDir(), "runnel")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "runnel v9.8.7\n"; got != want {
		t.Errorf("version with -ldflags: got %q, want %q", got, want)
	}
}

// stepWant is the expected outcome of one step in a summary.
type stepWant struct {
	status   rules.Status
	allowed  bool
	attempts int
}

// checkSummary compares the JSON summary of a run with want, stage by
// stage and step by step.
func checkSummary(t *testing.T, file string, wantRun rules.Status, want map[string]map[string]stepWant, wantStages map[string]rules.Status) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read summary: %v", err)
	}
	var res stage.RunResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("decode summary: %v\n%s", err, b)
	}
	if res.Status != wantRun {
		t.Errorf("run status: got %s, want %s", res.Status, wantRun)
	}
	seen := map[string]bool{}
	for _, sr := range res.Stages {
		seen[sr.StageID] = true
		ws, ok := wantStages[sr.StageID]
		if !ok {
			t.Errorf("unexpected stage %s", sr.StageID)
			continue
		}
		if sr.Status != ws {
			t.Errorf("stage %s: got %s, want %s (reason %q)", sr.StageID, sr.Status, ws, sr.Reason)
		}
		if len(sr.Steps) != len(want[sr.StageID]) {
			t.Errorf("stage %s: got %d steps, want %d", sr.StageID, len(sr.Steps), len(want[sr.StageID]))
		}
		for _, step := range sr.Steps {
			w, ok := want[sr.StageID][step.Name]
			if !ok {
				t.Errorf("unexpected step %s/%s", sr.StageID, step.Name)
				continue
			}
			got := stepWant{step.Status, step.AllowedFailure, step.Attempts}
			if got != w {
				t.Errorf("step %s/%s: got %+v, want %+v (reason %q)", sr.StageID, step.Name, got, w, step.Reason)
			}
		}
	}
	for id := range wantStages {
		if !seen[id] {
			t.Errorf("stage %s missing from the summary", id)
		}
	}
}

var (
	failingStages = map[string]rules.Status{
		"slow": "timeout", "quick": "success", "strict": "failure", "deploy": "skipped", "notify": "success",
	}
	failingSteps = map[string]map[string]stepWant{
		"slow":   {"hang": {"timeout", false, 1}, "never": {"skipped", false, 0}},
		"quick":  {"ok": {"success", false, 1}},
		"strict": {"exit4": {"failure", false, 1}},
		"deploy": {"ship": {"skipped", false, 0}},
		"notify": {"page": {"success", false, 1}},
	}
)

func TestRunFailingLocal(t *testing.T) {
	summary := filepath.Join(t.TempDir(), "summary.json")
	r := runnel(t, "../../examples/failing", "run", "--backend", "local", "--summary-json", summary)
	if r.code != 1 {
		t.Errorf("exit code: got %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	checkSummary(t, summary, rules.Failure, failingSteps, failingStages)
	for _, want := range []string{"quick/ok | quick\n", "notify/page | something upstream failed\n", "run FAILURE\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestRunDemoLocalWithoutServices(t *testing.T) {
	summary := filepath.Join(t.TempDir(), "summary.json")
	r := runnel(t, "../../examples/demo", "run", "--backend", "local", "--stage", "lint", "--stage", "build",
		"--env", "GREETING=hi", "--summary-json", summary)
	if r.code != 0 {
		t.Errorf("exit code: got %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	checkSummary(t, summary, rules.Success, map[string]map[string]stepWant{
		"lint":              {"shellcheck": {"success", false, 1}, "spelling": {"failure", true, 1}},
		"build[arch=amd64]": {"compile": {"success", false, 1}},
		"build[arch=arm64]": {"compile": {"success", false, 1}},
	}, map[string]rules.Status{"lint": "success", "build[arch=amd64]": "success", "build[arch=arm64]": "success"})
	for _, want := range []string{"build[arch=arm64]/compile | greet for arm64\n", "lint/spelling | spelling: 'recieve' in app/greet.sh\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	// The workspace is a copy: the source tree is left as it was.
	if _, err := os.Stat("../../examples/demo/out"); !os.IsNotExist(err) {
		t.Errorf("examples/demo/out: got %v, want not-exist (steps must not write to the source)", err)
	}
}

// TestRunEvent checks what `runnel run` tells the pipeline about the
// working tree: the git branch and commit by default, flags over them, and
// when filters applied to the result. Git facts arrive as env only: the
// commit message holds shell syntax that must come out verbatim.
func TestRunEvent(t *testing.T) {
	dir := t.TempDir()
	src := `version: 1
stages:
  show:
    image: runnel-test/busybox:latest
    steps:
      - name: env
        run: |
          echo "branch=$RUNNEL_BRANCH event=$RUNNEL_EVENT tag=$RUNNEL_TAG extra=$EXTRA"
          echo "commit=$RUNNEL_COMMIT"
          printf 'message=%s\n' "$RUNNEL_COMMIT_MESSAGE"
  release:
    image: runnel-test/busybox:latest
    when:
      event: tag
    steps:
      - name: ship
        run: echo "shipping $RUNNEL_TAG"
`
	if err := os.WriteFile(filepath.Join(dir, ".pipeline.yml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	// Not a git repository yet: the branch defaults to main.
	r := runnel(t, dir, "run", "--backend", "local")
	if r.code != 0 || !strings.Contains(r.stdout, "show/env | branch=main event=push tag= extra=\n") {
		t.Errorf("outside git: got code %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	git("init", "-q", "-b", "feature/x")
	git("add", ".")
	msg := "fix: $(touch pwned) `id` ; \"quoted\""
	git("commit", "-q", "-m", msg)
	sha := git("rev-parse", "HEAD")

	r = runnel(t, dir, "run", "--backend", "local", "--env", "EXTRA=a b")
	for _, want := range []string{
		"show/env | branch=feature/x event=push tag= extra=a b\n",
		"show/env | commit=" + sha + "\n",
		"show/env | message=" + msg + "\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "release/") {
		t.Errorf("release ran for a push:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); !os.IsNotExist(err) {
		t.Errorf("the commit message was executed")
	}

	r = runnel(t, dir, "run", "--backend", "local", "--tag", "v1.0.0", "--branch", "main")
	for _, want := range []string{"show/env | branch=main event=tag tag=v1.0.0 extra=\n", "release/ship | shipping v1.0.0\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--tag: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestRunNothingToDo(t *testing.T) {
	dir := t.TempDir()
	src := "version: 1\nwhen:\n  branch: main\nstages:\n  s:\n    image: x\n    steps:\n      - name: a\n        run: 'false'\n"
	if err := os.WriteFile(filepath.Join(dir, ".pipeline.yml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runnel(t, dir, "run", "--backend", "local", "--branch", "dev")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to run") {
		t.Errorf("got code %d stdout %q stderr %q, want 0 and 'nothing to run'", r.code, r.stdout, r.stderr)
	}
}
