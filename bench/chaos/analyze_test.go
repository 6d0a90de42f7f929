package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func sp(run, stage string, attempt int, pid string, start, end int) span {
	s := span{run: run, stage: stage, attempt: attempt, pid: pid, start: at(start), end: at(end), ended: end >= 0}
	if end < 0 {
		s.end = time.Time{}
	}
	return s
}

func TestDoubled(t *testing.T) {
	for _, c := range []struct {
		name  string
		spans []span
		want  int
	}{
		{"steps one after another", []span{sp("1", "a", 1, "p", 0, 5), sp("1", "a", 1, "p", 5, 9)}, 0},
		{"retry after the first ended", []span{sp("1", "a", 1, "p", 0, 5), sp("1", "a", 2, "q", 40, 45)}, 0},
		{"retry while the orphan runs", []span{sp("1", "a", 1, "p", 0, 50), sp("1", "a", 2, "q", 40, 45)}, 1},
		{"same attempt twice at once", []span{sp("1", "a", 1, "p", 0, 10), sp("1", "a", 1, "q", 3, 8)}, 1},
		{"never ended counts as running", []span{sp("1", "a", 1, "p", 0, -1), sp("1", "a", 2, "q", 40, 45)}, 1},
		{"other stages and runs at once", []span{sp("1", "a", 1, "p", 0, 10), sp("1", "b", 1, "p", 0, 10), sp("2", "a", 1, "q", 0, 10)}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := doubled(c.spans, at(100)); len(got) != c.want {
				t.Errorf("got %q, want %d doubled stages", got, c.want)
			}
		})
	}
}

func TestRerunWhileAlive(t *testing.T) {
	deaths := map[string]time.Time{"dead": at(10)}
	seen := func(attempt int, pid string, s int) sighting {
		return sighting{run: "1", stage: "a", attempt: attempt, pid: pid, at: at(s)}
	}
	for _, c := range []struct {
		name string
		seen []sighting
		want int
	}{
		{"retry after its agent died", []sighting{seen(1, "dead", 0), seen(2, "q", 40)}, 0},
		{"retry while its agent lives", []sighting{seen(1, "alive", 0), seen(2, "q", 40)}, 1},
		{"retry before its agent died", []sighting{seen(2, "q", 5), seen(1, "dead", 0)}, 1},
		{"one attempt", []sighting{seen(1, "alive", 0)}, 0},
		{"other stages", []sighting{seen(1, "alive", 0), {run: "1", stage: "b", attempt: 2, pid: "q", at: at(40)}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := rerunWhileAlive(c.seen, deaths); len(got) != c.want {
				t.Errorf("got %q, want %d", got, c.want)
			}
		})
	}
}

func TestKillToNextAttempt(t *testing.T) {
	seen := []sighting{
		{run: "1", stage: "a", attempt: 1, pid: "dead", at: at(0)},  // under way at the kill (t=10)
		{run: "1", stage: "a", attempt: 2, pid: "q", at: at(38)},    // its next attempt, 28 s later
		{run: "1", stage: "b", attempt: 1, pid: "dead", at: at(0)},  // its step ended before the kill
		{run: "2", stage: "a", attempt: 1, pid: "dead", at: at(8)},  // in setup at the kill, never retried
		{run: "3", stage: "a", attempt: 1, pid: "other", at: at(0)}, // another agent's
		{run: "4", stage: "a", attempt: 1, pid: "dead", at: at(12)}, // began after the kill (a pid is not reused here)
	}
	spans := []span{sp("1", "a", 1, "dead", 1, 12), sp("1", "b", 1, "dead", 1, 5), sp("1", "a", 2, "q", 39, 40)}
	got := killToNextAttempt(seen, spans, []kill{{pid: "dead", at: at(10)}})
	if !reflect.DeepEqual(got.delays, []time.Duration{28 * time.Second}) || got.lost != 1 {
		t.Errorf("got %+v, want one delay of 28s and one stage not retried", got)
	}
	if s := got.String(); !strings.Contains(s, "median 28s") {
		t.Errorf("String() = %q", s)
	}
}

func TestJudge(t *testing.T) {
	want := func(stage string) string { return stage + " 1\n" + stage + " 2\n" }
	ok := func(id int64, commit string) runInfo {
		return runInfo{id: id, commit: commit, status: "success", stages: []stageInfo{{id: "a", status: "success", attempt: 1,
			steps: []stepInfo{{name: "s", status: "success", log: want("a")}}}}}
	}
	c1, c2, c3, c4, c5 := strings.Repeat("1", 40), strings.Repeat("2", 40), strings.Repeat("3", 40), strings.Repeat("4", 40), strings.Repeat("5", 40)
	short := ok(4, c4)
	short.stages[0].steps[0].log = "a 1\n"
	exit := 137
	failed := runInfo{id: 5, commit: c5, status: "failure", stages: []stageInfo{{id: "a", status: "failure", attempt: 2,
		steps: []stepInfo{{name: "s", status: "failure", exit: &exit}}}}}
	runs := []runInfo{ok(1, c1), ok(2, c2), ok(3, c2), short, failed, {id: 6, commit: c1 + "x", status: "running"}}
	o := judge([]string{c1, c2, c3, c4, c5}, runs, want)
	for name, c := range map[string]struct {
		got  []string
		want int
	}{"lost": {o.lost, 1}, "duplicates": {o.duplicates, 1}, "stuck": {o.stuck, 1}, "falsely failed": {o.falselyFailed, 1}, "logs short": {o.logsShort, 1}} {
		if len(c.got) != c.want {
			t.Errorf("%s: got %q, want %d", name, c.got, c.want)
		}
	}
	if len(o.falselyFailed) == 1 && !strings.Contains(o.falselyFailed[0], "s exit 137") {
		t.Errorf("falsely failed %q does not name the step's exit code", o.falselyFailed[0])
	}
}
