package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile file from costing much. A pipeline file is
// untrusted input: it comes from whoever can push to the repository.
const (
	// MaxFileSize is the largest file Parse reads.
	MaxFileSize = 1 << 20
	// MaxMatrixCombinations is the most stages one matrix may expand into.
	MaxMatrixCombinations = 256
	// DefaultStageTimeout applies to a stage without a timeout.
	DefaultStageTimeout = time.Hour
	// MaxRetry is the largest retry limit of a step.
	MaxRetry = 10

	maxAliases = 100     // alias dereferences in one file
	maxNodes   = 200_000 // nodes visited in one file, aliases included
	maxMerge   = 8       // nesting of "<<" merge keys
	maxDiags   = 200     // diagnostics reported per file
)

// ErrSkipped is returned by Plan when the event does not match the
// pipeline-level when filter, or when no stage is left after the stage
// filters: the run has nothing to do.
var ErrSkipped = errors.New("pipeline skipped: when filters do not match the event")

// Pipeline is a parsed, validated .pipeline.yml. It is immutable; Plan may
// be called any number of times, concurrently.
type Pipeline struct {
	// Name is the file name given to Parse, used in diagnostics.
	Name string
	// Warnings are the non-fatal diagnostics of the file.
	Warnings Diagnostics

	env    map[string]string
	when   filter
	inputs []Input
	// inputPos is where each input is declared ("": the inputs key).
	inputPos map[string][2]int
	stages   []*stageDef
}

// StageNames returns the stage keys in file order.
func (p *Pipeline) StageNames() []string {
	names := make([]string, len(p.stages))
	for i, s := range p.stages {
		names[i] = s.name
	}
	return names
}

type filter struct {
	events      []string
	branches    []string
	tags        []string
	paths       []string
	pathsIgnore []string
}

type stageDef struct {
	name        string
	line, col   int
	image       string
	needs       []string
	needNodes   []*yaml.Node
	labels      map[string]string
	services    []Service
	axes        []string
	combos      [][]string // values in axes order
	when        filter
	runOn       RunOn
	statusNode  *yaml.Node
	concurrency string
	approval    bool
	environment string
	envNode     *yaml.Node // the environment value, for PlanFor's diagnostics
	timeout     Duration
	env         map[string]string
	steps       []*Step
	// Transfers (artifacts.go). fromSet tells an empty artifacts_from
	// (receive nothing) from a missing one (receive from the needs).
	artifacts *Artifacts
	from      []string
	fromNodes []*yaml.Node
	fromSet   bool
	fetch     []Fetch
	cache     []Cache
	deploy    *deployDef
	// container is the stage's container settings; requests are the
	// container requests of the stage, its steps and services, for
	// CheckPolicy.
	container *Container
	requests  []request
	// secrets are the secrets the stage asks for (secrets.go).
	secrets []secretUse
}

var (
	stageNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	serviceNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	axisNameRE    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	eventKinds    = []string{EventPush, EventPullRequest, EventTag, EventCron, EventManual}
	// Upper-cased matrix axis names become environment variables; these
	// would break the step's shell or lie about the run.
	reservedAxisEnv = []string{"PATH", "HOME", "HOSTNAME", "SHELL", "USER", "PWD", "TERM", "CI", "IFS", "ENV"}
)

// ParseFile reads and parses the pipeline file at path.
func ParseFile(path string) (*Pipeline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("parse pipeline: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit so that Parse sees the file is too large
	// without reading all of a huge file.
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("parse pipeline %s: %w", path, err)
	}
	return Parse(path, src)
}

// Parse parses and validates a pipeline file. name is used in diagnostics.
// When the file has errors Parse returns a nil Pipeline and a Diagnostics
// error holding every error and warning found, ordered by position. When it
// has only warnings, they are in the Pipeline's Warnings and the error is
// nil.
func Parse(name string, src []byte) (*Pipeline, error) {
	ps := &parser{file: name, stepTimeouts: map[*Step]*yaml.Node{}}
	p := ps.parse(src)
	sortDiagnostics(ps.diags)
	if ps.dropped > 0 {
		ps.diags = append(ps.diags, Diagnostic{File: name, Line: 1, Col: 1, Code: CodeTooComplex, Message: fmt.Sprintf("%d more diagnostics not shown", ps.dropped)})
	}
	if ps.diags.HasErrors() {
		return nil, ps.diags
	}
	p.Name = name
	p.Warnings = ps.diags
	return p, nil
}

type parser struct {
	file         string
	diags        Diagnostics
	seen         map[Diagnostic]bool
	dropped      int
	stepTimeouts map[*Step]*yaml.Node
	// stageDef is the stage being parsed (nil outside stages); envUses
	// are the env values seen, for checkEnvRefs.
	stageDef *stageDef
	envUses  []envUse
	envSeen  map[envUseKey]bool
	aliases  int
	nodes    int
	// reqs collects the container requests of the stage being parsed.
	reqs       []request
	tooComplex bool
}

