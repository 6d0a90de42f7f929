package docker

import (
	"fmt"
	"testing"
)

// TestAdmit: the fencing rule over plain values.
func TestAdmit(t *testing.T) {
	many := make([]fence, maxFences)
	for i := range many {
		many[i] = fence{fmt.Sprintf("r%d", i), 1}
	}
	tests := []struct {
		name    string
		fences  []fence
		release string
		attempt int
		ok      bool
		after   string
	}{
		{"no release: never fenced", []fence{{"r", 3}}, "", 0, true, "[{r 3}]"},
		{"first routes of a release", nil, "r", 1, true, "[{r 1}]"},
		{"same attempt again", []fence{{"r", 1}}, "r", 1, true, "[{r 1}]"},
		{"a later attempt takes over", []fence{{"r", 1}}, "r", 2, true, "[{r 2}]"},
		{"a stale attempt is refused", []fence{{"r", 2}}, "r", 1, false, "[{r 2}]"},
		{"another release is not fenced by it", []fence{{"r", 2}}, "s", 1, true, "[{r 2} {s 1}]"},
		{"a stale attempt after the next release started", []fence{{"r", 2}, {"s", 1}}, "r", 1, false, "[{r 2} {s 1}]"},
		{"a release seen again moves last", []fence{{"r", 1}, {"s", 1}}, "r", 1, true, "[{s 1} {r 1}]"},
	}
	for _, tt := range tests {
		got, ok := admit(tt.fences, tt.release, tt.attempt)
		if ok != tt.ok || fmt.Sprint(got) != tt.after {
			t.Errorf("%s: got %v %v, want %v %s", tt.name, got, ok, tt.ok, tt.after)
		}
	}
	got, _ := admit(many, "new", 1)
	if len(got) != maxFences || got[0].Release != "r1" || got[maxFences-1].Release != "new" {
		t.Errorf("over the bound: %d fences from %v to %v, want %d from r1 to new", len(got), got[0], got[len(got)-1], maxFences)
	}
}
