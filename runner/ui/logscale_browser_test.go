package ui

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/logstore"
	"github.com/runnel-ci/runnel/runner/store"
)

// The log viewer's acceptance figures (docs/benchmarks.md, "Web UI log
// viewer"). They take minutes and measure time and memory, so they run
// only when asked: go test ./runner/ui/ -run TestLogScale -logscale -v
var logScale = flag.Bool("logscale", false, "run the log viewer's scale measurements (TestLogScale*)")

// logScaleNice gives the browser and this process (the server and the
// probe) priority over the rest of a busy machine (nice -10; needs root),
// standing in for the idle machine of a user; docs/benchmarks.md gives
// figures with and without it.
var logScaleNice = flag.Bool("logscale-nice", false, "with -logscale: renice the browser and the test process to -10")

// prioritize renices the browser's processes and this one when
// -logscale-nice is set.
func prioritize(t *testing.T, b *browser) {
	t.Helper()
	if !*logScaleNice {
		return
	}
	root := chromedp.FromContext(b.ctx).Browser.Process().Pid
	entries, _ := os.ReadDir("/proc")
	pids := []int{os.Getpid()}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && descends(pid, root) {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		// Every thread of a process has its own nice value on Linux.
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, -10); err != nil {
				t.Fatalf("renice %d: %v (-logscale-nice needs root)", tid, err)
			}
		}
	}
	t.Logf("reniced %d processes to -10", len(pids))
}

func needScale(t *testing.T) {
	if !*logScale {
		t.Skip("scale measurement: run with -logscale")
	}
}

// logLine is line n of the generated logs: about 80 bytes, like a test
// runner's output.
func logLine(n int) string {
	return fmt.Sprintf("line %07d ok  \tgithub.com/acme/web/internal/pkg%03d\t0.%03ds\tcoverage: 81.2%% of statements\n", n, n%1000, n%997)
}

// procKiB reads a field (VmRSS:, Pss:) of a process's /proc file
// (status, smaps_rollup), in KiB.
func procKiB(pid int, file, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func rssKiB(pid int) int64 { return procKiB(pid, "status", "VmRSS:") }

// renderer is one renderer process of the browser: its proportional set
// size (PSS: private pages, plus shared ones divided among their sharers,
// so the browser binary's shared pages are not counted once per process
// as RSS would) and its CPU time.
type renderer struct {
	pid int
	// ui: the process runs Chrome's own UI (--top-chrome-webui, the
	// omnibox popup, 65-75 MiB), which headless Chromium starts too.
	ui  bool
	pss int64 // KiB
	cpu time.Duration
}

// renderers lists the browser's renderer processes. Besides the page's
// there are one of Chrome's UI and a spare one kept for the next
// navigation (about 20 MiB); neither holds the page.
func renderers(t *testing.T, b *browser) []renderer {
	t.Helper()
	c := chromedp.FromContext(b.ctx)
	if c == nil || c.Browser == nil || c.Browser.Process() == nil {
		t.Fatal("no browser process")
	}
	root := c.Browser.Process().Pid
	entries, _ := os.ReadDir("/proc")
	var rs []renderer
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// Chromium rewrites its command line: arguments are separated by
		// spaces, not NULs.
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), "--type=renderer") || !descends(pid, root) {
			continue
		}
		rs = append(rs, renderer{pid: pid, ui: strings.Contains(string(cmd), "--top-chrome-webui"),
			pss: procKiB(pid, "smaps_rollup", "Pss:"), cpu: cpuTime(pid)})
	}
	return rs
}

// rendererPeaks keeps the most PSS each renderer process had, and the
// most all of them had together, over samples.
type rendererPeaks struct {
	each map[int]int64
	all  int64
}

func (p *rendererPeaks) sample(rs []renderer) {
	if p.each == nil {
		p.each = map[int]int64{}
	}
	var sum int64
	for _, r := range rs {
		p.each[r.pid] = max(p.each[r.pid], r.pss)
		sum += r.pss
	}
	p.all = max(p.all, sum)
}

