package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestAgentTokenReload: a credential made with `runnel agent token` while
// the server runs is accepted without a restart or a signal: the agent
// is started right after its token is made (the README's "More agents").
func TestAgentTokenReload(t *testing.T) {
	c := newCluster(t, nil)
	c.makeToken("late", "os=linux")
	c.startAgent("late", "os=linux", 1)
	got := c.waitAgents("late")
	if len(got) != 1 || got[0].Name != "late" {
		t.Fatalf("agents = %+v, want the late agent", got)
	}
	if !strings.Contains(c.srv.log(), "agent credentials reloaded") {
		t.Errorf("server log does not say it loaded the new credential:\n%s", c.srv.log())
	}
}

// TestNATSHost: --nats-host moves the embedded NATS listener off the
// loopback default (here to 127.0.0.2, which this machine can test).
func TestNATSHost(t *testing.T) {
	needDocker(t)
	port := freePort(t)
	startServer(t, t.TempDir(), "", "--no-agent", "--nats-host", "127.0.0.2", "--nats-port", fmt.Sprint(port))
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.2:%d", port), 5*time.Second)
	if err != nil {
		t.Fatalf("dial the embedded NATS on 127.0.0.2: %v", err)
	}
	c.Close()
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("the embedded NATS also answers on 127.0.0.1:%d, want only 127.0.0.2", port)
	}
}
