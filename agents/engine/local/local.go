package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
)

// Options configure an Engine. The zero value works.
type Options struct {
	// Root is the directory workspaces are made in; "" means os.TempDir().
	Root string
	// PassEnv names host environment variables handed to steps besides
	// PATH and HOME (which always are, with defaults when unset).
	PassEnv []string
	// StopGrace is how long a step has between SIGTERM and SIGKILL when
	// its context ends; 0 means 2s.
	StopGrace time.Duration
	Logger    *slog.Logger // nil means slog.Default()
}

// Engine runs steps on the host. It is safe for concurrent use.
type Engine struct {
	root    string
	hostEnv []string
	grace   time.Duration
	log     *slog.Logger
}

var _ engine.Engine = (*Engine)(nil)

// New returns an Engine.
func New(o Options) *Engine {
	e := &Engine{root: o.Root, grace: o.StopGrace, log: o.Logger}
	if e.root == "" {
		e.root = os.TempDir()
	}
	if e.grace <= 0 {
		e.grace = 2 * time.Second
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.hostEnv = append(e.hostEnv, "PATH="+getenv("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME="+getenv("HOME", "/"))
	for _, k := range o.PassEnv {
		if v, ok := os.LookupEnv(k); ok && k != "PATH" && k != "HOME" {
			e.hostEnv = append(e.hostEnv, k+"="+v)
		}
	}
	return e
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Workspace returns the directory of s's workspace. Its name depends only
// on the Spec, so Teardown needs no state from Setup.
func (e *Engine) Workspace(s *engine.Spec) string {
	h := sha256.Sum256([]byte(s.RunID + "\x00" + s.Stage.ID + "\x00" + strconv.Itoa(s.Attempt)))
	return filepath.Join(e.root, "runnel-ws-"+hex.EncodeToString(h[:10]))
}

// Setup makes a fresh workspace holding a copy of s.Source.
func (e *Engine) Setup(ctx context.Context, s *engine.Spec) error {
	if len(s.Stage.Services) > 0 {
		return fmt.Errorf("setup stage %s: service %q: the local engine does not support services", s.Stage.ID, s.Stage.Services[0].Name)
	}
	ws := e.Workspace(s)
	if err := os.RemoveAll(ws); err != nil {
		return fmt.Errorf("setup stage %s: clear workspace: %w", s.Stage.ID, err)
	}
	if err := os.MkdirAll(ws, 0o700); err != nil {
		return fmt.Errorf("setup stage %s: create workspace: %w", s.Stage.ID, err)
	}
	if s.Source != "" {
		if err := copyTree(ctx, s.Source, ws); err != nil {
			return fmt.Errorf("setup stage %s: copy %s to workspace: %w", s.Stage.ID, s.Source, err)
		}
	}
	return nil
}

// copyTree copies the tree at src into dst (which exists). Symlinks are
// copied as links, never followed, so nothing outside src is read.
func copyTree(ctx context.Context, src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			return os.Mkdir(target, mode.Perm()|0o700)
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case mode.IsRegular():
			return copyFile(path, target, mode.Perm())
		default:
			return nil // sockets, devices, fifos: nothing a build reads
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Run runs step's script with sh -e -c in the workspace.
func (e *Engine) Run(ctx context.Context, s *engine.Spec, step *pipeline.Step, out io.Writer) (int, error) {
	ws := e.Workspace(s)
	if _, err := os.Stat(ws); err != nil {
		return engine.ExitUnknown, fmt.Errorf("run step %s/%s: workspace: %w", s.Stage.ID, step.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return engine.ExitUnknown, fmt.Errorf("run step %s/%s: %w", s.Stage.ID, step.Name, err)
	}
	// Output goes through a pipe we read, unless out is a file: then the
	// step writes to it directly, without a copy.
	var pr, pw *os.File
	if f, ok := out.(*os.File); ok {
		pw = f
	} else {
		var err error
		if pr, pw, err = os.Pipe(); err != nil {
			return engine.ExitUnknown, fmt.Errorf("run step %s/%s: pipe: %w", s.Stage.ID, step.Name, err)
		}
	}
	// Secret files go to a private directory of this step, removed after it.
	secretsDir := ""
	if len(engine.SecretFiles(s)) > 0 {
		var err error
		if secretsDir, err = os.MkdirTemp("", "runnel-secrets-"); err != nil {
			return engine.ExitUnknown, fmt.Errorf("run step %s/%s: secrets: %w", s.Stage.ID, step.Name, err)
		}
		defer os.RemoveAll(secretsDir)
	}
	preamble, fileEnv := engine.SecretFilesPreamble(s, secretsDir)
	cmd := exec.Command("sh", "-e", "-c", preamble+step.Run)
	cmd.Dir = ws
	cmd.Env = append(append(append([]string{}, e.hostEnv...), engine.StepEnv(s, step, secretsDir)...), fileEnv...)
	cmd.Stdout, cmd.Stderr = pw, pw // one pipe: both streams, in order
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		if pr != nil {
			pr.Close()
			pw.Close()
		}
		return engine.ExitUnknown, fmt.Errorf("run step %s/%s: start sh: %w", s.Stage.ID, step.Name, err)
	}
	pgid := cmd.Process.Pid

	copied := make(chan error, 1)
	if pr == nil {
		copied <- nil
	} else {
		pw.Close()
		go copyOut(out, pr, copied)
	}
	stopped := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-stopped:
			return
		case <-ctx.Done():
		}
		syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(e.grace)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}()
	waitErr := cmd.Wait()
	close(stopped)
	<-watched
	// Whatever the script left running in its group would hold the pipe
	// open and outlive the step: end it.
	syscall.Kill(-pgid, syscall.SIGKILL)
	copyErr := <-copied

	if err := ctx.Err(); err != nil {
		return engine.ExitUnknown, fmt.Errorf("run step %s/%s: stopped: %w", s.Stage.ID, step.Name, err)
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return engine.ExitUnknown, fmt.Errorf("run step %s/%s: wait: %w", s.Stage.ID, step.Name, waitErr)
	}
	if copyErr != nil {
		return engine.ExitUnknown, fmt.Errorf("run step %s/%s: write output: %w", s.Stage.ID, step.Name, copyErr)
	}
	code := cmd.ProcessState.ExitCode()
	if code < 0 { // killed by a signal nobody here sent
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	return code, nil
}

func copyOut(out io.Writer, pr *os.File, copied chan<- error) {
	_, err := io.Copy(out, pr)
	if err != nil {
		io.Copy(io.Discard, pr) // keep the step from blocking on a full pipe
	}
	pr.Close()
	copied <- err
}

// Teardown removes the workspace. It is idempotent.
func (e *Engine) Teardown(ctx context.Context, s *engine.Spec) error {
	ws := e.Workspace(s)
	if os.RemoveAll(ws) != nil {
		// A step may have left read-only directories (Go's module cache
		// does): make them writable and try once more.
		filepath.WalkDir(ws, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	}
	if err := os.RemoveAll(ws); err != nil {
		return fmt.Errorf("teardown stage %s: remove workspace: %w", s.Stage.ID, err)
	}
	return nil
}