// report logs the memory of the page's renderer (the one of after that
// pageRenderer picks) and of all renderers, and returns the most PSS
// the page's renderer had and the CPU time it used from before to after.
func (p *rendererPeaks) report(t *testing.T, before, after []renderer) (peak int64, cpu time.Duration) {
	t.Helper()
	page := pageRenderer(t, after)
	var pss0 int64
	cpu = page.cpu
	for _, r := range before {
		if r.pid == page.pid {
			pss0, cpu = r.pss, page.cpu-r.cpu
		}
	}
	var others []string
	for _, r := range after {
		if r.pid != page.pid {
			others = append(others, fmt.Sprintf("%d MiB (Chrome's UI: %v)", p.each[r.pid]>>10, r.ui))
		}
	}
	t.Logf("the page's renderer (PSS): %d MiB before, at most %d MiB while following; all %d renderers together at most %d MiB, the others at most %s",
		pss0>>10, p.each[page.pid]>>10, len(after), p.all>>10, strings.Join(others, ", "))
	return p.each[page.pid], cpu
}

// pageRenderer is the renderer of rs that holds the page: of those that
// are not Chrome's UI, the one that used the most CPU time (the spare one
// has used next to none).
func pageRenderer(t *testing.T, rs []renderer) renderer {
	t.Helper()
	var page renderer
	for _, r := range rs {
		if !r.ui && (page.pid == 0 || r.cpu > page.cpu) {
			page = r
		}
	}
	if page.pid == 0 {
		t.Fatal("no renderer holds the page")
	}
	return page
}

// cpuTime is a process's user + system CPU time (/proc/PID/stat fields
// 14 and 15, in clock ticks of 10 ms on Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// metrics returns the page's Performance metrics named (cumulative
// durations in seconds, counts), read over the debugging protocol.
func metrics(t *testing.T, b *browser, names ...string) map[string]float64 {
	t.Helper()
	tg := chromedp.FromContext(b.ctx).Target
	if err := tg.Call(b.ctx, "Performance.enable", nil, nil); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Metrics []struct {
			Name  string  `json:"name"`
			Value float64 `json:"value"`
		} `json:"metrics"`
	}
	if err := tg.Call(b.ctx, "Performance.getMetrics", nil, &res); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, m := range res.Metrics {
		if slices.Contains(names, m.Name) {
			out[m.Name] = m.Value
		}
	}
	return out
}

// domNodes is the page's count of DOM nodes that exist, in the document
// or removed from it and not yet collected (Memory.getDOMCounters).
func domNodes(t *testing.T, b *browser) int {
	t.Helper()
	var c struct {
		Nodes int `json:"nodes"`
	}
	if err := chromedp.FromContext(b.ctx).Target.Call(b.ctx, "Memory.getDOMCounters", nil, &c); err != nil {
		t.Fatal(err)
	}
	return c.Nodes
}