func (ps *parser) add(sev Severity, n *yaml.Node, code, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	if ps.full() {
		ps.dropped++
		return
	}
	d := Diagnostic{File: ps.file, Line: line, Col: col, Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)}
	// Content reached through an alias is checked once per reference;
	// report each problem once.
	if ps.seen[d] {
		return
	}
	if ps.seen == nil {
		ps.seen = map[Diagnostic]bool{}
	}
	ps.seen[d] = true
	ps.diags = append(ps.diags, d)
}

func (ps *parser) errorf(n *yaml.Node, code, format string, args ...any) {
	ps.add(SeverityError, n, code, format, args...)
}

func (ps *parser) warnf(n *yaml.Node, code, format string, args ...any) {
	ps.add(SeverityWarning, n, code, format, args...)
}

// full reports whether no more diagnostics will be shown.
func (ps *parser) full() bool { return len(ps.diags) >= maxDiags }

// resolve follows aliases within the budget and counts visited nodes. It
// returns nil once the file has been found too complex.
func (ps *parser) resolve(n *yaml.Node) *yaml.Node {
	if ps.tooComplex || n == nil {
		return nil
	}
	for n.Kind == yaml.AliasNode {
		ps.aliases++
		if ps.aliases > maxAliases || n.Alias == nil {
			ps.tooComplex = true
			ps.errorf(n, CodeTooComplex, "more than %d alias references; expand them by hand", maxAliases)
			return nil
		}
		n = n.Alias
	}
	ps.nodes++
	if ps.nodes > maxNodes {
		ps.tooComplex = true
		ps.errorf(n, CodeTooComplex, "file has more than %d nodes", maxNodes)
		return nil
	}
	return n
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (ps *parser) parse(src []byte) *Pipeline {
	p := &Pipeline{}
	if len(src) > MaxFileSize {
		ps.errorf(nil, CodeFileTooLarge, "file is %d bytes or more; the limit is %d", len(src), MaxFileSize)
		return p
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.errorf(nil, CodeMissingField, "file is empty; version is required")
			return p
		}
		ps.yamlError(err)
		return p
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		ps.errorf(&extra, CodeMultipleDocuments, "file holds more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		ps.yamlError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			ps.errorf(root, CodeMissingField, "file is empty; version is required")
			return p
		}
		root = root.Content[0]
	}
	root = ps.resolve(root)
	if root == nil {
		return p
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		ps.errorf(root, CodeMissingField, "file is empty; version is required")
		return p
	}
	if root.Kind != yaml.MappingNode {
		ps.errorf(root, CodeWrongType, "the file must be a mapping with version and stages, got %s", kindName(root))
		return p
	}
	// Top-level keys starting with "x-" are free for the author, as in
	// Compose files: a place to put anchors.
	es := slices.DeleteFunc(ps.entries(root, 0), func(e entry) bool { return strings.HasPrefix(e.key.Value, "x-") })
	ps.checkKeys(es, "pipeline", pipelineKeys, pipelineReserved)
	var versionSeen, stagesSeen bool
	for _, e := range es {
		switch e.key.Value {
		case "version":
			versionSeen = true
			if v := ps.resolve(e.val); v != nil && (v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Value != "1") {
				ps.errorf(v, CodeBadVersion, "version must be 1, got %s", describe(v))
			}
		case "env":
			p.env = ps.env(e.val, "env")
		case "when":
			p.when, _, _ = ps.when(e.val, false)
		case "inputs":
			p.inputs = ps.inputs(p, e.key, e.val)
		case "stages":
			stagesSeen = true
			p.stages = ps.stages(e.val)
		}
	}
	if !versionSeen {
		ps.errorf(root, CodeMissingField, "version is required (version: 1)")
	}
	if !stagesSeen {
		ps.errorf(root, CodeMissingField, "stages is required")
	}
	ps.checkNeeds(p.stages)
	ps.checkArtifactsFrom(p.stages)
	ps.checkDeployRefs(p)
	ps.checkDeployCredentials(p)
	ps.checkEnvRefs(p)
	return p
}

func (ps *parser) yamlError(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			ps.errorf(nil, CodeYAMLSyntax, "%s", m)
		}
		return
	}
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		ps.errorf(&yaml.Node{Line: line, Column: 1}, CodeYAMLSyntax, "%s", m[2])
		return
	}
	ps.errorf(nil, CodeYAMLSyntax, "%s", strings.TrimPrefix(msg, "yaml: "))
}

