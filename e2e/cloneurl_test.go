package e2e

import (
	"strings"
	"testing"
)

// TestRepoCloneURLCredentials: `runnel repo add` and `runnel repo update`
// refuse a clone URL with credentials, saying what to do instead, and
// never print the token back.
func TestRepoCloneURLCredentials(t *testing.T) {
	const token = "ghp_s3cr3tCl0neT0ken"
	dir := t.TempDir()
	srv := startServer(t, dir, "", "--no-agent")
	bare, _ := repoSetup(t, dir)
	bad := "https://ci:" + token + "@git.example/acme/app.git"
	for _, args := range [][]string{
		{"repo", "add", "app", "--clone-url", bad},
		{"repo", "add", "app", "--bare", bare},
		{"repo", "update", "app", "--clone-url", bad},
	} {
		out, code := runnelEnv(t, srv.url, srv.token, args...)
		if args[len(args)-1] != bad {
			if code != 0 {
				t.Fatalf("%v: %d %s", args, code, out)
			}
			continue
		}
		if code == 0 || !strings.Contains(out, "credentials in the URL") || !strings.Contains(out, "docs/operations.md#clone-credentials") {
			t.Errorf("%v: exit %d %s, want a refusal naming the supported ways", args[:2], code, out)
		}
		if strings.Contains(out, token) {
			t.Errorf("%v prints the token: %s", args[:2], out)
		}
	}
	if out, _ := runnelEnv(t, srv.url, srv.token, "repo", "list"); strings.Contains(out, token) {
		t.Errorf("repo list shows the token: %s", out)
	}
	if strings.Contains(srv.log(), token) {
		t.Errorf("the server log shows the token:\n%s", srv.log())
	}
}
