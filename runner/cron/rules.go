package cron

import (
	"fmt"
	"strings"
	"time"

	robfig "github.com/robfig/cron/v3"
)

// Missed says what happens to a tick that passed while no server ran.
type Missed string

// Missed policies.
const (
	// MissedRun runs the latest missed tick once, late.
	MissedRun Missed = "run"
	// MissedSkip skips missed ticks; the next one runs on time.
	MissedSkip Missed = "skip"
)

// ParseMissed checks a policy name; "" means MissedRun.
func ParseMissed(s string) (Missed, error) {
	switch Missed(s) {
	case "", MissedRun:
		return MissedRun, nil
	case MissedSkip:
		return MissedSkip, nil
	}
	return "", fmt.Errorf("missed %q: want run or skip", s)
}

// Spec is a parsed cron expression in a time zone.
type Spec struct {
	sched robfig.Schedule
	loc   *time.Location
}

var parser = robfig.NewParser(robfig.SecondOptional | robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month |
	robfig.Dow | robfig.Descriptor)

// Parse parses a cron expression: "m h dom mon dow" (standard), "s m h
// dom mon dow" (seconds first), or @yearly, @monthly, @weekly, @daily,
// @hourly, @every DURATION. tz is an IANA zone name ("" means UTC); the
// expression's times are wall-clock times there. A time zone inside the
// expression (CRON_TZ=) is refused: it has its own field.
func Parse(expr, tz string) (Spec, error) {
	if strings.Contains(expr, "TZ=") {
		return Spec{}, fmt.Errorf("cron %q: give the time zone as the schedule's timezone, not in the expression", expr)
	}
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return Spec{}, fmt.Errorf("timezone %q: %v", tz, err)
	}
	s, err := parser.Parse(expr)
	if err != nil {
		return Spec{}, fmt.Errorf("cron %q: %v", expr, err)
	}
	sp := Spec{sched: s, loc: loc}
	if sp.Next(time.Now()).IsZero() {
		return Spec{}, fmt.Errorf("cron %q: never fires", expr)
	}
	return sp, nil
}

// Next returns the first tick strictly after t (zero if there is none
// within five years).
func (s Spec) Next(t time.Time) time.Time {
	n := s.sched.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// latest returns the last tick at or before now, given from, a tick at
// or before now. It looks back from now in growing windows, so a long
// downtime of a frequent schedule costs few steps.
func (s Spec) latest(from, now time.Time) time.Time {
	walk := func(t time.Time) time.Time {
		for n := s.Next(t); !n.IsZero() && !n.After(now); n = s.Next(t) {
			t = n
		}
		return t
	}
	for w := time.Minute; ; w *= 2 {
		start := now.Add(-w)
		if !start.After(from) {
			return walk(from)
		}
		if t := s.Next(start); !t.IsZero() && !t.After(now) {
			return walk(t)
		}
	}
}

// Due decides what a schedule whose next tick is next does at now. fire
// is the tick to run (zero: none); after is the schedule's new next tick
// (equal to next when nothing is due yet). Of all ticks due, only the
// latest can run: at once when it is no more than grace late, else only
// with MissedRun. A one-off schedule (s nil) has one tick, next, and no
// tick after it (after is zero).
func Due(s *Spec, next, now time.Time, grace time.Duration, missed Missed) (fire, after time.Time) {
	if next.IsZero() || now.Before(next) {
		return time.Time{}, next
	}
	latest := next
	if s != nil {
		latest = s.latest(next, now)
		after = s.Next(now)
	}
	if now.Sub(latest) <= grace || missed == MissedRun {
		fire = latest
	}
	return fire, after
}
