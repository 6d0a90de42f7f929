package engine

import (
	"slices"
	"testing"

	"github.com/runnel-ci/runnel/pipeline"
)

func TestEnv(t *testing.T) {
	stage := &pipeline.Stage{Env: map[string]string{"A": "stage", "B": "stage"}}
	step := &pipeline.Step{Env: map[string]string{"B": "step", "C": "$(x)\n"}}
	got := Env(stage, step)
	want := []string{"A=stage", "B=step", "C=$(x)\n"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParsePullPolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    PullPolicy
		wantErr bool
	}{
		{"", PullIfNotPresent, false},
		{"never", PullNever, false},
		{"always", PullAlways, false},
		{"if-not-present", PullIfNotPresent, false},
		{"sometimes", "", true},
	}
	for _, tt := range tests {
		got, err := ParsePullPolicy(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParsePullPolicy(%q) = %q, %v; want %q, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
