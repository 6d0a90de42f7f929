package trust

import "testing"

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		run  Run
		want bool
	}{
		{"push", Run{Event: "push"}, true},
		{"tag", Run{Event: "tag"}, true},
		{"manual", Run{Event: "manual"}, true},
		{"cron", Run{Event: "cron"}, true},
		{"pull request from the base repository", Run{Event: "pull_request", SameRepo: true}, true},
		{"fork pull request", Run{Event: "pull_request"}, false},
		{"fork pull request, head approved", Run{Event: "pull_request", Approved: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Decide(tt.run)
			if got != tt.want || (got == (why != "")) {
				t.Errorf("Decide(%+v) = %v, %q; want %v with a reason only when untrusted", tt.run, got, why, tt.want)
			}
		})
	}
}

func TestHold(t *testing.T) {
	fork := Run{Event: "pull_request"}
	tests := []struct {
		name  string
		run   Run
		stage Stage
		want  bool
	}{
		{"fork, plain stage runs", fork, Stage{}, false},
		{"fork, stage with secrets waits", fork, Stage{Secrets: true}, true},
		{"fork, deploy stage waits", fork, Stage{Environment: "prod"}, true},
		{"fork approved, stage with secrets runs", Run{Event: "pull_request", Approved: true}, Stage{Secrets: true}, false},
		{"same repo, stage with secrets runs", Run{Event: "pull_request", SameRepo: true}, Stage{Secrets: true}, false},
		{"push, deploy stage runs", Run{Event: "push"}, Stage{Secrets: true, Environment: "prod"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hold(tt.run, tt.stage); got != tt.want {
				t.Errorf("Hold(%+v, %+v) = %v, want %v", tt.run, tt.stage, got, tt.want)
			}
		})
	}
}

func TestPendingReason(t *testing.T) {
	got := PendingReason("0123456789abcdef0123456789abcdef01234567")
	if want := "waiting for a maintainer to approve this pull request's head 0123456"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
