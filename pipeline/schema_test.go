package pipeline

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestSchemaMatchesParser checks that docs/pipeline.schema.json lists
// exactly the keys the parser accepts at each level, so that editors and
// runnel lint agree.
func TestSchemaMatchesParser(t *testing.T) {
	b, err := os.ReadFile("../docs/pipeline.schema.json")
	if err != nil {
		t.Fatalf("read schema: %v", err)
	}
	type object struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	var schema struct {
		Schema     string            `json:"$schema"`
		Properties map[string]any    `json:"properties"`
		Defs       map[string]object `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("decode schema: %v", err)
	}
	if schema.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %q, want draft 2020-12", schema.Schema)
	}
	keysOf := func(m map[string]json.RawMessage) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	nested := func(raw json.RawMessage) map[string]json.RawMessage {
		var o object
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
		return o.Properties
	}
	var root []string
	for k := range schema.Properties {
		root = append(root, k)
	}
	slices.Sort(root)
	tests := []struct {
		def  string
		got  []string
		want []string
	}{
		{"(root)", root, pipelineKeys},
		{"when", keysOf(schema.Defs["when"].Properties), whenKeys},
		{"stageWhen", keysOf(schema.Defs["stageWhen"].Properties), stageWhenKeys},
		{"stage", keysOf(schema.Defs["stage"].Properties), stageKeys},
		{"step", keysOf(schema.Defs["step"].Properties), stepKeys},
		{"service", keysOf(schema.Defs["service"].Properties), serviceKeys},
		{"serviceValue", keysOf(schema.Defs["serviceValue"].Properties), serviceKeys[1:]},
		{"ready", keysOf(schema.Defs["ready"].Properties), readyKeys},
		{"retry", keysOf(schema.Defs["retry"].Properties), retryKeys},
		{"matrix", keysOf(schema.Defs["matrix"].Properties), matrixKeys},
		{"artifacts", keysOf(schema.Defs["artifacts"].Properties), artifactsKeys},
		{"fetch", keysOf(schema.Defs["fetch"].Properties), fetchKeys},
		{"cache", keysOf(schema.Defs["cache"].Properties), cacheKeys},
		{"cacheKey", keysOf(schema.Defs["cacheKey"].Properties), cacheKeyKeys},
		{"deploy", keysOf(schema.Defs["deploy"].Properties), deployKeys},
		{"deploy.ecs_service", keysOf(nested(schema.Defs["deploy"].Properties["ecs_service"])), ecsServiceKeys},
		{"deploy.codedeploy", keysOf(nested(schema.Defs["deploy"].Properties["codedeploy"])), codeDeployKeys},
		{"strategy", keysOf(schema.Defs["strategy"].Properties), strategyKeys},
		{"deployHealth", keysOf(schema.Defs["deployHealth"].Properties), healthKeys},
		{"container", keysOf(schema.Defs["container"].Properties), containerKeys},
		{"secret", keysOf(schema.Defs["secret"].Properties), secretKeys},
	}
	for _, tt := range tests {
		want := slices.Sorted(slices.Values(tt.want))
		if !slices.Equal(tt.got, want) {
			t.Errorf("schema %s keys = %v, want the parser's %v", tt.def, tt.got, want)
		}
	}
}

// TestSchemaWorkspacePath checks that the schema's workspacePath patterns
// refuse exactly the paths cleanPath refuses, for the kinds of path the
// patterns can see (length, UTF-8 and glob syntax aside).
func TestSchemaWorkspacePath(t *testing.T) {
	b, err := os.ReadFile("../docs/pipeline.schema.json")
	if err != nil {
		t.Fatalf("read schema: %v", err)
	}
	var schema struct {
		Defs struct {
			WorkspacePath struct {
				Not struct {
					AnyOf []struct {
						Pattern string `json:"pattern"`
					} `json:"anyOf"`
				} `json:"not"`
			} `json:"workspacePath"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("decode schema: %v", err)
	}
	var res []*regexp.Regexp
	for _, p := range schema.Defs.WorkspacePath.Not.AnyOf {
		res = append(res, regexp.MustCompile(p.Pattern))
	}
	if len(res) == 0 {
		t.Fatal("schema has no workspacePath patterns")
	}
	paths := []string{"out/", "out", "./out", "./", ".", "..", "../x", "a/../b", "a/..", "a/./b", "/abs", "~/home",
		`a\b`, "a//b", "x\x00y", "x\ty", "foo..bar", ".hidden", "..hidden", "a/.b/c", "dir/", "**/*.log", "ünï/cödé"}
	for _, p := range paths {
		_, problem := cleanPath(p, true)
		schemaRefuses := false
		for _, re := range res {
			if re.MatchString(p) {
				schemaRefuses = true
			}
		}
		if parserRefuses := problem != ""; parserRefuses != schemaRefuses {
			t.Errorf("path %q: parser refuses = %v (%s), schema refuses = %v", p, parserRefuses, problem, schemaRefuses)
		}
	}
}
