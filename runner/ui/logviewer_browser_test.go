package ui

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/store"
)

// watchLog installs, in the page, counters the tests read back: the most
// lines the log ever held at once (checked every animation frame) and
// how many chunks were added to it.
const watchLog = `(() => {
  const pre = document.getElementById("log");
  window.maxLines = 0; window.chunksAdded = 0;
  new MutationObserver(ms => ms.forEach(m => { window.chunksAdded += m.addedNodes.length; }))
    .observe(pre, {childList: true});
  const tick = () => { window.maxLines = Math.max(window.maxLines, pre.querySelectorAll(".line").length); requestAnimationFrame(tick); };
  tick();
  return "ok";
})()`

// checkConsecutive reads the log's lines "line N" and checks they run
// without a gap from first to last.
func checkConsecutive(t *testing.T, b *browser, first, last int) {
	t.Helper()
	got := b.eval("lines", `Array.from(document.querySelectorAll("#log .line")).map(l => l.textContent).join("\n")`)
	lines := strings.Split(got, "\n")
	if len(lines) != last-first+1 {
		t.Fatalf("log holds %d lines, want %d (%d..%d)", len(lines), last-first+1, first, last)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %05d", first+i); l != want {
			t.Fatalf("line %d of the page: got %q, want %q", i, l, want)
		}
	}
}

// TestLogViewerFollowsInBatches appends 20,000 lines to a running step's
// log in 40 writes while its page follows: the page renders them a batch
// at a time (far fewer chunks than lines), never holds more than its
// line bound, and ends showing exactly the last lines of the log.
func TestLogViewerFollowsInBatches(t *testing.T) {
	b := newBrowser(t, 60*time.Second)
	e := newEnv(t)
	build := e.run.Stages[0]
	key := runner.LogKey(e.run.ID, "build", build.Attempt, 1)
	path := runPath(e.run.ID) + "/stages/build/steps/1/log"
	b.login(e, path, `#log[data-follow="true"]`)
	b.run("following", chromedp.Poll[chromedp.Void](`document.getElementById("live-state").textContent === "following live…"`,
		chromedp.WithPollingTimeout(10*time.Second)))
	b.eval("watch", watchLog)

	const total, writes = 20000, 40
	size := int64(len("=== RUN TestOne\n"))
	n := 1
	for w := 1; w <= writes; w++ {
		var chunk strings.Builder
		for ; n <= w*total/writes; n++ {
			fmt.Fprintf(&chunk, "line %05d\n", n)
		}
		if err := e.logs.Append(key, int64(w), []byte(chunk.String())); err != nil {
			t.Fatal(err)
		}
		size += int64(chunk.Len())
	}
	b.run("all lines arrive", chromedp.Poll[chromedp.Void](`document.getElementById("log").dataset.to === "`+strconv.FormatInt(size, 10)+`"`,
		chromedp.WithPollingTimeout(30*time.Second)))
	zero := 0
	if err := e.store.UpdateStep(context.Background(), build.ID, build.Attempt, 1, store.StepUpdate{Status: store.StatusSuccess, ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Finish(key); err != nil {
		t.Fatal(err)
	}
	b.run("end of log", chromedp.WaitVisible(chromedp.CSS(`#log[data-ended="true"]`)))

	// Whole chunks of at most a page of lines are dropped at a time.
	max, low := e.ui.cfg.LogMaxLines, e.ui.cfg.LogMaxLines-e.ui.cfg.LogPageLines
	stats := b.eval("stats", `[window.maxLines, window.chunksAdded, document.getElementById("log").dataset.lines].join(",")`)
	var most, chunks, lines int
	fmt.Sscanf(stats, "%d,%d,%d", &most, &chunks, &lines)
	if most > max || lines > max || lines < low {
		t.Errorf("lines held: at most %d, at the end %d; want at most %d and at the end at least %d", most, lines, max, low)
	}
	if chunks < 1 || chunks > writes {
		t.Errorf("%d chunks added for %d writes of %d lines: want one per batch at most", chunks, writes, total)
	}
	checkConsecutive(t, b, total-lines+1, total)
}

// TestLogViewerPagesByScrolling opens a finished 12,000-line log at its
// tail and scrolls to its start and back: pages are fetched by byte
// range on the way, the page never holds more than its line bound, and
// what it holds is always an unbroken run of the log's lines.
func TestLogViewerPagesByScrolling(t *testing.T) {
	b := newBrowser(t, 90*time.Second)
	e := newEnv(t)
	build := e.run.Stages[0]
	key := runner.LogKey(e.run.ID, "build", build.Attempt, 1)
	const total = 12000
	var log strings.Builder
	for i := 1; i <= total; i++ {
		fmt.Fprintf(&log, "line %05d\n", i)
	}
	// Replace the seeded first line: a fresh attempt of the step's log.
	zero := 0
	if err := e.store.UpdateStep(context.Background(), build.ID, build.Attempt, 1, store.StepUpdate{Status: store.StatusSuccess, ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Finish(key); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(e.logs.Path(key), log.String()); err != nil {
		t.Fatal(err)
	}
	size := strconv.Itoa(log.Len())
	b.login(e, runPath(e.run.ID)+"/stages/build/steps/1/log", `#log[data-final="true"]`)
	// The page opens at the end of the log (it opened at the top of its
	// last page when the viewer scrolled before the lines were laid out;
	// scrolling "up" to where it already was then fetched nothing).
	b.run("opens at the end", chromedp.Poll[chromedp.Void](`window.runnelLog !== undefined &&
		(p => p.scrollHeight > p.clientHeight && p.scrollHeight - p.clientHeight - p.scrollTop < 30)(document.getElementById("log"))`,
		chromedp.WithPollingTimeout(10*time.Second)))
	b.eval("watch", watchLog)
	pages := e.ui.cfg.LogPageLines
	checkConsecutive(t, b, total-pages+1, total)

	// Scroll to the top until the start of the log is in the page.
	for i := 0; ; i++ {
		from := b.eval("from", `document.getElementById("log").dataset.from`)
		if from == "0" {
			break
		}
		if i > total/pages+2 {
			t.Fatalf("still at byte %s after %d scrolls up", from, i)
		}
		b.eval("scroll up", `document.getElementById("log").scrollTop = 0; "ok"`)
		b.run("page before "+from, chromedp.Poll[chromedp.Void](`document.getElementById("log").dataset.from !== "`+from+`"`,
			chromedp.WithPollingTimeout(10*time.Second)))
	}
	held, _ := strconv.Atoi(b.eval("lines", `document.getElementById("log").dataset.lines`))
	checkConsecutive(t, b, 1, held)
	// And back down to the end.
	for i := 0; ; i++ {
		to := b.eval("to", `document.getElementById("log").dataset.to`)
		if to == size {
			break
		}
		if i > total/pages+2 {
			t.Fatalf("still at byte %s of %s after %d scrolls down", to, size, i)
		}
		b.eval("scroll down", `(p => { p.scrollTop = p.scrollHeight; return "ok"; })(document.getElementById("log"))`)
		b.run("page after "+to, chromedp.Poll[chromedp.Void](`document.getElementById("log").dataset.to !== "`+to+`"`,
			chromedp.WithPollingTimeout(10*time.Second)))
	}
	held, _ = strconv.Atoi(b.eval("lines", `document.getElementById("log").dataset.lines`))
	checkConsecutive(t, b, total-held+1, total)
	if most, _ := strconv.Atoi(b.eval("max", `String(window.maxLines)`)); most > e.ui.cfg.LogMaxLines {
		t.Errorf("the page held %d lines at once, bound %d", most, e.ui.cfg.LogMaxLines)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