type entry struct{ key, val *yaml.Node }

// entries returns a mapping's key/value pairs in file order, with "<<"
// merge keys expanded (explicit keys win over merged ones) and duplicate
// keys reported.
func (ps *parser) entries(n *yaml.Node, depth int) []entry {
	var out []entry
	seen := map[string]*yaml.Node{}
	var merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := ps.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return out
		}
		if k.Kind != yaml.ScalarNode {
			ps.errorf(k, CodeWrongType, "a key must be a string, got %s", kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			if depth >= maxMerge {
				ps.errorf(k, CodeTooComplex, "merge keys nested more than %d deep", maxMerge)
				continue
			}
			merged = append(merged, ps.mergeEntries(v, depth)...)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			ps.errorf(k, CodeDuplicateKey, "key %q repeats the one on line %d", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{k, v})
	}
	for _, e := range merged {
		if _, ok := seen[e.key.Value]; ok {
			continue
		}
		seen[e.key.Value] = e.key
		out = append(out, e)
	}
	return out
}

func (ps *parser) mergeEntries(v *yaml.Node, depth int) []entry {
	v = ps.resolve(v)
	if v == nil {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return ps.entries(v, depth+1)
	case yaml.SequenceNode:
		var out []entry
		have := map[string]bool{}
		for _, item := range v.Content {
			item = ps.resolve(item)
			if item == nil {
				return out
			}
			if item.Kind != yaml.MappingNode {
				ps.errorf(item, CodeWrongType, "a merge (<<) needs mappings, got %s", kindName(item))
				continue
			}
			// Earlier mappings in the list win, as in the YAML merge spec.
			for _, e := range ps.entries(item, depth+1) {
				if !have[e.key.Value] {
					have[e.key.Value] = true
					out = append(out, e)
				}
			}
		}
		return out
	}
	ps.errorf(v, CodeWrongType, "a merge (<<) needs a mapping, got %s", kindName(v))
	return nil
}

func (ps *parser) checkKeys(es []entry, where string, allowed, reserved []string) {
	for _, e := range es {
		k := e.key.Value
		switch {
		case slices.Contains(allowed, k):
		case slices.Contains(reserved, k):
			ps.errorf(e.key, CodeUnsupported, "%s key %q is not supported yet", where, k)
		case ps.full():
			ps.dropped++ // skip the suggestion's cost too
		default:
			if s := suggest(k, allowed); s != "" {
				ps.errorf(e.key, CodeUnknownKey, "unknown %s key %q (did you mean %q?)", where, k, s)
			} else {
				ps.errorf(e.key, CodeUnknownKey, "unknown %s key %q (known: %s)", where, k, strings.Join(allowed, ", "))
			}
		}
	}
}

// suggest returns the allowed key closest to k, if it is close enough to be
// a likely misspelling.
func suggest(k string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := editDistance(k, a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func suggestIf(cond bool, k string, allowed []string) string {
	if !cond {
		return ""
	}
	return suggest(k, allowed)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a bool"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		}
		return "a string"
	}
	return "an alias"
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("%s %q", kindName(n), v)
	}
	return kindName(n)
}

// mapping resolves n and checks that it is a mapping.
func (ps *parser) mapping(n *yaml.Node, what string) *yaml.Node {
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, CodeWrongType, "%s must be a mapping, got %s", what, kindName(n))
		return nil
	}
	return n
}

// str reads a non-empty scalar as a string. Numbers are taken as written.
func (ps *parser) str(n *yaml.Node, what string) (string, bool) {
	n = ps.resolve(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!bool" || n.Tag == "!!binary" {
		ps.errorf(n, CodeWrongType, "%s must be a string, got %s", what, kindName(n))
		return "", false
	}
	if strings.TrimSpace(n.Value) == "" {
		ps.errorf(n, CodeBadValue, "%s must not be empty", what)
		return "", false
	}
	return n.Value, true
}

func (ps *parser) boolean(n *yaml.Node, what string) bool {
	n = ps.resolve(n)
	if n == nil {
		return false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		ps.errorf(n, CodeWrongType, "%s must be true or false, got %s", what, describe(n))
		return false
	}
	return b
}

func (ps *parser) integer(n *yaml.Node, what string, lo, hi int) (int, bool) {
	var i int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		ps.errorf(n, CodeWrongType, "%s must be an integer, got %s", what, describe(n))
		return 0, false
	}
	if i < int64(lo) || i > int64(hi) {
		ps.errorf(n, CodeBadValue, "%s must be between %d and %d, got %d", what, lo, hi, i)
		return 0, false
	}
	return int(i), true
}

