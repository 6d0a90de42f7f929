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
