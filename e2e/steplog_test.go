package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

const loudPipeline = `version: 1
stages:
  loud:
    image: runnel-test/busybox:latest
    steps:
      - name: print
        run: seq 1 2000
`

// TestServerStepLogMax: runnel server --step-log-max 1k stores at most
// 1 KiB of a step's log, whether the agent keeps to it (the built-in
// agent gets the same cap: nothing dropped on the server) or not (an
// agent with the default 100m: the server drops the rest and counts it).
// `seq 1 2000` prints 8893 bytes.
func TestServerStepLogMax(t *testing.T) {
	const note = "\n[runnel: log truncated at 1024 bytes]\n"
	for _, tc := range []struct {
		name    string
		start   func(t *testing.T) (*server, string)
		dropped string
	}{
		{"built-in agent", func(t *testing.T) (*server, string) {
			needDocker(t)
			dir := t.TempDir()
			srv := startServer(t, dir, "", "--step-log-max", "1k")
			bare, work := repoSetup(t, dir)
			srv.createRepo(map[string]any{"name": "loud", "forge": "git", "clone_url": bare})
			return srv, srv.pushAndTrigger("loud", work, loudPipeline)
		}, "0"},
		{"agent with a larger cap", func(t *testing.T) (*server, string) {
			c := newCluster(t, nil, "--step-log-max", "1k")
			c.startAgent("big", "", 1)
			bare, work := repoSetup(t, c.dir)
			c.addRepo("loud", bare)
			return c.srv, c.pushAndTrigger("loud", work, loudPipeline)
		}, "7869"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, sha := tc.start(t)
			r := srv.waitRun(sha, 2*time.Minute, terminal)
			if r.Status != "success" {
				t.Fatalf("run = %s, want success: %+v", r.Status, r)
			}
			code, b := srv.api("GET", r.Stages[0].Steps[0].Log)
			log := string(b)
			if code != 200 || len(log) != 1024+len(note) || !strings.HasSuffix(log, note) || strings.Count(log, "[runnel: log truncated") != 1 {
				t.Errorf("log = %d, %d bytes ending %q, want 1024 bytes and one note", code, len(log), log[max(len(log)-80, 0):])
			}
			_, m := srv.do("GET", "/metrics", nil, nil)
			got := regexp.MustCompile(`(?m)^runnel_step_log_dropped_bytes_total (\S+)$`).FindSubmatch(m)
			if got == nil || string(got[1]) != tc.dropped {
				t.Errorf("runnel_step_log_dropped_bytes_total = %q, want %s", got, tc.dropped)
			}
		})
	}
}