func (ps *parser) duration(n *yaml.Node, what string) Duration {
	s, ok := ps.str(n, what)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		ps.errorf(ps.resolve(n), CodeBadDuration, "%s %q is not a positive duration like 30s, 10m or 1h30m", what, s)
		return 0
	}
	return Duration(d)
}

// strList reads a string or a list of strings.
func (ps *parser) strList(n *yaml.Node, what string) ([]string, []*yaml.Node) {
	n = ps.resolve(n)
	if n == nil {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode {
		if s, ok := ps.str(n, what); ok {
			return []string{s}, []*yaml.Node{n}
		}
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		ps.errorf(n, CodeWrongType, "%s must be a string or a list of strings, got %s", what, kindName(n))
		return nil, nil
	}
	var out []string
	var nodes []*yaml.Node
	for _, item := range n.Content {
		item = ps.resolve(item)
		if item == nil {
			return out, nodes
		}
		if s, ok := ps.str(item, what+" entry"); ok {
			out = append(out, s)
			nodes = append(nodes, item)
		}
	}
	return out, nodes
}

// scalarText reads a scalar value for env, labels and matrix: strings,
// numbers and bools, taken exactly as written ("1.20" stays "1.20").
func (ps *parser) scalarText(n *yaml.Node, what string) (string, bool) {
	n = ps.resolve(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!binary" {
		ps.errorf(n, CodeWrongType, "%s must be a string, number or bool, got %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (ps *parser) env(n *yaml.Node, what string) map[string]string {
	n = ps.mapping(n, what)
	if n == nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range ps.entries(n, 0) {
		k := e.key.Value
		switch {
		case !envNameRE.MatchString(k):
			ps.errorf(e.key, CodeBadName, "environment variable name %q must match [A-Za-z_][A-Za-z0-9_]*", k)
			continue
		case strings.HasPrefix(strings.ToUpper(k), "RUNNEL_") || k == "CI":
			ps.errorf(e.key, CodeReservedName, "environment variable %q is set by runnel", k)
			continue
		}
		if v, ok := ps.scalarText(e.val, fmt.Sprintf("%s value %s", what, k)); ok {
			out[k] = v
			ps.useEnv(e.val, v)
		}
	}
	return out
}

func (ps *parser) labels(n *yaml.Node) map[string]string {
	n = ps.mapping(n, "labels")
	if n == nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range ps.entries(n, 0) {
		if v, ok := ps.scalarText(e.val, "label "+e.key.Value); ok {
			out[e.key.Value] = v
		}
	}
	return out
}

// when reads a when filter; stage filters also take status.
func (ps *parser) when(n *yaml.Node, stage bool) (filter, RunOn, *yaml.Node) {
	var f filter
	runOn := RunOnSuccess
	var statusNode *yaml.Node
	n = ps.mapping(n, "when")
	if n == nil {
		return f, runOn, nil
	}
	es := ps.entries(n, 0)
	if stage {
		ps.checkKeys(es, "stage when", stageWhenKeys, nil)
	} else {
		ps.checkKeys(es, "when", whenKeys, nil)
	}
	globs := func(e entry) []string {
		vals, nodes := ps.strList(e.val, "when."+e.key.Value)
		for i, v := range vals {
			if err := ValidGlob(v); err != nil {
				ps.errorf(nodes[i], CodeBadGlob, "when.%s pattern %q: %v", e.key.Value, v, err)
			}
		}
		return vals
	}
	for _, e := range es {
		switch e.key.Value {
		case "event":
			vals, nodes := ps.strList(e.val, "when.event")
			for i, v := range vals {
				if !slices.Contains(eventKinds, v) {
					ps.errorf(nodes[i], CodeBadValue, "when.event %q is not one of %s", v, strings.Join(eventKinds, ", "))
				}
			}
			f.events = append(f.events, vals...)
		case "branch", "branches":
			f.branches = append(f.branches, globs(e)...)
		case "tag", "tags":
			f.tags = append(f.tags, globs(e)...)
		case "paths":
			f.paths = append(f.paths, globs(e)...)
		case "paths_ignore":
			f.pathsIgnore = append(f.pathsIgnore, globs(e)...)
		case "status":
			if s, ok := ps.str(e.val, "when.status"); ok {
				switch RunOn(s) {
				case RunOnSuccess, RunOnFailure, RunOnAlways:
					runOn = RunOn(s)
					statusNode = ps.resolve(e.val)
				default:
					ps.errorf(ps.resolve(e.val), CodeBadValue, "when.status %q is not one of success, failure, always", s)
				}
			}
		}
	}
	return f, runOn, statusNode
}

func (ps *parser) stages(n *yaml.Node) []*stageDef {
	n = ps.mapping(n, "stages")
	if n == nil {
		return nil
	}
	es := ps.entries(n, 0)
	if len(es) == 0 {
		ps.errorf(n, CodeMissingField, "stages must hold at least one stage")
	}
	var out []*stageDef
	for _, e := range es {
		if !stageNameRE.MatchString(e.key.Value) {
			ps.errorf(e.key, CodeBadName, "stage name %q must match [A-Za-z0-9][A-Za-z0-9_.-]*", e.key.Value)
			continue
		}
		if s := ps.stage(e.key, e.val); s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (ps *parser) stage(key, n *yaml.Node) *stageDef {
	s := &stageDef{name: key.Value, line: key.Line, col: key.Column, runOn: RunOnSuccess, timeout: Duration(DefaultStageTimeout)}
	ps.stageDef = s
	defer func() { ps.stageDef = nil }()
	n = ps.mapping(n, "stage "+s.name)
	if n == nil {
		// Keep the stage so that needs on it are not reported as unknown.
		return s
	}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "stage", stageKeys, stageReserved)
	ps.reqs = nil
	defer func() { s.requests, ps.reqs = ps.reqs, nil }()
	stepsSeen := false
	var secretsNode *yaml.Node
	for _, e := range es {
		switch e.key.Value {
		case "image":
			s.image, _ = ps.str(e.val, "image")
		case "needs":
			s.needs, s.needNodes = ps.strList(e.val, "needs")
		case "labels":
			s.labels = ps.labels(e.val)
		case "services":
			s.services = ps.services(e.val)
		case "matrix":
			ps.matrix(s, e.key, e.val)
		case "when":
			s.when, s.runOn, s.statusNode = ps.when(e.val, true)
		case "concurrency":
			s.concurrency, _ = ps.str(e.val, "concurrency")
		case "approval":
			s.approval = ps.boolean(e.val, "approval")
		case "environment":
			s.environment, _ = ps.str(e.val, "environment")
			s.envNode = e.val
		case "timeout":
			if d := ps.duration(e.val, "timeout"); d > 0 {
				s.timeout = d
			}
		case "env":
			s.env = ps.env(e.val, "env")
		case "steps":
			stepsSeen = true
			s.steps = ps.steps(e.val)
		case "artifacts":
			s.artifacts = ps.artifacts(e.key, e.val)
		case "artifacts_from":
			s.fromSet = true
			s.from, s.fromNodes = ps.strList(e.val, "artifacts_from")
		case "fetch":
			s.fetch = ps.fetches(e.val)
		case "cache":
			s.cache = ps.caches(e.val)
		case "deploy":
			s.deploy = ps.deploy(e.key, e.val)
		case "container":
			s.container = ps.container(e.val, "stage "+s.name, &ps.reqs)
		case "secrets":
			secretsNode = e.val
		}
	}
	if secretsNode != nil {
		// After the loop: a clash with env is found whatever the key order.
		s.secrets = ps.secrets(secretsNode, s.env)
	}
	if !stepsSeen && s.deploy == nil {
		ps.errorf(key, CodeMissingField, "stage %s has no steps", s.name)
	}
	if s.deploy != nil {
		for _, st := range s.steps {
			if st.Name == DeployStep {
				ps.errorf(key, CodeReservedName, "stage %s deploys: its steps may not be named %q", s.name, DeployStep)
			}
		}
		if s.concurrency == "" {
			s.concurrency = deployGroup(s.environment, s.deploy.d)
		}
	}
	// Check step timeouts again now that the stage timeout is known
	// regardless of key order.
	for _, st := range s.steps {
		if st.Timeout > s.timeout {
			ps.warnf(ps.stepTimeouts[st], CodeTimeoutExceedsStage, "step %q timeout %s exceeds the stage timeout %s", st.Name, st.Timeout.D(), s.timeout.D())
		}
	}
	return s
}

func (ps *parser) steps(n *yaml.Node) []*Step {
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		ps.errorf(n, CodeWrongType, "steps must be a list, got %s", kindName(n))
		return nil
	}
	if len(n.Content) == 0 {
		ps.errorf(n, CodeMissingField, "steps must hold at least one step")
	}
	var out []*Step
	names := map[string]int{}
	for _, item := range n.Content {
		item = ps.mapping(item, "a step")
		if item == nil {
			if ps.tooComplex {
				return out
			}
			continue
		}
		st := ps.step(item)
		if st.Name != "" {
			if line, dup := names[st.Name]; dup {
				ps.errorf(item, CodeDuplicateName, "step name %q is already used on line %d", st.Name, line)
			} else {
				names[st.Name] = item.Line
			}
		}
		out = append(out, st)
	}
	return out
}

func (ps *parser) step(n *yaml.Node) *Step {
	st := &Step{}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "step", stepKeys, stepReserved)
	var nameSeen, runSeen bool
	for _, e := range es {
		switch e.key.Value {
		case "name":
			nameSeen = true
			st.Name, _ = ps.str(e.val, "name")
		case "run":
			runSeen = true
			st.Run, _ = ps.str(e.val, "run")
		case "image":
			st.Image, _ = ps.str(e.val, "image")
		case "env":
			st.Env = ps.env(e.val, "env")
		case "timeout":
			st.Timeout = ps.duration(e.val, "timeout")
			ps.stepTimeouts[st] = ps.resolve(e.val)
		case "retry":
			st.Retry = ps.retry(e.val)
		case "allow_failure":
			st.AllowFailure = ps.boolean(e.val, "allow_failure")
		case "container":
			var reqs []request
			st.Container = ps.container(e.val, "", &reqs)
			defer func() { ps.addRequests(reqs, "step "+st.Name) }()
		}
	}
	if !nameSeen {
		ps.errorf(n, CodeMissingField, "step has no name")
	}
	if !runSeen {
		ps.errorf(n, CodeMissingField, "step %q has no run script", st.Name)
	}
	return st
}

func (ps *parser) retry(n *yaml.Node) Retry {
	n = ps.resolve(n)
	if n == nil {
		return Retry{}
	}
	if n.Kind == yaml.ScalarNode {
		l, _ := ps.integer(n, "retry", 0, MaxRetry)
		return Retry{Limit: l}
	}
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, CodeWrongType, "retry must be an integer or a mapping with limit and exit_codes, got %s", kindName(n))
		return Retry{}
	}
	var r Retry
	es := ps.entries(n, 0)
	ps.checkKeys(es, "retry", retryKeys, nil)
	limitSeen := false
	for _, e := range es {
		switch e.key.Value {
		case "limit":
			limitSeen = true
			if v := ps.resolve(e.val); v != nil {
				r.Limit, _ = ps.integer(v, "retry.limit", 0, MaxRetry)
			}
		case "exit_codes":
			v := ps.resolve(e.val)
			if v == nil {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				ps.errorf(v, CodeWrongType, "retry.exit_codes must be a list of integers, got %s", kindName(v))
				continue
			}
			for _, c := range v.Content {
				if c = ps.resolve(c); c == nil {
					break
				}
				if code, ok := ps.integer(c, "retry.exit_codes entry", 1, 255); ok {
					r.ExitCodes = append(r.ExitCodes, code)
				}
			}
		}
	}
	if !limitSeen {
		ps.errorf(n, CodeMissingField, "retry needs a limit")
	}
	return r
}

