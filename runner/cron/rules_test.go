package cron

import (
	"testing"
	"time"
)

func mustParse(t *testing.T, expr, tz string) *Spec {
	t.Helper()
	s, err := Parse(expr, tz)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParse(t *testing.T) {
	for _, c := range []struct{ expr, tz, from, next string }{
		{"0 3 * * *", "", "2026-12-05T12:00:00Z", "2026-12-06T03:00:00Z"},
		{"0 3 * * *", "Europe/Berlin", "2026-12-05T12:00:00Z", "2026-12-06T02:00:00Z"},
		{"0 3 * * *", "Europe/Berlin", "2026-07-05T12:00:00Z", "2026-07-06T01:00:00Z"},
		{"*/2 * * * * *", "", "2026-12-05T12:00:01Z", "2026-12-05T12:00:02Z"},
		{"@hourly", "", "2026-12-05T12:00:00Z", "2026-12-05T13:00:00Z"},
		{"30 9 * * 1-5", "America/New_York", "2026-12-05T12:00:00Z", "2026-12-07T14:30:00Z"},
	} {
		s := mustParse(t, c.expr, c.tz)
		if got := s.Next(at(c.from)); !got.Equal(at(c.next)) {
			t.Errorf("Parse(%q, %q).Next(%s) = %s, want %s", c.expr, c.tz, c.from, got, c.next)
		}
	}
	for _, c := range []struct{ expr, tz string }{
		{"", ""}, {"* * *", ""}, {"61 * * * *", ""}, {"0 3 * * *", "Mars/Base"}, {"CRON_TZ=UTC 0 3 * * *", ""},
		{"0 0 30 2 *", ""},
	} {
		if _, err := Parse(c.expr, c.tz); err == nil {
			t.Errorf("Parse(%q, %q): no error", c.expr, c.tz)
		}
	}
}

func TestDue(t *testing.T) {
	every2s := mustParse(t, "*/2 * * * * *", "")
	daily := mustParse(t, "0 3 * * *", "")
	const grace = 10 * time.Second
	for _, c := range []struct {
		name              string
		spec              *Spec
		next, now         string
		missed            Missed
		wantFire, wantNew string // "" means zero
	}{
		{"not yet", daily, "2026-12-06T03:00:00Z", "2026-12-05T12:00:00Z", MissedRun, "", "2026-12-06T03:00:00Z"},
		{"on time", daily, "2026-12-06T03:00:00Z", "2026-12-06T03:00:00Z", MissedSkip, "2026-12-06T03:00:00Z", "2026-12-07T03:00:00Z"},
		{"a little late", daily, "2026-12-06T03:00:00Z", "2026-12-06T03:00:09Z", MissedSkip, "2026-12-06T03:00:00Z", "2026-12-07T03:00:00Z"},
		{"missed, run once", daily, "2026-12-01T03:00:00Z", "2026-12-06T12:00:00Z", MissedRun, "2026-12-06T03:00:00Z", "2026-12-07T03:00:00Z"},
		{"missed, skipped", daily, "2026-12-01T03:00:00Z", "2026-12-06T12:00:00Z", MissedSkip, "", "2026-12-07T03:00:00Z"},
		{"many missed, latest on time", every2s, "2026-12-05T12:00:00Z", "2026-12-05T12:10:01Z", MissedSkip, "2026-12-05T12:10:00Z", "2026-12-05T12:10:02Z"},
		{"a year down, every 2 s", every2s, "2025-12-05T12:00:00Z", "2026-12-05T12:10:01Z", MissedRun, "2026-12-05T12:10:00Z", "2026-12-05T12:10:02Z"},
		{"one-off on time", nil, "2026-12-05T12:00:00Z", "2026-12-05T12:00:01Z", MissedSkip, "2026-12-05T12:00:00Z", ""},
		{"one-off missed, run", nil, "2026-12-05T12:00:00Z", "2026-12-05T13:00:00Z", MissedRun, "2026-12-05T12:00:00Z", ""},
		{"one-off missed, skipped", nil, "2026-12-05T12:00:00Z", "2026-12-05T13:00:00Z", MissedSkip, "", ""},
		{"one-off not yet", nil, "2026-12-05T12:00:00Z", "2026-12-05T11:00:00Z", MissedRun, "", "2026-12-05T12:00:00Z"},
	} {
		fire, after := Due(c.spec, at(c.next), at(c.now), grace, c.missed)
		var wantFire, wantNew time.Time
		if c.wantFire != "" {
			wantFire = at(c.wantFire)
		}
		if c.wantNew != "" {
			wantNew = at(c.wantNew)
		}
		if !fire.Equal(wantFire) || !after.Equal(wantNew) {
			t.Errorf("%s: Due = %s, %s; want %s, %s", c.name, fire, after, wantFire, wantNew)
		}
	}
}
