package pipeline

import "testing"

// TestDeployConcurrencyDefault: a deploy stage that names no concurrency
// group is in its environment's, or without an environment in its
// release target's (provider and app); a named group wins; other stages
// get none.
func TestDeployConcurrencyDefault(t *testing.T) {
	const deploy = `
    deploy:
      provider: docker
      app: web
      image: web:1
      port: 8080
      docker: {network: n, proxy: "http://127.0.0.1:9000"}`
	tests := []struct {
		name, stage, want string
	}{
		{"environment", "\n    environment: production" + deploy, "production"},
		{"environment and group", "\n    environment: production\n    concurrency: prod-lock" + deploy, "prod-lock"},
		{"no environment", deploy, "deploy:docker:web"},
		{"no environment, group", "\n    concurrency: web" + deploy, "web"},
		{"not a deploy", "\n    environment: production\n    steps: [{name: s, run: 'true'}]", ""},
		{"plain stage", "\n    steps: [{name: s, run: 'true'}]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yml", []byte("version: 1\nstages:\n  release:"+tt.stage+"\n"))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			pl, err := p.Plan(Event{Kind: EventPush, Branch: "main"})
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if got := pl.Stages[0].Concurrency; got != tt.want {
				t.Errorf("concurrency = %q, want %q", got, tt.want)
			}
		})
	}
}