func (ps *parser) command(n *yaml.Node, what string) []string {
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		// A string is split on white space, without any shell quoting.
		if s, ok := ps.str(n, what); ok {
			return strings.Fields(s)
		}
		return nil
	}
	vals, _ := ps.strList(n, what)
	return vals
}

func (ps *parser) services(n *yaml.Node) []Service {
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	var out []Service
	names := map[string]int{}
	addSvc := func(svc Service, at *yaml.Node) {
		if svc.Name == "" {
			return
		}
		if !serviceNameRE.MatchString(svc.Name) {
			ps.errorf(at, CodeBadName, "service name %q must be a lower-case DNS label ([a-z0-9-], at most 63 characters)", svc.Name)
			return
		}
		if line, dup := names[svc.Name]; dup {
			ps.errorf(at, CodeDuplicateName, "service name %q is already used on line %d", svc.Name, line)
			return
		}
		names[svc.Name] = at.Line
		out = append(out, svc)
	}
	switch n.Kind {
	case yaml.MappingNode:
		for _, e := range ps.entries(n, 0) {
			m := ps.mapping(e.val, "service "+e.key.Value)
			if m == nil {
				continue
			}
			svc, _ := ps.service(m, e.key.Value)
			addSvc(svc, e.key)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			m := ps.mapping(item, "a service")
			if m == nil {
				if ps.tooComplex {
					return out
				}
				continue
			}
			svc, at := ps.service(m, "")
			addSvc(svc, at)
		}
	default:
		ps.errorf(n, CodeWrongType, "services must be a mapping or a list, got %s", kindName(n))
	}
	return out
}

