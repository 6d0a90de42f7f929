package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

// TestContainerPolicy: a pipeline asking for a container permission the
// repository lacks makes a run ended pipeline_invalid with a not-allowed
// diagnostic at the request's line and column; once an admin grants it,
// the run is made and the agent (which grants nothing) refuses the stage.
func TestContainerPolicy(t *testing.T) {
	e := newEnv(t)
	code, b := e.do("POST", "/api/v1/repos", []byte(fmt.Sprintf(`{"name":"app","forge":"git","clone_url":%q}`, e.bare)), e.auth())
	if code != 201 {
		t.Fatalf("create repo: %d %s", code, b)
	}
	e.push("version: 1\nstages:\n  a:\n    steps:\n      - name: s\n        run: \"true\"\n        container:\n          network: host\n")
	trigger := func() RunView {
		code, b := e.do("POST", "/api/v1/repos/app/trigger", []byte(`{}`), e.auth())
		if code != 201 {
			t.Fatalf("trigger: %d %s", code, b)
		}
		var v RunView
		json.Unmarshal([]byte(b), &v)
		return e.waitRun(v.ID)
	}
	v := trigger()
	want := pipeline.Diagnostic{File: ".pipeline.yml", Line: 8, Col: 20, Code: pipeline.CodeNotAllowed}
	if v.Status != store.StatusError || v.Reason != rules.ReasonPipelineInvalid || len(v.Diagnostics) != 1 ||
		v.Diagnostics[0].Line != want.Line || v.Diagnostics[0].Col != want.Col || v.Diagnostics[0].Code != want.Code {
		t.Fatalf("run = %s/%s %+v, want error/pipeline_invalid with %s at %d:%d", v.Status, v.Reason, v.Diagnostics, want.Code, want.Line, want.Col)
	}

	if code, b := e.do("PATCH", "/api/v1/repos/app", []byte(`{"allow_container":["root"]}`), e.auth()); code != 400 || !strings.Contains(b, `unknown container permission`) {
		t.Errorf("PATCH with an unknown permission = %d %s, want 400", code, b)
	}
	code, b = e.do("PATCH", "/api/v1/repos/app", []byte(`{"allow_container":["host-network"]}`), e.auth())
	var rv RepoView
	json.Unmarshal([]byte(b), &rv)
	if code != 200 || len(rv.AllowContainer) != 1 || rv.AllowContainer[0] != "host-network" {
		t.Fatalf("PATCH allow_container = %d %s", code, b)
	}

	v = trigger()
	if v.Status != store.StatusFailure && v.Status != store.StatusError || len(v.Stages) != 1 ||
		!strings.Contains(v.Stages[0].Reason, "refused by this agent's container policy") {
		t.Fatalf("granted run = %s/%s stages %+v, want the agent's refusal", v.Status, v.Reason, v.Stages)
	}
}
