package pipeline

import (
	"fmt"
	"maps"
	"regexp"
	"slices"

	"gopkg.in/yaml.v3"
)

// Input types.
const (
	InputString  = "string"
	InputChoice  = "choice"
	InputBoolean = "boolean"
)

// CodeBadInput marks an input value of a run that the pipeline's inputs
// refuse (an undeclared name, a value outside a choice's options, a
// boolean that is not true or false, a missing required input).
const CodeBadInput = "bad-input"

// maxInputDecls bounds the inputs a pipeline declares.
const maxInputDecls = 50

var (
	inputKeys   = []string{"type", "description", "default", "options"}
	inputNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
)

// Input is an input a pipeline declares for manual and scheduled runs
// (top-level "inputs"). It reaches steps as RUNNEL_INPUT_<NAME>.
type Input struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"` // InputString, InputChoice or InputBoolean
	Description string   `json:"description,omitempty"`
	Default     string   `json:"default,omitempty"`
	Options     []string `json:"options,omitempty"` // InputChoice
	// Required is true when there is no default: a manual or scheduled
	// run must give a value.
	Required bool `json:"required"`
}

// Inputs returns the declared inputs in file order (nil when none).
func (p *Pipeline) Inputs() []Input {
	return slices.Clone(p.inputs)
}

// CheckInputs checks the inputs of a run against the declared ones and
// returns them with defaults added. problems maps an input name to what
// is wrong with it; nil when all is well. required says whether inputs
// without a default must be given (manual and scheduled runs). A
// pipeline that declares no inputs takes any (as strings).
func (p *Pipeline) CheckInputs(given map[string]string, required bool) (out, problems map[string]string) {
	out = map[string]string{}
	for k, v := range given {
		out[k] = v
	}
	if len(p.inputs) == 0 {
		return out, nil
	}
	problems = map[string]string{}
	declared := map[string]bool{}
	for _, in := range p.inputs {
		declared[in.Name] = true
		v, ok := given[in.Name]
		switch {
		case !ok && !in.Required:
			out[in.Name] = in.Default
		case !ok:
			if required {
				problems[in.Name] = "required (it has no default)"
			}
		case in.Type == InputChoice && !slices.Contains(in.Options, v):
			problems[in.Name] = fmt.Sprintf("%q is not one of %q", v, in.Options)
		case in.Type == InputBoolean && v != "true" && v != "false":
			problems[in.Name] = fmt.Sprintf("%q is not true or false", v)
		}
	}
	for k := range given {
		if !declared[k] {
			problems[k] = "not an input of this pipeline"
		}
	}
	if len(problems) == 0 {
		problems = nil
	}
	return out, problems
}

// withInputs returns ev with its inputs checked against the declared
// ones and defaults added; bad inputs are a Diagnostics error
// (CodeBadInput) at the input's declaration. Manual and cron runs must
// give required inputs; other events get the defaults.
func (p *Pipeline) withInputs(ev Event) (Event, error) {
	if len(p.inputs) == 0 {
		return ev, nil
	}
	in, problems := p.CheckInputs(ev.Inputs, ev.Kind == EventManual || ev.Kind == EventCron)
	if problems != nil {
		var ds Diagnostics
		for _, name := range slices.Sorted(maps.Keys(problems)) {
			pos, ok := p.inputPos[name]
			if !ok {
				pos = p.inputPos[""]
			}
			ds = append(ds, Diagnostic{File: p.Name, Line: pos[0], Col: pos[1], Code: CodeBadInput, Severity: SeverityError,
				Message: fmt.Sprintf("input %s: %s", name, problems[name])})
		}
		sortDiagnostics(ds)
		return ev, ds
	}
	ev.Inputs = in
	return ev, nil
}

// inputs parses the top-level inputs mapping.
func (ps *parser) inputs(p *Pipeline, key, n *yaml.Node) []Input {
	p.inputPos = map[string][2]int{"": {key.Line, key.Column}}
	n = ps.mapping(n, "inputs")
	if n == nil {
		return nil
	}
	var out []Input
	envNames := map[string]string{}
	for _, e := range ps.entries(n, 0) {
		name := e.key.Value
		if !inputNameRE.MatchString(name) {
			ps.errorf(e.key, CodeBadName, "input name %q must match [A-Za-z][A-Za-z0-9_-]* (at most 63)", name)
			continue
		}
		env := "RUNNEL_INPUT_" + SanitizeEnvName(name)
		if other, dup := envNames[env]; dup {
			ps.errorf(e.key, CodeDuplicateName, "inputs %s and %s are both %s", other, name, env)
			continue
		}
		envNames[env] = name
		p.inputPos[name] = [2]int{e.key.Line, e.key.Column}
		if len(out) == maxInputDecls {
			ps.errorf(e.key, CodeBadValue, "more than %d inputs", maxInputDecls)
			break
		}
		if in, ok := ps.input(name, e.val); ok {
			out = append(out, in)
		}
	}
	return out
}

// input parses one input's mapping.
func (ps *parser) input(name string, n *yaml.Node) (Input, bool) {
	in := Input{Name: name, Type: InputString, Required: true}
	m := ps.mapping(n, "input "+name)
	if m == nil {
		return in, false
	}
	es := ps.entries(m, 0)
	ps.checkKeys(es, "input "+name, inputKeys, nil)
	var defNode, optNode *yaml.Node
	for _, e := range es {
		switch e.key.Value {
		case "type":
			t, ok := ps.str(e.val, "input type")
			if ok && t != InputString && t != InputChoice && t != InputBoolean {
				ps.errorf(e.val, CodeBadValue, "input %s: type %q: want string, choice or boolean", name, t)
				return in, false
			}
			if ok {
				in.Type = t
			}
		case "description":
			in.Description, _ = ps.str(e.val, "input description")
		case "default":
			defNode = ps.resolve(e.val)
			if v, ok := ps.scalarText(e.val, "input "+name+" default"); ok {
				in.Default, in.Required = v, false
			}
		case "options":
			optNode = e.val
			in.Options, _ = ps.strList(e.val, "input "+name+" options")
		}
	}
	return in, ps.checkInput(&in, defNode, optNode, n)
}

// checkInput checks the rules between an input's keys.
func (ps *parser) checkInput(in *Input, defNode, optNode, n *yaml.Node) bool {
	switch in.Type {
	case InputChoice:
		if len(in.Options) == 0 {
			ps.errorf(n, CodeMissingField, "input %s: a choice needs options", in.Name)
			return false
		}
		for i, o := range in.Options {
			if slices.Contains(in.Options[:i], o) {
				ps.errorf(optNode, CodeDuplicateName, "input %s: option %q given twice", in.Name, o)
				return false
			}
		}
		if !in.Required && !slices.Contains(in.Options, in.Default) {
			ps.errorf(defNode, CodeBadValue, "input %s: default %q is not one of its options", in.Name, in.Default)
			return false
		}
	case InputBoolean:
		if !in.Required && in.Default != "true" && in.Default != "false" {
			ps.errorf(defNode, CodeBadValue, "input %s: default %q is not true or false", in.Name, in.Default)
			return false
		}
		fallthrough
	default:
		if optNode != nil {
			ps.errorf(optNode, CodeBadValue, "input %s: options are for type choice", in.Name)
			return false
		}
	}
	return true
}
