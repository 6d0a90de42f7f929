package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Lines each stage's one step prints; the stored log must hold them all.
var stageLines = map[string]int{"build": 60, "lint": 40, "deploy": 20}

// pipelineYAML: build and lint in parallel, deploy needs both and is in a
// concurrency group shared by every run. Steps print numbered lines with
// a pause in the middle, so kills hit them.
func pipelineYAML() string {
	step := func(stage string, pause string) string {
		n := stageLines[stage]
		return fmt.Sprintf(`    image: runnel-test/busybox:latest
    steps:
      - name: lines
        run: |
          for i in $(seq 1 %d); do
            echo "%s line $i"
            if [ $i -eq %d ]; then sleep %s; fi
          done
`, n, stage, n/2, pause)
	}
	return "version: 1\nstages:\n" +
		"  build:\n" + step("build", "1") +
		"  lint:\n" + step("lint", "1") +
		"  deploy:\n    needs: [build, lint]\n    concurrency: production\n" + step("deploy", "0.2")
}

// wantLog is the exact stored log of stage's step.
func wantLog(stage string) string {
	var b strings.Builder
	for i := 1; i <= stageLines[stage]; i++ {
		fmt.Fprintf(&b, "%s line %d\n", stage, i)
	}
	return b.String()
}

// repo is the bare repository with the hook and a working clone.
type repo struct {
	bare, work string
	hookToken  string
	n          int // commits made
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Chaos", "GIT_AUTHOR_EMAIL=chaos@example.com",
		"GIT_COMMITTER_NAME=Chaos", "GIT_COMMITTER_EMAIL=chaos@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %v: %w: %s", args, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// newRepo makes the bare repository, registers it and installs the hook.
func newRepo(ctx context.Context, c *cluster) (*repo, error) {
	r := &repo{bare: filepath.Join(c.dir, "chaos.git"), work: filepath.Join(c.dir, "work")}
	steps := [][]string{
		{"init", "-q", "--bare", "--initial-branch=main", r.bare},
		{"init", "-q", "--initial-branch=main", r.work},
	}
	for _, s := range steps {
		if _, err := git(c.dir, s...); err != nil {
			return nil, err
		}
	}
	if _, err := git(r.work, "remote", "add", "origin", r.bare); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(r.work, ".pipeline.yml"), []byte(pipelineYAML()), 0o644); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, c.bin, "repo", "add", "chaos", "--bare", r.bare, "--server", c.url(), "--token", c.token).CombinedOutput()
	m := regexp.MustCompile(`hook token \(shown once\): (\S+)`).FindSubmatch(out)
	if err != nil || m == nil {
		return nil, fmt.Errorf("repo add: %v: %s", err, out)
	}
	r.hookToken = string(m[1])
	out, err = exec.CommandContext(ctx, c.bin, "hook", "install", r.bare, "--server", c.url(), "--repo", "chaos", "--token", r.hookToken).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("hook install: %v: %s", err, out)
	}
	return r, nil
}

// push is one `git push` of a new commit to main.
type push struct {
	commit   string
	at       time.Time
	accepted bool // the hook queued or spooled it
	spooled  bool
	output   string
}

func (r *repo) push() push {
	r.n++
	if err := os.WriteFile(filepath.Join(r.work, "n.txt"), []byte(fmt.Sprint(r.n)), 0o644); err != nil {
		return push{output: err.Error()}
	}
	if _, err := git(r.work, "add", "-A"); err != nil {
		return push{output: err.Error()}
	}
	if _, err := git(r.work, "commit", "-q", "-m", fmt.Sprintf("push %d", r.n)); err != nil {
		return push{output: err.Error()}
	}
	sha, err := git(r.work, "rev-parse", "HEAD")
	if err != nil {
		return push{output: err.Error()}
	}
	p := push{commit: sha, at: time.Now()}
	out, err := git(r.work, "push", "origin", "HEAD:refs/heads/main")
	p.output = out
	p.accepted = err == nil && !strings.Contains(out, "could not queue")
	p.spooled = strings.Contains(out, "delayed, not lost")
	return p
}

// burstCommits makes n commits on their own branches in the bare
// repository without running its hook (a fetch into it runs none).
func (r *repo) burstCommits(k, n int) ([]string, []string, error) {
	var shas, refs []string
	for i := range n {
		sha, err := git(r.work, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", fmt.Sprintf("burst %d delivery %d", k, i))
		if err != nil {
			return nil, nil, err
		}
		ref := fmt.Sprintf("refs/heads/burst-%d-%d", k, i)
		if _, err := git(r.work, "update-ref", ref, sha); err != nil {
			return nil, nil, err
		}
		shas, refs = append(shas, sha), append(refs, ref)
	}
	spec := fmt.Sprintf("refs/heads/burst-%d-*:refs/heads/burst-%d-*", k, k)
	if _, err := git(r.bare, "fetch", "-q", r.work, spec); err != nil {
		return nil, nil, err
	}
	return shas, refs, nil
}

// delivery is one generic-hook delivery of a burst.
type delivery struct {
	id, ref, commit string
	status          int // the last answer; 0 for none
	retries         int
	firstOK         bool // accepted by the first try
}

func (r *repo) deliver(ctx context.Context, c *cluster, d *delivery) {
	body, _ := json.Marshal(map[string]string{"repo": "chaos", "ref": d.ref, "commit": d.commit})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url()+"/hooks/generic", bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.hookToken)
	req.Header.Set("X-Runnel-Delivery", d.id)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		d.status = 0
		return
	}
	resp.Body.Close()
	d.status = resp.StatusCode
}

func accepted(status int) bool { return status/100 == 2 }

// burst fires n deliveries at once and SIGKILLs the server 10-100 ms
// later; after the restart it sends again, with the same delivery id, every
// delivery that got no 2xx answer, as a forge does, until all are
// accepted.
func (r *repo) burst(ctx context.Context, c *cluster, k, n int) ([]*delivery, error) {
	shas, refs, err := r.burstCommits(k, n)
	if err != nil {
		return nil, err
	}
	ds := make([]*delivery, n)
	for i := range ds {
		ds[i] = &delivery{id: newID(), ref: refs[i], commit: shas[i]}
	}
	c.mu.Lock()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, d := range ds {
		wg.Go(func() { <-start; r.deliver(ctx, c, d) })
	}
	close(start)
	time.Sleep(10*time.Millisecond + randDuration(90*time.Millisecond))
	c.server.stop(syscall.SIGKILL)
	c.srvKills++
	wg.Wait()
	err = c.startServer()
	c.mu.Unlock()
	if err != nil {
		return ds, err
	}
	for _, d := range ds {
		d.firstOK = accepted(d.status)
		for !accepted(d.status) && d.retries < 60 && ctx.Err() == nil {
			d.retries++
			r.deliver(ctx, c, d)
			if !accepted(d.status) {
				time.Sleep(time.Second)
			}
		}
	}
	return ds, nil
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randDuration is uniform in [0, d).
func randDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(d)))
	return time.Duration(n.Int64())
}

// jitter is d ± 30 %.
func jitter(d time.Duration) time.Duration {
	return d*7/10 + randDuration(d*6/10)
}

// countSpool counts the pushes waiting in a hook spool directory.
func countSpool(dir string) int {
	names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	return len(names)
}
