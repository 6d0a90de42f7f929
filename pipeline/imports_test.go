package pipeline

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps pipeline a leaf: it imports no other package of this
// project and nothing that talks to Docker, NATS, HTTP or a database.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = "github.com/runnel-ci/runnel/pipeline"
	forbidden := []string{"net/http", "database/sql", "github.com/docker/", "github.com/nats-io/", "github.com/aws/"}
	deps := strings.Fields(string(out))
	if len(deps) < 5 {
		t.Fatalf("go list -deps printed %d packages, want the stdlib closure", len(deps))
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/runnel-ci/runnel") && d != self {
			t.Errorf("pipeline imports project package %s", d)
		}
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f) {
				t.Errorf("pipeline imports %s", d)
			}
		}
	}
}
