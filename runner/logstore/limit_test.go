package logstore

import (
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/agents/logs"
)

type chunk struct {
	seq  int64
	data string
}

// A log is cut at the cap in chunk order, whatever order its chunks
// arrive in; chunks past it are taken (no error: they are acknowledged)
// and dropped, and the log closes as it would without the cap.
func TestStepMax(t *testing.T) {
	note := string(logs.TruncationNote(10))
	tests := []struct {
		name    string
		chunks  []chunk // in arrival order
		want    string
		dropped int64
	}{
		{"under the cap", []chunk{{0, "01234"}, {1, "56789"}}, "0123456789", 0},
		{"cut inside a chunk", []chunk{{0, "0123456"}, {1, "789abc"}, {2, "def"}}, "0123456789" + note, 6},
		{"agent cut at the same size", []chunk{{0, "0123456789"}, {1, note}}, "0123456789" + note, 0},
		{"agent cut in the chunk", []chunk{{0, "0123456789" + note}}, "0123456789" + note, 0},
		{"after the agent's note", []chunk{{0, "0123456789"}, {1, note + "more"}, {2, "x"}}, "0123456789" + note, 5},
		{"agent cut at a larger size", []chunk{{0, "0123456789ab" + string(logs.TruncationNote(12))}}, "0123456789" + note, int64(2 + len(logs.TruncationNote(12)))},
		{"late chunk counted in order", []chunk{{1, "bbbbbb"}, {2, "cc"}, {0, "aaaaaa"}}, "aaaaaabbbb" + note, 4},
		{"chunk held past the cut", []chunk{{0, "aaaaaaaaaaaa"}, {2, "cc"}, {2, "cc"}, {1, "b"}}, "aaaaaaaaaa" + note, 5},
		{"gap before the cut", []chunk{{0, "aaaa"}, {2, "cccccccc"}}, "aaaa" + gapMark(1, 1) + "cccccc" + note, 2},
		{"gap past the cut", []chunk{{0, "aaaaaaaaaaaa"}, {2, "cc"}, {4, "e"}}, "aaaaaaaaaa" + note, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			s.SetStepMax(10)
			clock, _ := fakeClock(s), incompleteLogs(s)
			k := Key{Run: "1", Stage: "s", Attempt: 1, Step: "x"}
			for _, c := range tt.chunks {
				if err := s.Append(k, c.seq, []byte(c.data)); err != nil {
					t.Fatalf("append %d: %v", c.seq, err)
				}
			}
			if err := s.Finish(k); err != nil {
				t.Fatal(err)
			}
			if s.Live(k) {
				clock.pass(t)
			}
			if got := readLog(t, s, k); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if got := s.Dropped(); got != tt.dropped {
				t.Errorf("dropped %d bytes, want %d", got, tt.dropped)
			}
		})
	}
}

// The chunk that completes a log past its cap closes it: the writer's end
// is not held up by dropped chunks.
func TestStepMaxEnd(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.SetStepMax(4)
	k := Key{Run: "1", Stage: "s", Attempt: 1, Step: "x"}
	got := follow(t, s, k)
	if err := s.End(k, 2, []byte("c")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []chunk{{1, "bbbbbb"}, {0, "aa"}} {
		if err := s.Append(k, c.seq, []byte(c.data)); err != nil {
			t.Fatal(err)
		}
	}
	want := "aabb" + string(logs.TruncationNote(4))
	if s.Live(k) {
		t.Error("log still open after its last chunk")
	}
	if g := <-got; g != want {
		t.Errorf("follower got %q, want %q", g, want)
	}
}

// A log an earlier process cut is not cut again (one note) after a
// restart; one it left under the cap is cut where the cap is.
func TestStepMaxAfterRestart(t *testing.T) {
	note := string(logs.TruncationNote(10))
	tests := []struct {
		name   string
		before string
		want   string
	}{
		{"cut before", "aaaaaaaaaaaa", "aaaaaaaaaa" + note},
		{"under the cap before", "aaaaaaaa", "aaaaaaaabb" + note},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			k := Key{Run: "1", Stage: "s", Attempt: 1, Step: "x"}
			for i, data := range []string{tt.before, strings.Repeat("b", 5)} {
				s, err := New(dir)
				if err != nil {
					t.Fatal(err)
				}
				s.SetStepMax(10)
				if err := s.Append(k, int64(i), []byte(data)); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			s, err := New(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := readLog(t, s, k); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