// service reads a service of the list form (key "") or of the mapping
// form (key is its name).
func (ps *parser) service(n *yaml.Node, key string) (Service, *yaml.Node) {
	svc := Service{Name: key}
	listForm := key == ""
	at := n
	es := ps.entries(n, 0)
	allowed := serviceKeys
	if !listForm {
		allowed = serviceKeys[1:] // the key is the name
	}
	ps.checkKeys(es, "service", allowed, serviceReserved)
	var nameSeen, imageSeen bool
	for _, e := range es {
		switch e.key.Value {
		case "name":
			nameSeen = true
			svc.Name, _ = ps.str(e.val, "service name")
			if v := ps.resolve(e.val); v != nil {
				at = v
			}
		case "image":
			imageSeen = true
			svc.Image, _ = ps.str(e.val, "service image")
		case "command":
			svc.Command = ps.command(e.val, "service command")
		case "env":
			svc.Env = ps.env(e.val, "service env")
		case "ready":
			svc.Ready = ps.ready(e.val)
		case "container":
			var reqs []request
			svc.Container = ps.container(e.val, "", &reqs)
			defer func() { ps.addRequests(reqs, "service "+svc.Name) }()
		}
	}
	if listForm && !nameSeen {
		ps.errorf(n, CodeMissingField, "service has no name")
	}
	if !imageSeen {
		ps.errorf(n, CodeMissingField, "service has no image")
	}
	return svc, at
}

