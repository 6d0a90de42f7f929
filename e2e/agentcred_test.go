package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentLabelsBeyondCredential: an agent whose credential was made
// without --labels and that announces secure=prod stops at start, naming
// the command that remakes its credential (it never says it started).
func TestAgentLabelsBeyondCredential(t *testing.T) {
	c := newCluster(t, nil)
	c.makeToken("plain", "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "agent", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", c.natsPort),
		"--token", c.tokens["plain"], "--labels", "secure=prod", "--capacity", "1",
		"--work-dir", filepath.Join(c.dir, "agent-plain"), "--drain-timeout", "5s").CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("agent with labels its credential does not allow: err %v (ctx %v), want it to stop at start:\n%s", err, ctx.Err(), out)
	}
	if want := "runnel agent token plain --labels secure=prod"; !strings.Contains(string(out), want) {
		t.Errorf("agent output does not name %q:\n%s", want, out)
	}
	if strings.Contains(string(out), "agent started") {
		t.Errorf("the agent says it started:\n%s", out)
	}
}
