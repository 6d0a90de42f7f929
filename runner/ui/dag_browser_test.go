package ui

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

// seedStatuses creates a run of plan and moves each stage named in
// statuses to that status, as an agent would.
func (e *env) seedStatuses(plan *pipeline.Plan, statuses map[string]store.Status) *store.Run {
	t, ctx := e.t, context.Background()
	run, err := e.store.CreateRun(ctx, store.NewRun{RepoID: e.repo.ID, Trigger: store.TriggerWebhook, Plan: plan,
		Event: eventOf("main", "9f2c4e1a7b3d5f608192a3b4c5d6e7f809a1b2c3", "Build matrix and a diamond")})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpdateRun(ctx, run.ID, store.StatusRunning, ""); err != nil {
		t.Fatal(err)
	}
	for _, st := range run.Stages {
		status, ok := statuses[st.Key]
		if !ok {
			continue
		}
		attempt, err := e.store.QueueStage(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []store.Status{store.StatusRunning, status} {
			if err := e.store.UpdateStage(ctx, st.ID, attempt, store.StageUpdate{Status: s, Agent: "agent-1"}); err != nil {
				t.Fatal(err)
			}
			if s == status {
				break
			}
		}
	}
	run, err = e.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// matrixDiamond is a pipeline with a matrix stage and a diamond of needs:
// build fans out to lint and the two test variants, package joins them,
// deploy follows package.
func matrixDiamond() *pipeline.Plan {
	step := func(name string) []*pipeline.Step { return []*pipeline.Step{{Name: name, Run: name}} }
	return &pipeline.Plan{Stages: []*pipeline.Stage{
		{ID: "build", Name: "build", Steps: step("go build")},
		{ID: "lint", Name: "lint", Needs: []string{"build"}, Steps: step("go vet")},
		{ID: "test[go=1.22]", Name: "test", Needs: []string{"build"}, Steps: step("go test")},
		{ID: "test[go=1.23]", Name: "test", Needs: []string{"build"}, Steps: step("go test")},
		{ID: "package", Name: "package", Needs: []string{"lint", "test[go=1.22]", "test[go=1.23]"}, Steps: step("tar")},
		{ID: "deploy", Name: "deploy", Needs: []string{"package"}, Approval: true, Environment: "production", Steps: step("ship")},
	}}
}

// TestBrowserDAG draws the graph of a run with a matrix and a diamond of
// needs in Chromium and reads it back: a box per stage name in columns by
// depth, the matrix variants inside one box, an edge per need, each box
// and variant coloured by its status. The screenshot is kept as a test
// artifact (go test -artifacts) and, with -screenshot, as docs/img/dag.png.
func TestBrowserDAG(t *testing.T) {
	e := newEnv(t)
	// The browser closes first (cleanups run last-in first-out), so a
	// background refresh never finds the server gone.
	b := newBrowser(t, 2*time.Minute)
	run := e.seedStatuses(matrixDiamond(), map[string]store.Status{
		"build": store.StatusSuccess, "lint": store.StatusSuccess,
		"test[go=1.22]": store.StatusSuccess, "test[go=1.23]": store.StatusRunning,
	})
	b.login(e, runPath(run.ID), `#dag`)

	// Boxes: name, column (by x), status and the fill of its status bar.
	boxes := b.eval("boxes", `Array.from(document.querySelectorAll("#dag .node")).map(n => {
		const r = n.querySelector("rect.box"), bar = n.querySelector("rect.bar");
		return n.dataset.node + "@" + r.getAttribute("x") + " " + n.dataset.status + " " + getComputedStyle(bar).fill;
	}).join("; ")`)
	green, blue, amber := "rgb(26, 127, 55)", "rgb(9, 105, 218)", "rgb(154, 103, 0)"
	want := "build@8 success " + green + "; lint@264 success " + green + "; test@264 running " + blue +
		"; package@520 pending " + amber + "; deploy@776 pending " + amber
	if boxes != want {
		t.Errorf("boxes:\n got %s\nwant %s", boxes, want)
	}
	variants := b.eval("variants", `Array.from(document.querySelectorAll('#dag [data-node="test"] .variant')).map(v =>
		v.querySelector("text").textContent + " " + v.dataset.status + " " + getComputedStyle(v.querySelector("circle")).fill).join("; ")`)
	if want := "go=1.22 success " + green + "; go=1.23 running " + blue; variants != want {
		t.Errorf("matrix variants:\n got %s\nwant %s", variants, want)
	}
	edges := b.eval("edges", `Array.from(document.querySelectorAll("#dag .edge")).map(p => p.dataset.from + ">" + p.dataset.to).sort().join(" ")`)
	if want := "build>lint build>test lint>package package>deploy test>package"; edges != want {
		t.Errorf("edges: got %q, want %q", edges, want)
	}
	// Every edge is drawn as a curve of some length, not a point.
	drawn := b.eval("edge lengths", `Array.from(document.querySelectorAll("#dag .edge")).every(p => p.getTotalLength() > 20) ? "ok" : "short"`)
	if drawn != "ok" {
		t.Errorf("edges not drawn: %s", drawn)
	}
	// A box links to its stage's details.
	b.run("follow box link", chromedp.Click(chromedp.CSS(`#dag [data-node="package"]`)),
		chromedp.Poll[chromedp.Void](`location.hash === "#stage-package"`, chromedp.WithPollingTimeout(10*time.Second)))

	png, err := chromedp.Run(b.ctx, chromedp.Screenshot(chromedp.CSS(`section.graph`)))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	keep(t, "dag.png", png, true)
}

// keep writes a screenshot to the test's artifact directory and, with
// -screenshot and docs set, into docs/img for the documentation.
func keep(t *testing.T, name string, png []byte, docs bool) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if *screenshot && docs {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s: %d bytes, %s", name, len(png), strings.TrimSpace(t.ArtifactDir()))
}