func (ps *parser) ready(n *yaml.Node) Readiness {
	var r Readiness
	n = ps.mapping(n, "ready")
	if n == nil {
		return r
	}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "ready", readyKeys, nil)
	for _, e := range es {
		switch e.key.Value {
		case "port":
			if v := ps.resolve(e.val); v != nil {
				r.Port, _ = ps.integer(v, "ready.port", 1, 65535)
			}
		case "command":
			r.Command = ps.command(e.val, "ready.command")
		case "timeout":
			r.Timeout = ps.duration(e.val, "ready.timeout")
		}
	}
	return r
}

func (ps *parser) matrix(s *stageDef, key, n *yaml.Node) {
	n = ps.mapping(n, "matrix")
	if n == nil {
		return
	}
	var values [][]string
	var exclude, include *yaml.Node
	for _, e := range ps.entries(n, 0) {
		switch e.key.Value {
		case "exclude":
			exclude = e.val
			continue
		case "include":
			include = e.val
			continue
		}
		axis := e.key.Value
		if !axisNameRE.MatchString(axis) {
			ps.errorf(e.key, CodeBadName, "matrix axis %q must match [A-Za-z][A-Za-z0-9_]*", axis)
			continue
		}
		up := strings.ToUpper(axis)
		if slices.Contains(reservedAxisEnv, up) || strings.HasPrefix(up, "RUNNEL_") || strings.HasPrefix(up, "MATRIX_") {
			ps.errorf(e.key, CodeReservedName, "matrix axis %q would set the environment variable %s", axis, up)
			continue
		}
		if slices.ContainsFunc(s.axes, func(a string) bool { return strings.ToUpper(a) == up }) {
			ps.errorf(e.key, CodeDuplicateName, "matrix axis %q differs from another only in case", axis)
			continue
		}
		v := ps.resolve(e.val)
		if v == nil {
			return
		}
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			ps.errorf(v, CodeBadMatrix, "matrix axis %s must be a non-empty list of values", axis)
			continue
		}
		var vals []string
		for _, item := range v.Content {
			item = ps.resolve(item)
			if item == nil {
				return
			}
			t, ok := ps.scalarText(item, "matrix value")
			if !ok {
				continue
			}
			if strings.ContainsAny(t, ",=[]") || strings.ContainsFunc(t, unicode.IsControl) {
				// These would make stage IDs like t[a=1,b=2] ambiguous.
				ps.errorf(item, CodeBadMatrix, "matrix value %q must not contain , = [ ] or control characters", t)
				continue
			}
			if slices.Contains(vals, t) {
				ps.errorf(item, CodeBadMatrix, "matrix axis %s lists %q twice", axis, t)
				continue
			}
			vals = append(vals, t)
		}
		if len(vals) == 0 {
			continue
		}
		s.axes = append(s.axes, axis)
		values = append(values, vals)
	}
	if len(s.axes) == 0 {
		ps.errorf(key, CodeBadMatrix, "matrix has no axes")
		return
	}
	total := 1
	for _, vals := range values {
		total *= len(vals)
		if total > MaxMatrixCombinations {
			ps.errorf(key, CodeMatrixTooLarge, "matrix expands into more than %d stages", MaxMatrixCombinations)
			return
		}
	}
	excl := ps.matrixEntries(exclude, "exclude", s.axes, values, false)
	var combos [][]string
	idx := make([]int, len(values))
	for range total {
		c := make([]string, len(values))
		for i, j := range idx {
			c[i] = values[i][j]
		}
		if !slices.ContainsFunc(excl, func(x []string) bool { return partialMatch(x, c) }) {
			combos = append(combos, c)
		}
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(values[i]) {
				break
			}
			idx[i] = 0
		}
	}
	for _, c := range ps.matrixEntries(include, "include", s.axes, nil, true) {
		if !slices.ContainsFunc(combos, func(o []string) bool { return slices.Equal(o, c) }) {
			combos = append(combos, c)
		}
		if len(combos) > MaxMatrixCombinations {
			ps.errorf(key, CodeMatrixTooLarge, "matrix expands into more than %d stages", MaxMatrixCombinations)
			return
		}
	}
	if len(combos) == 0 {
		ps.errorf(key, CodeBadMatrix, "matrix exclude removes every combination")
		return
	}
	s.combos = combos
}

