package runnel_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// prereqRig runs scripts/prereq.sh with a PATH of stand-ins only, so the
// test decides what the machine has and sees what the script would do.
type prereqRig struct {
	t    *testing.T
	bin  string
	dir  string
	env  []string
	log  string // what the stand-ins of apt-get and dockerd were asked
	bash string
}

func newPrereqRig(t *testing.T, commands ...string) *prereqRig {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &prereqRig{t: t, bin: filepath.Join(dir, "bin"), dir: dir, log: filepath.Join(dir, "calls.log"), bash: bash}
	if err := os.Mkdir(r.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		r.stub(c, "exit 0")
	}
	// apt-get and dockerd record their arguments; docker answers once
	// dockerd has "started".
	r.stub("apt-get", `echo "apt-get $*" >>`+r.log)
	r.stub("dockerd", `echo "dockerd" >>`+r.log+`; : >`+filepath.Join(dir, "engine"))
	r.stub("sleep", "exit 0")
	r.env = []string{"PATH=" + r.bin, "PREREQ_UID=1000", "BUSYBOX=" + filepath.Join(dir, "busybox"),
		"PREREQ_DOCKERD_LOG=" + filepath.Join(dir, "dockerd.log")}
	return r
}

func (r *prereqRig) stub(name, body string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.bin, name), []byte("#!"+r.bash+"\n"+body+"\n"), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// docker installs a docker CLI whose engine answers (up), or answers
// only once dockerd ran.
func (r *prereqRig) docker(up bool) {
	if up {
		r.stub("docker", "exit 0")
		return
	}
	r.stub("docker", `[ -e `+filepath.Join(r.dir, "engine")+` ]`)
}

func (r *prereqRig) busybox() {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, "busybox"), []byte("#!/bin/true\n"), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func (r *prereqRig) run(env ...string) (code int, stderr, calls string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bash, "scripts/prereq.sh")
	cmd.Env = append(append([]string{}, r.env...), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		r.t.Fatal(err)
	}
	b, _ := os.ReadFile(r.log)
	return cmd.ProcessState.ExitCode(), errb.String(), string(b)
}

// TestPrereq: `make test` on a machine that lacks parts stops at once
// naming each missing package (not deep inside a script), installs them
// instead when run as root, and only reports what makes tests skip
// outside CI.
func TestPrereq(t *testing.T) {
	t.Run("user, CI: every missing package named, nothing installed", func(t *testing.T) {
		r := newPrereqRig(t, "go", "git", "make")
		code, stderr, calls := r.run("CI=true")
		if code != 1 {
			t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
		for _, want := range []string{"make test cannot start: missing", "busybox-static", "docker.io", "chromium",
			"prometheus", "postgresql", "apt-get install -y busybox-static docker.io chromium prometheus postgresql"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
		if calls != "" {
			t.Errorf("got calls %q, want none (not root)", calls)
		}
	})
	t.Run("user, no CI: optional parts reported, the rest is there", func(t *testing.T) {
		r := newPrereqRig(t, "go", "git", "make")
		r.busybox()
		r.docker(true)
		code, stderr, _ := r.run()
		if code != 0 {
			t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
		}
		for _, want := range []string{"chromium (headless browser tests of the UI) missing: those tests will skip", "prometheus ("} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("user: engine not answering", func(t *testing.T) {
		r := newPrereqRig(t, "go", "git", "make", "chromium", "prometheus")
		r.busybox()
		r.docker(false)
		code, stderr, calls := r.run()
		if code != 1 || !strings.Contains(stderr, "no Docker engine answers") || calls != "" {
			t.Errorf("exit %d, calls %q, stderr:\n%s\nwant exit 1 naming the engine, no calls", code, calls, stderr)
		}
	})
	t.Run("root, CI: missing packages installed, dockerd started", func(t *testing.T) {
		r := newPrereqRig(t, "go", "git", "make", "prometheus", "pg_ctlcluster")
		r.docker(false)
		code, stderr, calls := r.run("CI=true", "PREREQ_UID=0")
		if code != 0 {
			t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
		}
		want := "apt-get update -qq\napt-get install -y -qq busybox-static chromium\ndockerd\n"
		if calls != want {
			t.Errorf("got calls\n%s\nwant\n%s", calls, want)
		}
	})
	t.Run("root: no Go toolchain is named, not installed", func(t *testing.T) {
		r := newPrereqRig(t, "git", "make")
		code, stderr, calls := r.run("PREREQ_UID=0")
		if code != 1 || !strings.Contains(stderr, "Go 1.26 toolchain") || calls != "" {
			t.Errorf("exit %d, calls %q, stderr:\n%s\nwant exit 1 naming Go, no calls", code, calls, stderr)
		}
	})
	t.Run("warn mode goes on", func(t *testing.T) {
		r := newPrereqRig(t, "go", "git", "make")
		code, stderr, _ := r.run("CI=true", "RUNNEL_PREREQ=warn")
		if code != 0 || !strings.Contains(stderr, "busybox-static") {
			t.Errorf("exit %d, stderr:\n%s\nwant 0 with the report", code, stderr)
		}
	})
}
