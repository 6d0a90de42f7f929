package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/runner/httpapi"
)

// TestSummaryKeysAgreeWithAPI pins that `runnel run --summary-json` names
// what the API's run view also shows with the API's keys, level by level;
// only the keys listed here are the summary's own.
func TestSummaryKeysAgreeWithAPI(t *testing.T) {
	tests := []struct {
		level        string
		summary, api any
		own          []string // keys the API has no counterpart for
	}{
		{"run", stage.RunResult{}, httpapi.RunView{}, nil},
		// teardown_error: the API's stages have no teardown of their own.
		{"stage", stage.Result{}, httpapi.StageView{}, []string{"teardown_error"}},
		// allowed_failure: the step failed and allow_failure let the stage
		// pass (the API shows allow_failure, the setting); reason: why the
		// step did not succeed (the API shows it in the step's log).
		{"step", stage.StepResult{}, httpapi.StepView{}, []string{"allowed_failure", "reason"}},
	}
	for _, tt := range tests {
		api := jsonKeys(reflect.TypeOf(tt.api))
		for k := range jsonKeys(reflect.TypeOf(tt.summary)) {
			if !api[k] && !slices.Contains(tt.own, k) {
				t.Errorf("%s: summary key %q is not a key of the API's %T", tt.level, k, tt.api)
			}
		}
	}
}

func jsonKeys(t reflect.Type) map[string]bool {
	keys := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}
