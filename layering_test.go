package runnel_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/runnel-ci/runnel"

// listed is the part of `go list -json` this test reads.
type listed struct {
	ImportPath string
	Doc        string
	Deps       []string
	Name       string
}

func listPackages(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "-deps=false", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	dec := json.NewDecoder(out)
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}

// TestLayering keeps the dependency direction of docs/architecture.md true:
// cmd -> runner/agents -> scm/artifact/deploy -> pipeline.
func TestLayering(t *testing.T) {
	// What only agents run: the agent loop, the stage executor, the
	// engines, deployers and transfers. The server must not link them
	// (`go list -deps ./runner` lists none of agents/ but agents/wire and
	// agents/logs); only runner/runnertest, which starts a real agent for
	// tests, does.
	agentSide := []string{module + "/agents/agent", module + "/agents/engine", module + "/agents/stage",
		module + "/agents/workspace", module + "/agents/transfer", module + "/agents/deployer", module + "/deploy"}
	rules := []struct {
		pkg       string   // package path prefix (below the module)
		forbidden []string // import path prefixes it must not depend on
		except    []string // packages below pkg the rule does not cover
	}{
		{"pipeline", []string{module + "/", "net/http", "database/sql", "github.com/docker/", "github.com/nats-io/", "github.com/aws/"}, nil},
		{"agents", []string{module + "/runner", module + "/scm", module + "/cmd", "database/sql"}, nil},
		{"scm", []string{module + "/runner", module + "/agents", module + "/cmd"}, nil},
		{"artifact", []string{module + "/runner", module + "/agents", module + "/scm", module + "/cmd"}, nil},
		{"deploy", []string{module + "/runner", module + "/scm", module + "/cmd"}, nil},
		{"runner", []string{module + "/cmd"}, nil},
		{"runner", agentSide, []string{"runner/runnertest"}},
		// Nor the bus: cmd/runnel wires runner/natsserver in as runner.Bus;
		// only it (and runnertest) use the agent's side for the connection.
		{"runner", []string{module + "/agents/natsbus", module + "/runner/natsserver"},
			[]string{"runner/runnertest", "runner/natsserver"}},
		// The bus's server side links nothing of the server core: runner's
		// own tests import runnertest, which starts it.
		{"runner/natsserver", []string{module + "/runner"}, nil},
		// Nor the bus's assembly and the tests' harness (runner's tests
		// import runnertest, which starts serverbus): "$" is the package
		// alone, not the ones below it.
		{"internal/serverbus", []string{module + "/runner$"}, nil},
		{"runner/runnertest", []string{module + "/runner$"}, nil},
		// runner/httpapi's own tests start the core with assembly.StartCore.
		{"internal/assembly", []string{module + "/runner/httpapi", module + "/runner/ui"}, []string{"internal/assembly/httpserver"}},
		// An agent host runs no NATS server: the embedded server, agent
		// permissions and the Dispatcher are runner/natsserver.
		{"agents", []string{"github.com/nats-io/nats-server/"}, nil},
		{"internal/gitmirror", []string{module + "/"}, nil},
	}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, r := range rules {
			if rel != r.pkg && !strings.HasPrefix(rel, r.pkg+"/") || slices.Contains(r.except, rel) {
				continue
			}
			for _, d := range p.Deps {
				for _, f := range r.forbidden {
					if exact, ok := strings.CutSuffix(f, "$"); ok && d != exact {
						continue
					}
					if d == strings.TrimSuffix(f, "$") || strings.HasPrefix(d, f) && (strings.HasSuffix(f, "/") || strings.HasPrefix(d, f+"/")) {
						// pipeline may of course import itself.
						if r.pkg == "pipeline" && strings.HasPrefix(d, module+"/pipeline") {
							continue
						}
						t.Errorf("%s depends on %s, which its layer forbids", p.ImportPath, d)
					}
				}
			}
		}
	}
}

// TestPackageDocs requires every package to say what it owns.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Name == "main" {
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no package doc comment", p.ImportPath)
		}
	}
}
