package pipeline

import (
	"errors"
	"testing"
)

func TestCheckSecretName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"DEPLOY_TOKEN", true}, {"_x", true}, {"a1", true}, {"", false}, {"1A", false}, {"A-B", false},
		{"RUNNEL_X", false}, {"RUNNELX", true}, {"A.B", false}, {string(make([]byte, 65)), false},
	} {
		if err := CheckSecretName(c.name); (err == nil) != c.ok {
			t.Errorf("CheckSecretName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// TestCheckSecrets: a secret the server does not have is an error at the
// position of its name, in every stage that asks for it.
func TestCheckSecrets(t *testing.T) {
	src := `version: 1
stages:
  a:
    image: x
    secrets: [KNOWN, MISSING]
    steps: [{name: s, run: "true"}]
  b:
    image: x
    secrets:
      - name: OTHER
        env: O
    steps: [{name: s, run: "true"}]
`
	p, err := Parse(".pipeline.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckSecrets(map[string]bool{"KNOWN": true, "MISSING": true, "OTHER": true}); err != nil {
		t.Fatalf("all known: %v", err)
	}
	err = p.CheckSecrets(map[string]bool{"KNOWN": true})
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 2 {
		t.Fatalf("got %v, want two diagnostics", err)
	}
	want := []string{
		`.pipeline.yml:5:22: unknown-secret: stage a: secret "MISSING" is not set for this repository; an admin sets it with: runnel secret set MISSING --repo REPO`,
		`.pipeline.yml:10:15: unknown-secret: stage b: secret "OTHER" is not set for this repository; an admin sets it with: runnel secret set OTHER --repo REPO`,
	}
	for i, d := range ds {
		if d.String() != want[i] {
			t.Errorf("diagnostic %d = %s\nwant %s", i, d.String(), want[i])
		}
	}
}
