package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/pipeline/rules"
)

func TestLabelMatching(t *testing.T) {
	agent := map[string]string{"os": "linux", "gpu": "yes", "arch": "amd64"}
	subs, err := Subsets(agent)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(subs), 8; got != want {
		t.Fatalf("got %d subsets, want %d", got, want)
	}
	has := map[string]bool{}
	for _, s := range subs {
		has[s] = true
	}
	tests := []struct {
		name string
		job  map[string]string
		want bool
	}{
		{"no labels", nil, true},
		{"subset", map[string]string{"os": "linux", "gpu": "yes"}, true},
		{"all", agent, true},
		{"other value", map[string]string{"os": "darwin"}, false},
		{"extra key", map[string]string{"os": "linux", "disk": "ssd"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := has[LabelSetKey(tt.job)]; got != tt.want {
				t.Errorf("got match %v, want %v", got, tt.want)
			}
		})
	}
	// Canonical: "a=b=c" split differently must not collide.
	if LabelSetKey(map[string]string{"a": "b=c"}) == LabelSetKey(map[string]string{"a=b": "c"}) {
		t.Error("label sets with different keys collide")
	}
	if _, err := Subsets(map[string]string{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1", "g": "1"}); err == nil {
		t.Error("got no error for 7 labels, want one")
	}
}

func TestToken(t *testing.T) {
	tests := []struct{ in, want string }{
		{"run-01H_x", "run-01H_x"},
		{"feature/x.y", ""},
		{"a.>", ""},
		{"", ""},
		{strings.Repeat("a", 65), ""},
	}
	for _, tt := range tests {
		got := Token(tt.in)
		if tt.want != "" && got != tt.want {
			t.Errorf("Token(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if tt.want == "" && (!strings.HasPrefix(got, "h") || len(got) != 33 || strings.ContainsAny(got, ".*> ")) {
			t.Errorf("Token(%q) = %q, want a hashed token", tt.in, got)
		}
	}
	if s := UpdatesSubject("refs/heads/main.x", "a.b"); strings.Count(s, ".") != 5 {
		t.Errorf("got subject %q, want 6 tokens", s)
	}
}

func TestEventSubjects(t *testing.T) {
	tests := []struct {
		subject string
		want    EventSubject
		ok      bool
	}{
		{UpdatesSubject("12", "agent-1"), EventSubject{Run: "12", Agent: "agent-1"}, true},
		{LogsSubject("12", "agent-1"), EventSubject{Run: "12", Logs: true, Agent: "agent-1"}, true},
		{UpdatesSubject("12", ServerAgent), EventSubject{Run: "12", Agent: ServerAgent}, true},
		{Prefix + "runs.12.updates", EventSubject{}, false},
		{Prefix + "runs.12.logs", EventSubject{}, false},
		{Prefix + "runs.12.other.a", EventSubject{}, false},
		{Prefix + "runs.12.logs.a.b", EventSubject{}, false},
		{CancelSubject("12"), EventSubject{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseEventSubject(tt.subject)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseEventSubject(%q) = %+v, %v; want %+v, %v", tt.subject, got, ok, tt.want, tt.ok)
		}
	}
	// An agent's wildcards match its own subjects only.
	if got, want := AgentUpdatesWildcard("a"), Prefix+"runs.*.updates.a"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := AgentLogsWildcard("a"), Prefix+"runs.*.logs.a"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestVersion(t *testing.T) {
	b, err := Encode(&Job{RunID: "r", StageID: "s", Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	var j Job
	if err := Decode(b, &j); err != nil || j.Attempt != 2 || j.V != Version {
		t.Fatalf("got %+v, %v; want attempt 2 version %d", j, err, Version)
	}
	for _, in := range []string{`{"v":2,"run_id":"r"}`, `{"run_id":"r"}`} {
		if err := Decode([]byte(in), &j); !errors.Is(err, ErrVersion) {
			t.Errorf("Decode(%s): got %v, want ErrVersion", in, err)
		}
	}
}

func FuzzDecodeJob(f *testing.F) {
	f.Add([]byte(`{"v":1,"run_id":"r","stage":{"id":"a","steps":[]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var j Job
		_ = Decode(b, &j)
	})
}

// TestStatusSpelling: an update's canceled is spelled as everywhere else,
// and the spelling of older agents still reads as canceled.
func TestStatusSpelling(t *testing.T) {
	b, err := Encode(&Update{Kind: KindFinished, Status: rules.Canceled})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"status":"canceled"`) {
		t.Errorf("got %s, want status canceled", b)
	}
	for _, in := range []string{"canceled", "cancelled"} {
		var u Update
		if err := Decode([]byte(`{"v":1,"kind":"finished","status":"`+in+`"}`), &u); err != nil {
			t.Fatal(err)
		}
		if u.Status != rules.Canceled {
			t.Errorf("decode %q: got %q, want %q", in, u.Status, rules.Canceled)
		}
	}
}
