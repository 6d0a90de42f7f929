package pipeline

import (
	"fmt"
	"slices"
	"strings"
)

// Environment is a deployment environment as a server declares it for a
// repository. A stage naming it is a deployment, and runs only for the
// events the environment allows.
type Environment struct {
	Name string
	// Branches are globs of the branches that may deploy here.
	Branches []string
	// Tags are globs of the tags that may deploy here.
	Tags []string
}

// Allows reports whether a stage of e runs for ev: never for a pull
// request (its code is not merged); for a tag event when the tag matches
// one of Tags; for any other event (push, manual, cron) when its branch
// matches one of Branches.
func (e Environment) Allows(ev Event) bool {
	switch {
	case ev.Kind == EventPullRequest:
		return false
	case ev.Kind == EventTag || ev.Tag != "":
		return matchAny(e.Tags, ev.Tag)
	default:
		return matchAny(e.Branches, ev.Branch)
	}
}

// allows reports whether a stage of environment name runs for ev; with
// envs nil every environment does (no server to declare them).
func allows(envs []Environment, name string, ev Event) bool {
	if envs == nil || name == "" {
		return true
	}
	for _, e := range envs {
		if e.Name == name {
			return e.Allows(ev)
		}
	}
	return false
}

// checkEnvironments reports every stage naming an environment not in envs
// (nil: no check).
func (p *Pipeline) checkEnvironments(envs []Environment) error {
	if envs == nil {
		return nil
	}
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.Name
	}
	var ds Diagnostics
	for _, sd := range p.stages {
		if sd.environment == "" || slices.Contains(names, sd.environment) {
			continue
		}
		d := Diagnostic{File: p.Name, Line: sd.line, Col: sd.col, Code: CodeUndeclaredEnvironment, Severity: SeverityError}
		if sd.envNode != nil {
			d.Line, d.Col = sd.envNode.Line, sd.envNode.Column
		}
		declared := "none is declared"
		if len(names) > 0 {
			declared = "declared: " + strings.Join(names, ", ")
		}
		d.Message = fmt.Sprintf("stage %s: environment %q is not declared for this repository (%s); an admin declares it with PUT /api/v1/repos/{repo}/environments/%s",
			sd.name, sd.environment, declared, sd.environment)
		ds = append(ds, d)
	}
	if len(ds) > 0 {
		return ds
	}
	return nil
}
