package pipeline

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// MinSecretLen is the shortest secret value Runnel accepts: a shorter one
// would be masked wherever its characters happen to appear in a log, and
// masking would hide little.
const MinSecretLen = 6

var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// CheckSecretName returns an error unless name can name a secret: 1 to 64
// letters, digits and '_', not starting with a digit (it becomes an
// environment variable name), and not RUNNEL_*, which Runnel sets itself.
func CheckSecretName(name string) error {
	if !secretNameRE.MatchString(name) {
		return fmt.Errorf("secret name %q: want 1 to 64 of A-Z, a-z, 0-9 and _, not starting with a digit", name)
	}
	if len(name) >= 7 && name[:7] == "RUNNEL_" {
		return fmt.Errorf("secret name %q: RUNNEL_* names are Runnel's own", name)
	}
	return nil
}

// SecretsDir is where a stage's secret files are, in every step container
// (a tmpfs: never on disk, never in the workspace).
const SecretsDir = "/run/secrets"

// SecretRef is a secret a stage asks for: the server's secret Name
// arrives as the variable Env, or as the file SecretsDir/File (whose path
// is then in the variable Env, when set), or both.
type SecretRef struct {
	Name string `json:"name"`
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
}

// secretKeys are the keys of the mapping form of a secrets entry.
var secretKeys = []string{"name", "env", "file"}

var secretFileRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// secretUse is a parsed secrets entry with its position, for CheckSecrets.
type secretUse struct {
	ref  SecretRef
	node *yaml.Node // the name's node
}

// secrets reads a stage's secrets: a list of names (each arriving as the
// variable of the same name) or of mappings {name, env, file}.
func (ps *parser) secrets(n *yaml.Node, stageEnv map[string]string) []secretUse {
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		ps.errorf(n, CodeWrongType, "secrets must be a list of names or of {name, env, file}, got %s", kindName(n))
		return nil
	}
	var out []secretUse
	names, envs, files := map[string]int{}, map[string]int{}, map[string]int{}
	for _, item := range n.Content {
		item = ps.resolve(item)
		if item == nil {
			return out
		}
		u, ok := ps.secretEntry(item)
		if !ok {
			continue
		}
		for _, c := range []struct {
			seen  map[string]int
			v     string
			what  string
			where *yaml.Node
		}{{names, u.ref.Name, "secret", u.node}, {envs, u.ref.Env, "variable", item}, {files, u.ref.File, "file", item}} {
			if c.v == "" {
				continue
			}
			if line, dup := c.seen[c.v]; dup {
				ps.errorf(c.where, CodeDuplicateName, "secrets: %s %q is already used on line %d", c.what, c.v, line)
				ok = false
				break
			}
			c.seen[c.v] = item.Line
		}
		if _, clash := stageEnv[u.ref.Env]; clash && u.ref.Env != "" {
			ps.errorf(item, CodeDuplicateName, "secrets: variable %q is also set in env; a secret's variable must be its own", u.ref.Env)
			ok = false
		}
		if ok {
			out = append(out, u)
		}
	}
	return out
}

func (ps *parser) secretEntry(item *yaml.Node) (secretUse, bool) {
	if item.Kind == yaml.ScalarNode {
		name, ok := ps.str(item, "secrets entry")
		if !ok {
			return secretUse{}, false
		}
		if err := CheckSecretName(name); err != nil {
			ps.errorf(item, CodeBadName, "secrets: %v", err)
			return secretUse{}, false
		}
		return secretUse{ref: SecretRef{Name: name, Env: name}, node: item}, true
	}
	m := ps.mapping(item, "secrets entry")
	if m == nil {
		return secretUse{}, false
	}
	es := ps.entries(m, 0)
	ps.checkKeys(es, "secrets entry", secretKeys, nil)
	var u secretUse
	ok := true
	for _, e := range es {
		v, good := ps.str(e.val, "secrets "+e.key.Value)
		if !good {
			ok = false
			continue
		}
		at := ps.resolve(e.val)
		switch e.key.Value {
		case "name":
			if err := CheckSecretName(v); err != nil {
				ps.errorf(at, CodeBadName, "secrets: %v", err)
				ok = false
			}
			u.ref.Name, u.node = v, at
		case "env":
			if !envNameRE.MatchString(v) || strings.HasPrefix(v, "RUNNEL_") {
				ps.errorf(at, CodeBadName, "secrets: variable %q must be [A-Za-z_][A-Za-z0-9_]* and not RUNNEL_*", v)
				ok = false
			}
			u.ref.Env = v
		case "file":
			if !secretFileRE.MatchString(v) || v == "." || v == ".." {
				ps.errorf(at, CodeBadPath, "secrets: file %q must be a plain file name (it is made in %s)", v, SecretsDir)
				ok = false
			}
			u.ref.File = v
		}
	}
	if u.node == nil {
		if ok {
			ps.errorf(item, CodeMissingField, "secrets entry has no name")
		}
		return secretUse{}, false
	}
	if u.ref.Env == "" && u.ref.File == "" {
		u.ref.Env = u.ref.Name
	}
	return u, ok
}

// CheckSecrets reports, as Diagnostics with CodeUnknownSecret, every
// stage asking for a secret that known (the names the repository's
// secrets have on the server) does not hold.
func (p *Pipeline) CheckSecrets(known map[string]bool) error {
	var ds Diagnostics
	for _, sd := range p.stages {
		for _, u := range sd.secrets {
			if known[u.ref.Name] {
				continue
			}
			ds = append(ds, Diagnostic{File: p.Name, Line: u.node.Line, Col: u.node.Column, Code: CodeUnknownSecret, Severity: SeverityError,
				Message: fmt.Sprintf("stage %s: secret %q is not set for this repository; an admin sets it with: runnel secret set %s --repo REPO", sd.name, u.ref.Name, u.ref.Name)})
		}
	}
	if len(ds) > 0 {
		return ds
	}
	return nil
}
