package deliveryq

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestFair: deliveries are handed out round-robin across repositories,
// oldest first within one, at most perRepo of a repository at a time;
// held and heldPerRepo bound what is held.
func TestFair(t *testing.T) {
	// Ops: "+A1" adds delivery 1 of repo A (want it added), "!A1" adds it
	// and wants no room, "next=A1" hands out (want A1, or "-" for none),
	// "done=A1" returns it.
	tests := []struct {
		name                       string
		held, heldPerRepo, perRepo int
		ops                        string
	}{
		{"round robin", 10, 10, 1, "+A1 +A2 +A3 +B4 +C5 next=A1 next=B4 next=C5 next=- done=A1 next=A2 done=B4 next=- done=A2 next=A3"},
		{"a busy repository does not hold others", 10, 10, 1, "+A1 +A2 next=A1 next=- +B3 next=B3 +B4 next=- done=B3 next=B4"},
		{"two per repository", 10, 10, 2, "+A1 +A2 +A3 +B4 next=A1 next=B4 next=A2 next=- done=A1 next=A3"},
		{"held per repository", 10, 2, 1, "+A1 +A2 !A3 +B4 next=A1 !A3 done=A1 +A3 next=B4 next=A2"},
		{"held in all", 3, 3, 1, "+A1 +B2 +C3 !D4 next=A1 !D4 done=A1 +D4 next=B2 next=C3 next=D4"},
		{"adding a held delivery again is a no-op", 2, 2, 1, "+A1 +A1 +A2 next=A1 next=- done=A1 next=A2 next=-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFair(tc.held, tc.heldPerRepo, tc.perRepo)
			out := map[string]*job{}
			mk := func(s string) *job {
				var id int64
				fmt.Sscan(s[1:], &id)
				return &job{id: id, repoID: int64(s[0]), source: s}
			}
			for _, op := range strings.Fields(tc.ops) {
				switch {
				case op[0] == '+' || op[0] == '!':
					if got, want := f.add(mk(op[1:])), op[0] == '+'; got != want {
						t.Fatalf("%s: add got %v, want %v", op, got, want)
					}
				case strings.HasPrefix(op, "next="):
					got := "-"
					if j := f.next(); j != nil {
						got = j.source
						out[got] = j
					}
					if want := op[5:]; got != want {
						t.Fatalf("%s: got %s", op, got)
					}
				case strings.HasPrefix(op, "done="):
					f.done(out[op[5:]])
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	waits := []time.Duration{time.Second, time.Minute, time.Hour}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, time.Minute}, {3, time.Hour}, {4, time.Hour}, {100, time.Hour}} {
		if got := Backoff(waits, tc.attempt); got != tc.want {
			t.Errorf("Backoff(attempt %d): got %v, want %v", tc.attempt, got, tc.want)
		}
	}
	if got := Backoff(nil, 3); got != 0 {
		t.Errorf("Backoff without waits: got %v, want 0", got)
	}
}
