package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/runnel-ci/runnel/agents/engine/docker"
)

type options struct {
	runnel     string
	agents     int
	capacity   int
	pushes     int
	pushEvery  time.Duration
	bursts     int
	burstSize  int
	agentKill  time.Duration
	serverKill time.Duration
	settle     time.Duration
	lease      time.Duration
	keep       bool
	workDir    string
}

func main() {
	var o options
	flag.StringVar(&o.runnel, "runnel", "", "runnel binary (default: build ./cmd/runnel)")
	flag.IntVar(&o.agents, "agents", 3, "runnel agent processes")
	flag.IntVar(&o.capacity, "capacity", 2, "stages each agent runs at once")
	flag.IntVar(&o.pushes, "pushes", 12, "git pushes")
	flag.DurationVar(&o.pushEvery, "push-every", 5*time.Second, "pause between pushes")
	flag.IntVar(&o.bursts, "bursts", 1, "bursts of simultaneous deliveries, each with a server SIGKILL")
	flag.IntVar(&o.burstSize, "burst-size", 20, "deliveries per burst")
	flag.DurationVar(&o.agentKill, "agent-kill-every", 10*time.Second, "mean time between agent SIGKILLs")
	flag.DurationVar(&o.serverKill, "server-kill-every", 60*time.Second, "mean time between server SIGKILLs (besides the bursts')")
	flag.DurationVar(&o.settle, "settle", 5*time.Minute, "how long after the last kill every run must have finished")
	flag.DurationVar(&o.lease, "lease-timeout", 0, "the server's --lease-timeout (0: its default, 45s): the agent SIGKILL -> next attempt time")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, data) at the end")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

// run sets everything up, runs the timeline, judges and reports; the exit
// code is 1 when the promise was broken.
func run(ctx context.Context, o options, out io.Writer) (int, error) {
	dir, err := os.MkdirTemp("", "runnel-chaos-")
	if err != nil {
		return 2, err
	}
	o.workDir = dir
	if !o.keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintln(out, "chaos: work directory", dir)
	}
	if o.runnel == "" {
		o.runnel = filepath.Join(dir, "runnel")
		if b, err := exec.Command("go", "build", "-o", o.runnel, "./cmd/runnel").CombinedOutput(); err != nil {
			return 2, fmt.Errorf("build runnel (run from the repository root or pass -runnel): %v: %s", err, b)
		}
	}
	cli, err := docker.NewClient()
	if err != nil {
		return 2, err
	}
	defer cli.Close()
	c, err := newCluster(o.runnel, dir, o.agents, o.capacity, o.lease)
	if err != nil {
		return 2, err
	}
	if err := c.startServer(); err != nil {
		return 2, err
	}
	defer func() {
		c.stopAll()
		removeInstall(context.WithoutCancel(ctx), cli, c.install)
	}()
	rctx, stopRec := context.WithCancel(ctx)
	defer stopRec()
	rec := record(rctx, cli, c.install)
	for i := range o.agents {
		if err := c.startAgent(i); err != nil {
			return 2, err
		}
	}
	if err := c.waitAgents(ctx); err != nil {
		return 2, err
	}
	r, err := newRepo(ctx, c)
	if err != nil {
		return 2, err
	}
	start := time.Now()
	l, err := timeline(ctx, o, c, r)
	if err != nil {
		return 2, err
	}
	lastKill := time.Now()
	fmt.Fprintf(out, "chaos: timeline done in %s; settling\n", time.Since(start).Round(time.Second))
	rep, err := settle(ctx, o, c, l, lastKill, rec.lastEvent)
	if err != nil {
		return 2, err
	}
	rep.left, err = waitLeftovers(ctx, cli, c.install)
	if err != nil {
		return 2, err
	}
	stopRec()
	<-rec.done
	spans, seen, err := rec.snapshot()
	if err != nil {
		return 2, err
	}
	rep.steps = len(spans)
	for _, s := range spans {
		if time.Since(s.start) < time.Minute {
			rep.recentSteps++
		}
	}
	c.mu.Lock()
	rep.doubled = doubled(spans, time.Now())
	rep.rerun = rerunWhileAlive(seen, c.deaths)
	rep.recovery = killToNextAttempt(seen, spans, c.kills)
	rep.agentKills, rep.serverKills = len(c.kills), c.srvKills
	c.mu.Unlock()
	rep.elapsed = time.Since(start)
	rep.print(out)
	if rep.broken() {
		return 1, nil
	}
	return 0, nil
}

// load is what the timeline sent and which of it was accepted.
type load struct {
	pushes     []push
	deliveries []*delivery
}

func (l *load) accepted() []string {
	var out []string
	for _, p := range l.pushes {
		if p.accepted {
			out = append(out, p.commit)
		}
	}
	for _, d := range l.deliveries {
		if accepted(d.status) {
			out = append(out, d.commit)
		}
	}
	return out
}

// timeline pushes o.pushes times while killing agents and the server, and
// fires the bursts spread over the same time. It returns when all pushes
// and bursts are done, with every process running again.
func timeline(ctx context.Context, o options, c *cluster, r *repo) (*load, error) {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := &load{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Go(func() {
		errc <- every(tctx, jitter(o.agentKill), o.agentKill, func() error { return c.killAgent(rand.IntN(o.agents)) })
	})
	wg.Go(func() { errc <- every(tctx, jitter(o.serverKill)/2, o.serverKill, c.killServer) })
	total := time.Duration(o.pushes) * o.pushEvery
	bursts := make(chan error, 1)
	go func() {
		t0 := time.Now()
		for k := range o.bursts {
			at := t0.Add(time.Duration(2*k+1) * total / time.Duration(2*o.bursts))
			if !sleepCtx(tctx, time.Until(at)) {
				break
			}
			ds, err := r.burst(tctx, c, k, o.burstSize)
			mu.Lock()
			l.deliveries = append(l.deliveries, ds...)
			mu.Unlock()
			if err != nil {
				bursts <- err
				return
			}
		}
		bursts <- nil
	}()
	for range o.pushes {
		p := r.push()
		mu.Lock()
		l.pushes = append(l.pushes, p)
		mu.Unlock()
		if !sleepCtx(ctx, o.pushEvery) {
			break
		}
	}
	err := <-bursts
	cancel()
	wg.Wait()
	close(errc)
	for e := range errc {
		err = errors.Join(err, e)
	}
	return l, errors.Join(err, ctx.Err())
}

// every calls f after first, then at jittered intervals of about d,
// until ctx ends.
func every(ctx context.Context, first, d time.Duration, f func() error) error {
	for wait := first; sleepCtx(ctx, wait); wait = jitter(d) {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