// partialMatch reports whether combination c has every value set in x
// ("" means any).
func partialMatch(x, c []string) bool {
	for i := range x {
		if x[i] != "" && x[i] != c[i] {
			return false
		}
	}
	return true
}

// matrixEntries reads exclude or include: a list of mappings from axis to
// value. Exclude entries may name a subset of the axes and must use listed
// values; include entries must name every axis.
func (ps *parser) matrixEntries(n *yaml.Node, what string, axes []string, values [][]string, full bool) [][]string {
	if n == nil {
		return nil
	}
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		ps.errorf(n, CodeWrongType, "matrix %s must be a list of mappings, got %s", what, kindName(n))
		return nil
	}
	var out [][]string
	for _, item := range n.Content {
		m := ps.mapping(item, "matrix "+what+" entry")
		if m == nil {
			if ps.tooComplex {
				return out
			}
			continue
		}
		c := make([]string, len(axes))
		ok := true
		for _, e := range ps.entries(m, 0) {
			i := slices.Index(axes, e.key.Value)
			if i < 0 {
				ps.errorf(e.key, CodeBadMatrix, "matrix %s names %q, which is not an axis", what, e.key.Value)
				ok = false
				continue
			}
			v, vok := ps.scalarText(e.val, "matrix value")
			if !vok {
				ok = false
				continue
			}
			if values != nil && !slices.Contains(values[i], v) {
				ps.errorf(ps.resolve(e.val), CodeBadMatrix, "matrix %s value %q is not listed in axis %s", what, v, e.key.Value)
				ok = false
				continue
			}
			c[i] = v
		}
		if ok && full && slices.Contains(c, "") {
			ps.errorf(m, CodeBadMatrix, "matrix %s entry must give a value for every axis (%s)", what, strings.Join(axes, ", "))
			ok = false
		}
		if ok {
			out = append(out, c)
		}
	}
	return out
}

// checkNeeds reports needs on unknown stages, repeated needs and cycles.
func (ps *parser) checkNeeds(stages []*stageDef) {
	byName := map[string]*stageDef{}
	for _, s := range stages {
		byName[s.name] = s
	}
	names := slices.Sorted(maps.Keys(byName))
	for _, s := range stages {
		seen := map[string]bool{}
		var needs []string
		var nodes []*yaml.Node
		for i, nd := range s.needs {
			switch {
			case byName[nd] == nil:
				// Suggestions cost O(stages) each: only for files of a
				// human size, and while somebody reads them.
				if sg := suggestIf(!ps.full() && len(names) <= 500, nd, names); sg != "" {
					ps.errorf(s.needNodes[i], CodeUnknownNeed, "stage %s needs %q, which is not a stage (did you mean %q?)", s.name, nd, sg)
				} else {
					ps.errorf(s.needNodes[i], CodeUnknownNeed, "stage %s needs %q, which is not a stage", s.name, nd)
				}
			case seen[nd]:
				ps.warnf(s.needNodes[i], CodeDuplicateNeed, "stage %s lists need %q twice", s.name, nd)
			default:
				seen[nd] = true
				needs = append(needs, nd)
				nodes = append(nodes, s.needNodes[i])
			}
		}
		s.needs, s.needNodes = needs, nodes
		if s.runOn == RunOnFailure && len(s.needs) == 0 {
			ps.warnf(s.statusNode, CodeStatusWithoutNeeds, "stage %s runs on failure of its needs but has none, so it never runs", s.name)
		}
	}
	// Depth-first search in file order; each back edge is one cycle.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(s *stageDef)
	visit = func(s *stageDef) {
		color[s.name] = grey
		stack = append(stack, s.name)
		for i, nd := range s.needs {
			switch color[nd] {
			case white:
				visit(byName[nd])
			case grey:
				start := slices.Index(stack, nd)
				path := append(slices.Clone(stack[start:]), nd)
				ps.errorf(s.needNodes[i], CodeCycle, "needs form a cycle: %s", strings.Join(path, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		color[s.name] = black
	}
	for _, s := range stages {
		if color[s.name] == white {
			visit(s)
		}
	}
}

// addRequests adds the container requests of a step or service, named
// once its name is known.
func (ps *parser) addRequests(reqs []request, where string) {
	for _, r := range reqs {
		r.where = where
		ps.reqs = append(ps.reqs, r)
	}
}
