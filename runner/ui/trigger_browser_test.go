package ui

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-ci/runnel/runner/store"
)

// TestBrowserTrigger starts a run from the repository page's trigger
// form in Chromium: the typed fields (text, choice, checkbox) are filled
// in as a user would, and the run page that follows shows the run with
// those inputs. Screenshots of the form and the new run are kept as test
// artifacts.
func TestBrowserTrigger(t *testing.T) {
	e := newEnv(t)
	// The browser closes first (cleanups run last-in first-out), so a
	// background refresh never finds the server gone.
	b := newBrowser(t, 2*time.Minute)
	repo := e.pipelineRepo("acme/release", inputsPipeline)
	b.login(e, "/repos/acme/release", `#run-pipeline`)
	b.run("open the form", chromedp.Click(chromedp.ID("run-pipeline")), chromedp.WaitVisible(chromedp.ID("input-version")))
	b.run("fill it in",
		chromedp.SendKeys(chromedp.ID("input-version"), "1.2"),
		chromedp.SetValue(chromedp.ID("input-target"), "production"),
		chromedp.Click(chromedp.ID("input-dry_run")), // on by default: now off
	)
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	keep(t, "trigger.png", png, true)
	b.run("submit", chromedp.Click(chromedp.ID("trigger-submit")), chromedp.WaitVisible(chromedp.CSS(`#dag [data-node="release"]`)))
	if got := b.eval("flash", `document.querySelector(".flash").textContent`); got != "Run started." {
		t.Errorf("flash: got %q", got)
	}
	inputs := b.eval("inputs", `Array.from(document.querySelectorAll("dl.facts dt")).filter(d => d.textContent === "Input").
		map(d => d.nextElementSibling.textContent).join(", ")`)
	if want := "dry_run = false, target = production, version = 1.2"; inputs != want {
		t.Errorf("inputs on the run page: got %q, want %q", inputs, want)
	}
	runs, err := e.store.ListRuns(context.Background(), store.RunFilter{RepoID: repo.ID})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %d, %v", len(runs), err)
	}
	if in := runs[0].Inputs; in["version"] != "1.2" || in["target"] != "production" || in["dry_run"] != "false" {
		t.Errorf("stored inputs: %v", in)
	}
	png, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	keep(t, "triggered.png", png, false)
}
