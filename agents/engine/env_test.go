package engine

import (
	"slices"
	"testing"

	"github.com/runnel-ci/runnel/pipeline"
)

func TestStepEnv(t *testing.T) {
	stage := &pipeline.Stage{Env: map[string]string{"A": "stage", "B": "stage", "TOKEN": "stage"}}
	step := &pipeline.Step{Env: map[string]string{"B": "step", "C": "$(x)\n"}}
	got := StepEnv(&Spec{Stage: stage}, step, "/run/secrets")
	want := []string{"A=stage", "B=step", "C=$(x)\n", "TOKEN=stage"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	s := &Spec{Stage: stage, Secrets: []Secret{{Env: "TOKEN", Value: "tok-value"}, {File: "k.pem", Value: "pem"}, {Env: "CREDS", File: "c.json", Value: "{}"}}}
	got = StepEnv(s, step, "/run/secrets")
	want = []string{"A=stage", "B=step", "C=$(x)\n", "CREDS=/run/secrets/c.json", "RUNNEL_SECRETS_DIR=/run/secrets", "TOKEN=tok-value"}
	if !slices.Equal(got, want) {
		t.Fatalf("with secrets: got %q, want %q", got, want)
	}
	script, env := SecretFilesPreamble(s, "/run/secrets")
	wantScript := "(umask 077; printf %s \"$RUNNEL_SECRET_FILE_0\" > '/run/secrets/k.pem'; printf %s \"$RUNNEL_SECRET_FILE_1\" > '/run/secrets/c.json'; )\nunset RUNNEL_SECRET_FILE_0 RUNNEL_SECRET_FILE_1\n"
	if script != wantScript || !slices.Equal(env, []string{"RUNNEL_SECRET_FILE_0=pem", "RUNNEL_SECRET_FILE_1={}"}) {
		t.Fatalf("preamble %q %q", script, env)
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
