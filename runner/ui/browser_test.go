package ui

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/store"
)

var screenshot = flag.Bool("screenshot", false, "write docs/img/run.png from the browser test")

// chromium finds the browser; with CI set a missing browser fails the
// test instead of skipping it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found (CI is set; .ci/run installs it)")
	}
	t.Skip("chromium not found")
	return ""
}

// browser is a headless Chromium driven over its debugging protocol,
// collecting console errors and uncaught exceptions (a CSP violation is
// logged as an error); they fail the test at its end.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T, timeout time.Duration) *browser {
	t.Helper()
	exe := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	cctx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(cctx)
	var mu sync.Mutex
	var problems []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stopConsole()
		wg.Wait()
		cancel()
		cancelBrowser()
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
		if len(problems) > 0 {
			t.Errorf("browser console errors: %v", problems)
		}
	})
	return &browser{t: t, ctx: ctx}
}

func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) eval(what, expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// login opens path, lands on the login form, logs in and waits for sel.
func (b *browser) login(e *env, path string, sel chromedp.CSS) {
	b.t.Helper()
	b.run("log in",
		chromedp.Navigate(e.srv.URL+path),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), e.token),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(sel),
	)
}

// TestBrowser drives the UI in headless Chromium: log in through the
// form, read stage statuses off the run page, open a running step's log
// and see lines appended to the log store appear without a reload.
func TestBrowser(t *testing.T) {
	b := newBrowser(t, 30*time.Second)
	e := newEnv(t)
	run, eval, ctx := b.run, b.eval, b.ctx

	// An unauthenticated visit lands on the login form and returns to
	// the run after login.
	b.login(e, runPath(e.run.ID), chromedp.CSS(`article[data-stage="build"]`))
	stages := eval("stages", `Array.from(document.querySelectorAll("article.stage")).map(a => a.dataset.stage + "=" + a.querySelector(".status").textContent).join(",")`)
	if want := "build=running,test[go=1.22]=pending,deploy=pending"; stages != want {
		t.Errorf("stages: got %q, want %q", stages, want)
	}
	if got, want := eval("message", `document.getElementById("commit-message").textContent`), `<script>alert("msg")</script> fix "quotes" & things`; got != want {
		t.Errorf("commit message text: got %q, want %q", got, want)
	}
	if got := eval("injected", `String(document.querySelectorAll("img, main script").length)`); got != "0" {
		t.Errorf("hostile text became %s elements", got)
	}
	// The page of an unfinished run picks up changes in the background.
	if err := e.store.SetStagePendingReason(context.Background(), e.run.Stages[1].ID, "no agent with labels gpu=yes"); err != nil {
		t.Fatal(err)
	}
	run("see background refresh", chromedp.Poll[chromedp.Void](
		`document.querySelector('article[data-stage="test[go=1.22]"] .pending').textContent === "no agent with labels gpu=yes"`,
		chromedp.WithPollingTimeout(10*time.Second)))

	if *screenshot {
		show := e.showcaseRun()
		run("open showcase run", chromedp.Navigate(e.srv.URL+runPath(show.ID)),
			chromedp.WaitVisible(chromedp.CSS(`article[data-stage="deploy"]`)))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", "run.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		run("back to run", chromedp.Navigate(e.srv.URL+runPath(e.run.ID)),
			chromedp.WaitVisible(chromedp.CSS(`article[data-stage="build"]`)))
	}

	// The running step's log follows live.
	build := e.run.Stages[0]
	key := runner.LogKey(e.run.ID, "build", build.Attempt, 1)
	run("open log",
		// The run page refreshes itself in the background, replacing the
		// link; follow its href rather than clicking a node that may go.
		chromedp.Navigate(e.srv.URL+runPath(e.run.ID)+"/stages/build/steps/1/log"),
		chromedp.WaitVisible(chromedp.ID("log")),
		// The EventSource is open once the server has sent its headers.
		chromedp.Poll[chromedp.Void](`document.getElementById("live-state").textContent === "following live…"`,
			chromedp.WithPollingTimeout(10*time.Second)),
	)
	if before := eval("log", `document.getElementById("log").textContent`); before != "=== RUN TestOne" {
		t.Errorf("log page before appending: got %q", before)
	}
	if err := e.logs.Append(key, 1, []byte("live line \x1b[32m<script>document.title='pwned'</script>\x1b[0m\n")); err != nil {
		t.Fatal(err)
	}
	run("see live line", chromedp.Poll[chromedp.Void](`document.getElementById("log").textContent.includes("live line <script>")`,
		chromedp.WithPollingTimeout(10*time.Second)))
	got := eval("after append", `[document.querySelectorAll("#log .line").length, document.querySelectorAll("#log script").length,
		document.querySelectorAll("#log .line span.fg2").length, document.title.includes("pwned")].join(",")`)
	if want := "2,0,1,false"; got != want {
		t.Errorf("lines, script elements, green spans, pwned: got %s, want %s", got, want)
	}

	// The step ends: the stream says so and the page stops following.
	zero := 0
	if err := e.store.UpdateStep(context.Background(), build.ID, build.Attempt, 1, store.StepUpdate{Status: store.StatusSuccess, ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Finish(key); err != nil {
		t.Fatal(err)
	}
	run("end of log", chromedp.WaitVisible(chromedp.CSS(`#log[data-ended="true"]`)))
}
