package gitlabtest

import "testing"

func TestFire(t *testing.T) {
	tests := []struct {
		state, from, want string // want "" means 400
	}{
		{"pending", "created", "pending"},
		{"pending", "pending", ""},
		{"pending", "running", ""},
		{"running", "created", "running"},
		{"running", "pending", "running"},
		{"running", "running", ""},
		{"success", "created", "success"},
		{"success", "pending", "success"},
		{"success", "running", "success"},
		{"success", "success", ""},
		{"failed", "running", "failed"},
		{"failed", "failed", ""},
		{"canceled", "pending", "canceled"},
		{"skipped", "running", ""},
	}
	for _, tt := range tests {
		t.Run(tt.state+" from "+tt.from, func(t *testing.T) {
			got, err := events[tt.state].fire(tt.from)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
