package pipeline

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Env values may reference Runnel's variables (CI, RUNNEL_*) and the
// stage's matrix variables (<AXIS>, MATRIX_<AXIS>) as ${NAME}. Plan
// replaces them when it compiles a run, in one pass over the value as
// written: what a reference inserts is data, never read again for
// references, so an untrusted branch name or commit message holding
// "${...}" arrives as written. Everything else stays as written: $NAME,
// ${NAME} of other names (lint warns), and $${ (a literal "${").

// Token kinds of an env value.
const (
	tokText   = iota // literal text
	tokRef           // ${NAME}, NAME a valid variable name
	tokBare          // $NAME
	tokBad           // ${...} whose inside is not a variable name
	tokOpen          // ${ without a closing }
	tokEscape        // $${, a literal "${"
)

// envToken is one piece of an env value; for tokRef and tokBare name is
// the variable's name. off is its byte offset in the value.
type envToken struct {
	kind int
	text string // the token as written
	name string
	off  int
}

// scanEnv splits an env value into tokens: the one definition of the
// reference syntax, used to expand and to lint.
func scanEnv(s string) []envToken {
	var out []envToken
	text := func(from, to int) {
		if to > from {
			out = append(out, envToken{kind: tokText, text: s[from:to], off: from})
		}
	}
	start := 0
	for i := 0; i < len(s); {
		if s[i] != '$' {
			i++
			continue
		}
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "$${"):
			text(start, i)
			out = append(out, envToken{kind: tokEscape, text: "$${", off: i})
			i += 3
		case strings.HasPrefix(rest, "${"):
			text(start, i)
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				out = append(out, envToken{kind: tokOpen, text: rest, off: i})
				i = len(s)
				break
			}
			tok := envToken{kind: tokBad, text: rest[:end+1], name: rest[2:end], off: i}
			if envNameRE.MatchString(tok.name) {
				tok.kind = tokRef
			}
			out = append(out, tok)
			i += end + 1
		case len(rest) > 1 && nameStart(rest[1]):
			text(start, i)
			j := 2
			for j < len(rest) && (nameStart(rest[j]) || '0' <= rest[j] && rest[j] <= '9') {
				j++
			}
			out = append(out, envToken{kind: tokBare, text: rest[:j], name: rest[1:j], off: i})
			i += j
		default:
			i++
			continue
		}
		start = i
	}
	text(start, len(s))
	return out
}

func nameStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// expandEnv returns s with its ${NAME} references to vars replaced by
// their values (see the comment at the top of this file).
func expandEnv(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for _, t := range scanEnv(s) {
		switch {
		case t.kind == tokEscape:
			b.WriteString("${")
		case t.kind == tokRef:
			if v, ok := vars[t.name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(t.text)
			}
		default:
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// expandAll returns a copy of env with every value expanded.
func expandAll(env map[string]string, vars map[string]string) map[string]string {
	if env == nil {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = expandEnv(v, vars)
	}
	return out
}

// unsetVars returns Runnel's variables that a run may leave unset
// (RUNNEL_SCHEDULE, the declared inputs), empty: a reference to one of
// them expands to "" in a run that does not set it.
func (p *Pipeline) unsetVars() map[string]string {
	vars := map[string]string{"RUNNEL_SCHEDULE": ""}
	for _, in := range p.inputs {
		vars["RUNNEL_INPUT_"+SanitizeEnvName(in.Name)] = ""
	}
	return vars
}

// runnelVar reports whether name is one of Runnel's variables of a run of
// p (see expandVars).
func (p *Pipeline) runnelVar(name string) bool {
	if _, ok := eventEnv(Event{})[name]; ok || name == "RUNNEL_STAGE" || name == "RUNNEL_SCHEDULE" {
		return true
	}
	return slices.ContainsFunc(p.inputs, func(in Input) bool { return name == "RUNNEL_INPUT_"+SanitizeEnvName(in.Name) })
}

// matrixVar reports whether name is a matrix variable of sd.
func (sd *stageDef) matrixVar(name string) bool {
	return slices.ContainsFunc(sd.axes, func(a string) bool {
		up := strings.ToUpper(a)
		return name == up || name == "MATRIX_"+up
	})
}

// envUse is one env value as written, kept for checkEnvRefs.
type envUse struct {
	stage *stageDef // nil for the pipeline's env
	node  *yaml.Node
	value string
}

type envUseKey struct {
	stage *stageDef
	node  *yaml.Node
}

// useEnv records env value v written at n (already checked to be a
// scalar), once per node and stage however many aliases reach it.
func (ps *parser) useEnv(n *yaml.Node, v string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	k := envUseKey{ps.stageDef, n}
	if ps.envSeen[k] {
		return
	}
	if ps.envSeen == nil {
		ps.envSeen = map[envUseKey]bool{}
	}
	ps.envSeen[k] = true
	ps.envUses = append(ps.envUses, envUse{stage: ps.stageDef, node: n, value: v})
}

// checkEnvRefs warns about references in env values that will not
// expand: $NAME, ${NAME} of a name that is neither Runnel's nor a matrix
// variable of the stage (of any stage, for the pipeline's env), malformed
// or unterminated ${. They stay in the value as written.
func (ps *parser) checkEnvRefs(p *Pipeline) {
	known := func(u envUse, name string) bool {
		if p.runnelVar(name) {
			return true
		}
		if u.stage != nil {
			return u.stage.matrixVar(name)
		}
		return slices.ContainsFunc(p.stages, func(sd *stageDef) bool { return sd.matrixVar(name) })
	}
	for _, u := range ps.envUses {
		for _, t := range scanEnv(u.value) {
			at := valueAt(u.node, u.value, t.off)
			switch t.kind {
			case tokBare:
				if known(u, t.name) {
					ps.warnf(at, CodeUnexpanded, "%s is not expanded in env values; write ${%s}", t.text, t.name)
				} else {
					ps.warnf(at, CodeUnexpanded, "%s is not expanded: env values expand only ${NAME} of Runnel's (RUNNEL_*, CI) and matrix variables", t.text)
				}
			case tokRef:
				if !known(u, t.name) {
					ps.warnf(at, CodeUnexpanded, "%s will not expand: %s is not one of Runnel's (RUNNEL_*, CI) or the stage's matrix variables; it stays as written", t.text, t.name)
				}
			case tokBad:
				ps.warnf(at, CodeUnexpanded, "%s is not a variable reference and stays as written; write ${NAME}, or $${ for a literal ${", t.text)
			case tokOpen:
				ps.warnf(at, CodeUnexpanded, "unterminated ${ stays as written; write ${NAME}, or $${ for a literal ${")
			}
		}
	}
}

// valueAt returns a node positioned at byte off of value v as written at
// n: exact for a plain scalar on one line, else n itself.
func valueAt(n *yaml.Node, v string, off int) *yaml.Node {
	if n == nil || n.Style != 0 || strings.Contains(v, "\n") || n.Value != v {
		return n
	}
	return &yaml.Node{Line: n.Line, Column: n.Column + off}
}