// loadavg is the first field of /proc/loadavg.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// descends reports whether pid is root or one of its descendants.
func descends(pid, root int) bool {
	for range 16 {
		if pid == root {
			return true
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return false
}

// monitorScript records in the page the longest task on the main thread
// (Long Tasks API) and the most a 50 ms timer fired late, both in ms.
const monitorScript = `(() => {
	window.probe = {task: 0, late: 0};
	new PerformanceObserver(l => l.getEntries().forEach(e => { probe.task = Math.max(probe.task, e.duration); }))
		.observe({type: "longtask"});
	let last = performance.now();
	setInterval(() => { const now = performance.now(); probe.late = Math.max(probe.late, now - last - 50); last = now; }, 50);
	return "ok";
})()`

// TestLogScaleFollow follows a running step's log while 100,000 lines
// arrive at 5,000 lines/s (100 lines every 20 ms). A script probe runs
// in the page every 100 ms; its round trip must stay under 200 ms
// throughout, and the memory of the page's renderer process under 300 MB.
func TestLogScaleFollow(t *testing.T) {
	needScale(t)
	e := newEnv(t)
	b := newBrowser(t, 10*time.Minute)
	build := e.run.Stages[0]
	key := runner.LogKey(e.run.ID, "build", build.Attempt, 1)
	b.login(e, runPath(e.run.ID)+"/stages/build/steps/1/log", `#log[data-follow="true"]`)
	b.run("following", chromedp.Poll[chromedp.Void](`document.getElementById("live-state").textContent === "following live…"`,
		chromedp.WithPollingTimeout(time.Minute)))
	prioritize(t, b)
	var peaks rendererPeaks
	before := renderers(t, b)
	peaks.sample(before)
	load0 := loadavg()
	perf := []string{"TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "Nodes", "LayoutCount"}
	m0 := metrics(t, b, perf...)
	b.eval("monitor", monitorScript)

	const total = 100000
	done := writeLive(t, e, key, total, 100, 20*time.Millisecond)

	var probes []time.Duration
	var nodes int // the most DOM nodes, counting removed ones not yet collected
	var heap string
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	var w written
	for w.took == 0 {
		select {
		case w = <-done:
		case <-ticker.C:
			start := time.Now()
			b.eval("probe", `String(document.getElementById("log").dataset.lines)`)
			probes = append(probes, time.Since(start))
			peaks.sample(renderers(t, b))
			if len(probes)%5 == 0 {
				nodes = max(nodes, domNodes(t, b))
			}
		}
	}
	caught := time.Now()
	b.run("all lines arrive", chromedp.Poll[chromedp.Void](`document.getElementById("log").dataset.to === "`+strconv.FormatInt(w.size, 10)+`"`,
		chromedp.WithPollingTimeout(2*time.Minute)))
	lag := time.Since(caught)
	after := renderers(t, b)
	peaks.sample(after)
	maxPage, cpu := peaks.report(t, before, after)
	m1 := metrics(t, b, perf...)
	inPage := b.eval("in-page probe", `Math.round(probe.task) + " " + Math.round(probe.late)`)
	heap = b.eval("heap", `String(Math.round(performance.memory.usedJSHeapSize / 1048576))`)
	held := b.eval("held", `document.getElementById("log").dataset.lines`)

	slices.Sort(probes)
	p50, p99, worst := probes[len(probes)/2], probes[len(probes)*99/100], probes[len(probes)-1]
	t.Logf("wrote %d lines (%.1f MiB) in %v (%.0f lines/s); page caught up %v after the last write", total, float64(w.size)/(1<<20),
		w.took.Round(time.Millisecond), float64(total)/w.took.Seconds(), lag.Round(time.Millisecond))
	t.Logf("script probe over the debugging protocol, %d samples: p50 %v, p99 %v, max %v", len(probes), p50.Round(time.Millisecond),
		p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	var task, late int
	fmt.Sscanf(inPage, "%d %d", &task, &late)
	t.Logf("in the page: longest main-thread task %d ms, a 50 ms timer at most %d ms late", task, late)
	t.Logf("the page's renderer: JS heap at the end %s MiB; lines held at the end %s; CPU time while following %v over %v (%.0f%% of one core); load average %s at the start, %s at the end",
		heap, held, cpu.Round(10*time.Millisecond), (w.took + lag).Round(time.Millisecond), 100*cpu.Seconds()/(w.took+lag).Seconds(), load0, loadavg())
	t.Logf("main thread busy (Performance metrics, wall time): tasks %.2fs, script %.2fs, layout %.2fs (%.0f layouts), style %.2fs; DOM nodes at the end %.0f, at most %d (every 0.5 s, with removed ones not yet collected)",
		m1["TaskDuration"]-m0["TaskDuration"], m1["ScriptDuration"]-m0["ScriptDuration"], m1["LayoutDuration"]-m0["LayoutDuration"],
		m1["LayoutCount"]-m0["LayoutCount"], m1["RecalcStyleDuration"]-m0["RecalcStyleDuration"], m1["Nodes"], nodes)
	if worst > 200*time.Millisecond {
		t.Errorf("a script probe took %v, want < 200ms throughout", worst)
	}
	if maxPage > 300<<10 {
		t.Errorf("the page's renderer reached %d MiB, want < 300 MiB", maxPage>>10)
	}
}

// written is what writeLive wrote: in how long, and the log's size.
type written struct {
	took time.Duration
	size int64
}

// writeLive appends total lines to the running log key, perTick lines
// every tick, after the one line the fixture wrote; it sends what it
// wrote when done.
func writeLive(t *testing.T, e *env, key logstore.Key, total, perTick int, tick time.Duration) <-chan written {
	done := make(chan written, 1)
	go func() {
		size := int64(len("=== RUN TestOne\n"))
		start := time.Now()
		pace := time.NewTicker(tick) // the writer's pace
		defer pace.Stop()
		n := 1
		for seq := int64(1); n <= total; seq++ {
			var chunk strings.Builder
			for end := n + perTick; n < end; n++ {
				chunk.WriteString(logLine(n))
			}
			if err := e.logs.Append(key, seq, []byte(chunk.String())); err != nil {
				t.Error(err)
				break
			}
			size += int64(chunk.Len())
			<-pace.C
		}
		done <- written{time.Since(start), size}
	}()
	return done
}

// TestLogScaleBigLog opens the page of a finished 100 MiB log: its load
// event must fire within 2 s. Then 16 viewers fetch the page at once,
// each reading slowly, and the server's RSS (this process's: the server
// runs in it) must grow by less than 100 MB in total.
func TestLogScaleBigLog(t *testing.T) {
	needScale(t)
	e := newEnv(t)
	b := newBrowser(t, 10*time.Minute)
	build := e.run.Stages[0]
	key := runner.LogKey(e.run.ID, "build", build.Attempt, 1)
	zero := 0
	if err := e.store.UpdateStep(context.Background(), build.ID, build.Attempt, 1, store.StepUpdate{Status: store.StatusSuccess, ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := e.logs.Finish(key); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(e.logs.Path(key))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	lines := 0
	for size < 100<<20 {
		lines++
		n, _ := w.WriteString(logLine(lines))
		size += int64(n)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	path := runPath(e.run.ID) + "/stages/build/steps/1/log"
	b.login(e, path, `#log[data-final="true"]`)
	prioritize(t, b)
	// Load again, now with the session, and time it with Navigation Timing.
	var loads []float64
	for range 5 {
		b.run("reload", chromedp.Navigate(e.srv.URL+path), chromedp.WaitVisible(chromedp.CSS(`#log[data-final="true"]`)),
			chromedp.Poll[chromedp.Void](`performance.getEntriesByType("navigation")[0].loadEventEnd > 0`, chromedp.WithPollingTimeout(time.Minute)))
		ms, err := strconv.ParseFloat(b.eval("load", `String(performance.getEntriesByType("navigation")[0].loadEventEnd)`), 64)
		if err != nil {
			t.Fatal(err)
		}
		loads = append(loads, ms)
	}
	slices.Sort(loads)
	first := b.eval("first line", `document.querySelector("#log .line").textContent`)
	held := b.eval("held", `document.getElementById("log").dataset.lines`)
	t.Logf("%.1f MiB, %d lines: load event at %.0f ms (median of 5; min %.0f, max %.0f); the page holds %s lines, the first %q",
		float64(size)/(1<<20), lines, loads[2], loads[0], loads[4], held, first)
	if loads[2] > 2000 {
		t.Errorf("load event at %.0f ms, want < 2 s", loads[2])
	}
	if !strings.HasPrefix(first, "line ") {
		t.Errorf("the page's first line %q is cut mid-line", first)
	}

	// 16 viewers at once: each GETs the page with the session cookie and
	// reads it 4 KiB at a time, 2 ms apart, so all are mid-page together.
	c := e.client()
	e.login(c, e.token)
	runtime.GC()
	debug.FreeOSMemory()
	before := rssKiB(os.Getpid())
	var peak int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				peak = max(peak, rssKiB(os.Getpid()))
			}
		}
	}()
	const viewers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	var read []int64
	ready := make(chan struct{})
	for range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			resp, err := c.Get(e.srv.URL + path)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("viewer: %d", resp.StatusCode)
				return
			}
			buf := make([]byte, 4<<10)
			var n int64
			pace := time.NewTicker(2 * time.Millisecond) // a slow reader's pace (load), keeping its response open
			defer pace.Stop()
			for {
				k, err := resp.Body.Read(buf)
				n += int64(k)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Error(err)
					return
				}
				<-pace.C
			}
			mu.Lock()
			read = append(read, n)
			mu.Unlock()
		}()
	}
	close(ready)
	wg.Wait()
	close(stop)
	sampler.Wait()
	t.Logf("%d viewers of the page at once (%d bytes each): server RSS %d MiB before, peak %d MiB (+%d MiB)",
		viewers, read[0], before>>10, peak>>10, (peak-before)>>10)
	if peak-before > 100<<10 {
		t.Errorf("16 viewers added %d MiB to the server's RSS, want < 100 MB", (peak-before)>>10)
	}
}
