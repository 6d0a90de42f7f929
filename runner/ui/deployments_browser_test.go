package ui

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-ci/runnel/runner/store"
)

// TestDeploymentsFollowRelease: the deployments page, open in headless
// Chromium, follows a release in progress without a reload: its traffic
// split moves from 90/10 to 50/50, and once the deployment ends the page
// shows its result and stops refreshing.
func TestDeploymentsFollowRelease(t *testing.T) {
	b := newBrowser(t, 60*time.Second)
	e := newEnv(t)
	ctx := context.Background()
	progress := func(phase string, traffic int) int64 {
		t.Helper()
		id, err := e.store.DeployProgress(ctx, store.Deployment{RepoID: e.repo.ID, Environment: "production", RunID: e.run.ID,
			Commit: "1111111122222222", Release: store.Release{Provider: "ecs", Version: "1111111122222222", From: "0000000099999999",
				Phase: phase, Traffic: traffic}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	progress("shift", 10)
	b.login(e, "/deployments", chromedp.CSS(".traffic"))
	split := `document.querySelector(".traffic").textContent`
	if got, want := b.eval("split", split), "00000000 90% / 11111111 10%"; got != want {
		t.Errorf("traffic split: got %q, want %q", got, want)
	}
	id := progress("shift", 50)
	b.run("see the split move", chromedp.Poll[chromedp.Void](split+` === "00000000 50% / 11111111 50%"`,
		chromedp.WithPollingTimeout(10*time.Second)))

	progress("done", 100)
	if err := e.store.FinishDeployment(ctx, id, store.DeploySuccess); err != nil {
		t.Fatal(err)
	}
	b.run("see the result", chromedp.Poll[chromedp.Void](
		`document.querySelector(".deployments .dep-success") !== null && !document.getElementById("live").hasAttribute("data-refresh")`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if got, want := b.eval("final split", split), "00000000 0% / 11111111 100%"; got != want {
		t.Errorf("final traffic split: got %q, want %q", got, want)
	}
}
