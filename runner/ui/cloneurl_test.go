package ui

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/runner/store"
)

// TestRepoPageRedactsCloneURL: a clone URL stored with credentials (before
// they were refused) shows on the repository page without them.
func TestRepoPageRedactsCloneURL(t *testing.T) {
	e := newEnv(t)
	const token = "ghp_s3cr3tCl0neT0ken"
	if _, err := e.store.CreateRepo(context.Background(), store.Repo{Name: "acme/creds", Forge: store.ForgeGit,
		CloneURL: "https://user:" + token + "@git.example/acme/creds.git", DefaultBranch: "main"}); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	e.login(c, e.token)
	code, body, _ := e.get(c, "/repos/acme/creds")
	if code != http.StatusOK {
		t.Fatalf("repo page: %d", code)
	}
	if strings.Contains(body, token) {
		t.Error("the repository page shows the clone URL's token")
	}
	if !strings.Contains(body, "https://***@git.example/acme/creds.git") {
		t.Error("the repository page does not show the redacted clone URL")
	}
}
