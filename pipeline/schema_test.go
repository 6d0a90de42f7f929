package pipeline

import (
	"encoding/json"
	"os"
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
	}
	for _, tt := range tests {
		want := slices.Sorted(slices.Values(tt.want))
		if !slices.Equal(tt.got, want) {
			t.Errorf("schema %s keys = %v, want the parser's %v", tt.def, tt.got, want)
		}
	}
}
