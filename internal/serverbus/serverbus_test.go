package serverbus

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/runnel-ci/runnel/agents/natsbus"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

// TestEmbeddedAndExternal starts an embedded bus with a built-in agent
// and one other credential, joins it as an external NATS (as a second
// `runnel server --nats-url` would), and checks which credentials each
// accepts and the labels each allows, before and after SetAgents.
func TestEmbeddedAndExternal(t *testing.T) {
	ctx := context.Background()
	tok, other, err := natsserver.NewAgentCredential("other")
	if err != nil {
		t.Fatal(err)
	}
	other.Labels = map[string]string{"gpu": "yes"}
	otherC, err := natsbus.ParseAgentToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	emb, err := Start(ctx, Options{DataDir: t.TempDir(), Port: -1, Agents: []natsserver.AgentCredential{other},
		Builtin: &Builtin{Labels: map[string]string{"os": "linux"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	wantLabels(t, emb, "builtin", map[string]string{"os": "linux"})
	wantLabels(t, emb, "other", other.Labels)
	wantLabels(t, emb, "nobody", nil)
	nc, err := emb.ConnectAgent()
	if err != nil {
		t.Fatalf("built-in agent connects: %v", err)
	}
	nc.Close()

	ext, err := Start(ctx, Options{URL: emb.URL, Creds: emb.NATS.ServerCreds(), Agents: []natsserver.AgentCredential{other},
		Builtin: &Builtin{Labels: map[string]string{"arch": "arm64"}, Creds: &otherC}})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	if ext.NATS != nil || ext.AgentName() != "other" {
		t.Fatalf("external: got NATS %v, agent %q; want nil, other", ext.NATS, ext.AgentName())
	}
	// The built-in agent's labels (--agent-labels) are its credential's.
	wantLabels(t, ext, "other", map[string]string{"arch": "arm64"})
	if nc, err = ext.ConnectAgent(); err != nil {
		t.Fatalf("built-in agent on the external NATS: %v", err)
	}
	nc.Close()

	if err := emb.SetAgents(nil); err != nil {
		t.Fatal(err)
	}
	wantLabels(t, emb, "other", nil)
	wantLabels(t, emb, "builtin", map[string]string{"os": "linux"})
	if _, err := natsbus.Connect(emb.URL, otherC); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("removed credential connects: got %v, want an authorization error", err)
	}
	if nc, err = emb.ConnectAgent(); err != nil {
		t.Fatalf("built-in agent after SetAgents: %v", err)
	}
	nc.Close()
}

func wantLabels(t *testing.T, b *Bus, name string, want map[string]string) {
	t.Helper()
	got, ok := b.AgentLabels(name)
	if ok != (want != nil) || !maps.Equal(got, want) {
		t.Errorf("AgentLabels(%q) = %v, %v; want %v", name, got, ok, want)
	}
}
